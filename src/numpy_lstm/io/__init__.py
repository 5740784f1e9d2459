"""Files and other libraries: the native format and bridges to PyTorch, Keras and ONNX.

Each bridge imports its library only when its module is imported, so `import numpy_lstm` never
loads torch, keras or onnx:

    numpy_lstm.io.native   save_model / load_model: safetensors + JSON header, every option
    numpy_lstm.io.torch    from_torch / to_torch        (extra: numpy-lstm[torch])
    numpy_lstm.io.keras    from_keras / to_keras        (extra: numpy-lstm[keras])
    numpy_lstm.io.onnx     export_onnx / import_onnx    (extra: numpy-lstm[onnx])
    numpy_lstm.io.convert  load / save by file extension, for every format above
    numpy_lstm.io.errors   FileFormatError: what every loader raises for a file it cannot read

Weight layouts, per layer-direction (H hidden, I input, P projection, D directions):

    numpy-lstm = PyTorch   weight_ih (4H, I), weight_hh (4H, H or P),        gates i, f, g, o
                           bias_ih, bias_hh (4H,), weight_hr (P, H)
    Keras 3                kernel (I, 4H), recurrent_kernel (H, 4H),         gates i, f, c, o
                           bias (4H,) = bias_ih + bias_hh
    ONNX LSTM              W (D, 4H, I), R (D, 4H, H), B (D, 8H) = [Wb, Rb], gates i, o, f, c
                           P (D, 3H) peepholes i, o, f
"""
