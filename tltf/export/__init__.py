"""Serving: SavedModel export for TF Serving, warm-up requests, parity check, prediction and saliency maps."""

from tltf.export.exporter import ExportResult, export_run
from tltf.export.predict import Prediction, Predictor, expand_inputs
from tltf.export.saliency_files import write_saliency_files

__all__ = ["ExportResult", "Prediction", "Predictor", "expand_inputs", "export_run", "write_saliency_files"]
