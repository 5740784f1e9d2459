"""The options, typed, in one place each.

- :class:`LSTMConfig`: the architecture of a multi-layer LSTM — every constructor argument of
  :class:`numpy_lstm.LSTM` except the init-time ones (`rng`, `init`, `forget_bias`). The layer's
  constructor, `config()`, `repr()` and the formats' "can this be represented" checks all read
  this one list of fields and defaults.
- :class:`SequenceOptions`: what one call of a sequence kernel
  (:func:`numpy_lstm.core.sequence.lstm_forward` or the fast path) needs besides the arrays.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, MISSING, dataclass, fields
from functools import cached_property
from typing import Any, Literal

import numpy as np

from .validation import check_int, check_probability, resolve_dtype
from .variants import PLAIN, PLAIN_ACTIVATIONS, CellVariant

FLOAT32 = np.dtype(np.float32)
MaskOutput = Literal["zero", "carry"]
MASK_OUTPUTS: tuple[MaskOutput, ...] = ("zero", "carry")


@dataclass(frozen=True)
class LSTMConfig:
    """The architecture of an LSTM; the positional order is torch.nn.LSTM's.

    Validated and normalised on construction, with messages naming the argument; the looser
    forms the constructor has always taken are accepted and normalised: any spelling of the
    dtype, a list of activations, one zoneout probability p for (p, p), NumPy scalars.

    input_size, hidden_size  I and H
    num_layers               stacked layers; layer k > 0 reads layer k − 1's output
    bias                     b_ih and b_hh
    batch_first              x is (B, T, I) rather than (T, B, I)
    dropout                  inverted dropout between layers (training only)
    bidirectional            a reverse direction per layer, outputs concatenated
    proj_size                P > 0: h = (o·act(c))·W_hrᵀ of size P < H (Sak et al. 2014)
    dtype                    float32 or float64, for parameters, inputs and results
    mask_output              at masked steps the output is "zero" or the carried h ("carry")
    peephole … layer_norm    the cell variants, see :class:`~numpy_lstm.core.variants.CellVariant`
    recurrent_dropout        one dropout mask per sequence on h before W_hh (training only)
    zoneout                  (p_h, p_c): the probability that a unit keeps its previous h / c
    """

    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    proj_size: int = 0
    _: KW_ONLY  # like torch.nn.LSTM, the options below are keyword-only
    dtype: np.dtype = FLOAT32
    mask_output: MaskOutput = "zero"
    peephole: bool = False
    coupled_input_forget: bool = False
    clip: float | None = None
    activations: tuple[str, str, str] = PLAIN_ACTIVATIONS
    layer_norm: bool = False
    recurrent_dropout: float = 0.0
    zoneout: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        normalised = {
            "input_size": check_int("input_size", self.input_size),
            "hidden_size": check_int("hidden_size", self.hidden_size),
            "num_layers": check_int("num_layers", self.num_layers),
            "bias": bool(self.bias),
            "batch_first": bool(self.batch_first),
            "dropout": check_probability("dropout", self.dropout),
            "bidirectional": bool(self.bidirectional),
            "proj_size": check_int("proj_size", self.proj_size, minimum=0),
            "dtype": resolve_dtype(self.dtype),
            "mask_output": _mask_output(self.mask_output),
            "peephole": bool(self.peephole),
            "coupled_input_forget": bool(self.coupled_input_forget),
            "clip": None if self.clip is None else float(self.clip),
            "activations": tuple(self.activations),
            "layer_norm": bool(self.layer_norm),
            "recurrent_dropout": check_probability("recurrent_dropout", self.recurrent_dropout),
            "zoneout": _zoneout_pair(self.zoneout),
        }
        for name, value in normalised.items():
            object.__setattr__(self, name, value)  # frozen: normalising is part of building
        if self.proj_size >= self.hidden_size:
            raise ValueError(
                f"proj_size: must be smaller than hidden_size ({self.hidden_size}), "
                f"got {self.proj_size}"
            )
        _ = self.variant  # CellVariant checks the activations and the clip

    # -- derived ------------------------------------------------------------------------------
    @cached_property
    def variant(self) -> CellVariant:
        """The options of each step's math (the parameters — peepholes, norms — live in the
        weights)."""
        return CellVariant(
            coupled_input_forget=self.coupled_input_forget,
            clip=self.clip,
            activations=self.activations,
            layer_norm=self.layer_norm,
        )

    @property
    def num_directions(self) -> int:
        """D: 2 if bidirectional, else 1."""
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """H_out, the size of h: P with a projection, else H."""
        return self.proj_size or self.hidden_size

    # -- the options as data ------------------------------------------------------------------
    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """name → default of every option that has one (all but the sizes): the neutral value,
        the one that leaves the plain torch.nn.LSTM unchanged."""
        return {f.name: f.default for f in fields(cls) if f.default is not MISSING}

    def non_defaults(self) -> dict[str, Any]:
        """name → value of every option set to something other than its default."""
        defaults = self.defaults()
        return {
            name: getattr(self, name) for name in defaults if getattr(self, name) != defaults[name]
        }

    def to_json(self) -> dict[str, Any]:
        """Every option as JSON-able values (dtype by name, tuples as lists), in field order:
        `LSTMConfig(**config.to_json()) == config`."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


def option_names(*names: str) -> tuple[str, ...]:
    """`names`, after checking that each is an option of :class:`LSTMConfig` with a default —
    for lists of options (what a format lacks) that must not name an option that does not
    exist."""
    defaults = LSTMConfig.defaults()
    unknown = [name for name in names if name not in defaults]
    if unknown:
        raise ValueError(
            f"names: {unknown} are not options of LSTMConfig with a default; "
            f"the options are {sorted(defaults)}"
        )
    return names


def _mask_output(value: Any) -> MaskOutput:
    if value not in MASK_OUTPUTS:
        raise ValueError(f"mask_output: expected one of {MASK_OUTPUTS}, got {value!r}")
    return MASK_OUTPUTS[MASK_OUTPUTS.index(value)]  # the literal itself, not a str subclass


def _zoneout_pair(zoneout: Any) -> tuple[float, float]:
    """p or (p_h, p_c) → (p_h, p_c), each checked."""
    pair = tuple(zoneout) if isinstance(zoneout, (tuple, list)) else (zoneout, zoneout)
    if len(pair) != 2:
        raise ValueError(f"zoneout: expected p or (p_h, p_c), got {zoneout!r}")
    return check_probability("zoneout", pair[0]), check_probability("zoneout", pair[1])


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclass(frozen=True, eq=False)
class SequenceOptions:
    """One layer-direction's call of a sequence kernel, besides x, h0, c0 and the weights.

    mask            (T, B) bool, True = a valid step; None: every step is valid
    reverse         run from the last step to the first (each sequence's valid steps only)
    carry_output    at masked steps, output the carried h rather than zeros
    variant         the step's math options (:data:`~numpy_lstm.core.variants.PLAIN`: the
                    textbook cell)
    recurrent_keep  (B, H_out) the scaled recurrent-dropout mask on h before W_hh, or None
    zoneout         (keep_h (T, B, H_out), keep_c (T, B, H)): how much of its previous h and c
                    each unit keeps per step, time-major like x even when `reverse`; or None
    record          keep every step's pre-activations in the cache (for traces)
    """

    mask: np.ndarray | None = None
    reverse: bool = False
    carry_output: bool = False
    variant: CellVariant = PLAIN
    recurrent_keep: np.ndarray | None = None
    zoneout: tuple[np.ndarray, np.ndarray] | None = None
    record: bool = False
