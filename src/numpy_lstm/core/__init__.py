"""The equations as pure functions on arrays (NumPy only, no state, dtype kept), and the checks of
user input that every layer above shares.

    cell        the equations: the gates i, f, g, o (Filter, Eraser, Writer, Presenter), c', h'
    variants    one step forward and backward — the plain cell, or with peepholes, CIFG, clip,
                other activations, layer norm
    options     the LSTM's configuration and a sequence call's options, typed and validated
    sequence    a whole sequence forward and back through time, with masks and projection
    validation  dtypes, shapes, finiteness, integers, lengths and masks
"""
