"""The bridges' former home, kept so that `numpy_lstm.interop.*` imports keep working: the code
lives in :mod:`numpy_lstm.io` (torch, keras, onnx, convert)."""
