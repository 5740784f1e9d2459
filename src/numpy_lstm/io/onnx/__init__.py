"""ONNX ⇄ numpy-lstm: `export_onnx` writes a standard graph (one `LSTM` node per layer);
`import_onnx` reads LSTM graphs back, verified against onnxruntime. Needs the `onnx` extra."""

from .export import export_onnx
from .importer import import_onnx

__all__ = ["export_onnx", "import_onnx"]
