"""ONNX ⇄ numpy-lstm: `export_onnx` writes a standard graph (one `LSTM` node per layer);
`import_onnx` reads LSTM graphs back (ours, torch.onnx.export's, hand-built ones), their glue
interpreted exactly and the result verified against onnxruntime. Needs the `onnx` extra."""

from .export import export_onnx
from .importer import import_onnx
from .reverse import ReverseTime

__all__ = ["ReverseTime", "export_onnx", "import_onnx"]
