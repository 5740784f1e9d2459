"""The equations as pure functions on arrays (NumPy only, no state, dtype kept), and the checks of
user input that every layer above shares.

    cell        one step: the gates i, f, g, o (Filter, Eraser, Writer, Presenter), c' and h'
    variants    the step with peepholes, CIFG, clip, other activations, layer norm
    sequence    a whole sequence forward and back through time, with masks and projection
    validation  dtypes, shapes, finiteness, integers, lengths and masks
"""
