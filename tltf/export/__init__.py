"""Serving: SavedModel export for TF Serving, warm-up requests, parity check."""

from tltf.export.exporter import ExportResult, export_run

__all__ = ["ExportResult", "export_run"]
