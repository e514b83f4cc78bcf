"""Saliency: Grad-CAM heat maps of where a classifier's evidence is, and the figures that show them."""

from tltf.saliency.figures import overlay, telling_examples, write_saliency_grid
from tltf.saliency.grad_cam import GradCam, grad_cam

__all__ = ["GradCam", "grad_cam", "overlay", "telling_examples", "write_saliency_grid"]
