"""Moved to :mod:`numpy_lstm.io.onnx`; this name keeps old imports working."""

from ..io.onnx import export_onnx, import_onnx

__all__ = ["export_onnx", "import_onnx"]
