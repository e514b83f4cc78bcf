"""Serving: SavedModel export for TF Serving, warm-up requests, parity check, and prediction."""

from tltf.export.exporter import ExportResult, export_run
from tltf.export.predict import Prediction, Predictor, expand_inputs

__all__ = ["ExportResult", "Prediction", "Predictor", "expand_inputs", "export_run"]
