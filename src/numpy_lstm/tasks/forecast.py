"""Time-series forecasting: an LSTM reads the last `window` observations and predicts the next
`horizon` values of a target series, compared honestly with the naive forecasts.

The data is a CSV file (a header row, one column per series; stdlib `csv`, no pandas), an array,
or by default the classic airline passengers series (Box & Jenkins 1976, monthly totals in
thousands, 1949–1960, 144 values; public domain), shipped with the package.

Multivariate: `column="a,b,c"` feeds all listed columns as inputs; the first is the target.

No look-ahead anywhere: the split is chronological (validation = the last `val_fraction` of the
series, never shuffled into training); the normalisation statistics are fitted on the training
part only; a validation window's inputs are observations before its forecast origin (they may
reach back into the training part, as they would in production).

Metrics are reported in the series' original units: RMSE and MAPE (in %), next to the naive
forecast (repeat the last observation) and, with a `seasonal_period` m, the seasonal-naive one
(repeat the observation one season before the target).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.validation import check_int
from ..nn.layers import Linear
from ..nn.lstm import LSTM
from ..nn.models import SequenceToOne
from ..nn.module import evaluating
from ..train.losses import mse_loss
from ..train.task import (
    Task,
    TaskOptions,
    check_regular_file,
    float_dtype,
    fraction,
    non_negative_int,
    option,
    optional,
    positive_int,
    takes_options,
)

AIRLINE_CSV = Path(__file__).resolve().parent / "data" / "airline_passengers.csv"
AIRLINE_COLUMN, AIRLINE_PERIOD = "passengers", 12


# -- data handling: pure functions ----------------------------------------------------------------
def _utf8_text(path: str | Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # -sig: tolerate a BOM
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None


def read_csv_columns(path: str | Path, columns: Sequence[str] | None) -> np.ndarray:
    """The named columns of a CSV file with a header row → (N, C) float64, in the given order.

    `columns=None` is allowed only for a one-column file. Errors name the file, and the missing
    column (with the available ones) or the row and column of a cell that is not a finite number.
    """
    with open(path, "rb") as file:  # decoded whole, so that bad bytes are an error naming it
        reader = csv.reader(io.StringIO(_utf8_text(path, file.read()), newline=""))
        header = [name.strip() for name in next(reader, [])]
        if not header:
            raise ValueError(f"{path}: empty file, expected a header row")
        if columns is None:
            if len(header) != 1:
                raise ValueError(f"{path}: name the column(s) to use; available columns: {header}")
            columns = header
        missing = [name for name in columns if name not in header]
        if missing:
            raise ValueError(f"{path}: no column {missing[0]!r}; available columns: {header}")
        index = [header.index(name) for name in columns]
        rows = []
        for cells in reader:
            if not cells:  # csv yields [] for a blank line
                continue
            if len(cells) < len(header):
                raise ValueError(
                    f"{path}: row {reader.line_num}: expected {len(header)} cells, got {len(cells)}"
                )
            rows.append([_number(cells[i], path, reader.line_num, header[i]) for i in index])
    if not rows:
        raise ValueError(f"{path}: no data rows after the header")
    return np.array(rows, dtype=np.float64)


def _number(cell: str, path: str | Path, row: int, column: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise ValueError(f"{path}: row {row}, column {column!r}: expected a number, got {cell!r}")
    return value


def fit_normalizer(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation of the training part (N, C) → (C,), (C,).
    A constant column gets std 1 (it is only centred), so nothing divides by zero."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


def normalize(values: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return (values - mean) / std


def denormalize(
    values: np.ndarray, mean: np.ndarray | float, std: np.ndarray | float
) -> np.ndarray:
    return values * std + mean


def split_origins(
    length: int, window: int, horizon: int, split: int
) -> tuple[np.ndarray, np.ndarray]:
    """Forecast origins t (the index of the first predicted value) of the training windows —
    targets t..t+horizon−1 all before `split` — and of the validation windows — targets all at
    or after `split`. Every window needs `window` observations before t."""
    train = np.arange(window, split - horizon + 1)
    val = np.arange(max(split, window), length - horizon + 1)
    return train, val


def make_windows(
    series: np.ndarray, window: int, horizon: int, origins: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """series (N, C), origins (n,) → inputs (window, n, C) time-major, series[t−window : t], and
    targets (n, horizon), series[t : t+horizon, 0] (column 0 is the target)."""
    steps = np.arange(-window, 0)[:, None] + origins  # (window, n)
    ahead = origins[:, None] + np.arange(horizon)  # (n, horizon)
    return series[steps], series[ahead, 0]


def relative_to_last(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows measured from their last observation: x (window, n, C) − x[−1] per column, and the
    targets y (n, horizon) − the target's last observation, the anchor (n, 1); y + anchor
    restores them. The model then learns changes, not levels: a trending series soon leaves the
    level range seen in training, where tanh saturates, but its changes stay in range."""
    last = x[-1]  # (n, C)
    return x - last, y - last[:, :1], last[:, :1]


def naive_forecast(target: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """target (N,) → (n, horizon): the last observation before each origin, repeated."""
    return np.repeat(target[origins - 1][:, None], horizon, axis=1)


def seasonal_naive_forecast(
    target: np.ndarray, origins: np.ndarray, horizon: int, period: int
) -> np.ndarray:
    """target (N,) → (n, horizon): ŷ[t+k] = y[t+k − m·(⌊k/m⌋ + 1)], the latest observation
    of the same season that is known at the origin t (m = period)."""
    k = np.arange(horizon)
    known = origins[:, None] + k - period * (k // period + 1)
    if known.min() < 0:
        raise ValueError(f"seasonal_period: {period} reaches before the start of the series")
    return target[known]


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    """Root mean squared error, in the units of the series."""
    return float(np.sqrt(np.mean((pred - true) ** 2)))


def mape(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute percentage error (%), over the targets that are not zero (a relative error
    to zero is undefined); NaN if every target is zero."""
    counted = true != 0
    if not counted.any():
        return float("nan")
    return float(100 * np.mean(np.abs(pred[counted] - true[counted]) / np.abs(true[counted])))


def _columns(column: str | Sequence[str] | None) -> list[str] | None:
    """ "a, b" or ["a", "b"] → ["a", "b"]."""
    if column is None:
        return None
    names = [n.strip() for n in (column.split(",") if isinstance(column, str) else column)]
    if not names or not all(names):
        raise ValueError(f"column: expected column names (comma-separated), got {column!r}")
    return names


def _series(name: str, value: npt.ArrayLike) -> list[float] | list[list[float]]:
    """An array-like series (N,) or (N, C) of finite numbers → nested lists: JSON-able, and
    exact (float64 → Python float round-trips)."""
    data = np.asarray(value, dtype=np.float64)
    if data.ndim not in (1, 2) or data.size == 0 or not np.isfinite(data).all():
        raise ValueError(f"{name}: expected finite values (N,) or (N, C), got {data.shape}")
    series: list[float] | list[list[float]] = data.tolist()
    return series


@dataclass(frozen=True)
class ForecastOptions(TaskOptions):
    csv: str | None = option(None, "a CSV file with a header row (default: airline passengers)")
    # option() is a dataclass field specifier, not a shared mutable default (RUF009 cannot tell)
    column: str | list[str] | None = option(None, 'column(s) to read, "a,b": a is the target')  # noqa: RUF009
    series: npt.ArrayLike | None = option(None, "the series, (N,) or (N, C)", optional(_series))  # noqa: RUF009
    window: int = option(24, "observations the model reads before each forecast", positive_int)
    horizon: int = option(1, "values forecast at once", positive_int)
    hidden_size: int = option(32, "LSTM hidden units", positive_int)
    batch_size: int = option(32, "windows per training step, drawn with replacement", positive_int)
    val_fraction: float = option(0.2, "the end of the series held out for validation", fraction)
    seasonal_period: int | None = option(
        None, "m of the seasonal-naive baseline (airline: 12)", optional(positive_int)
    )
    relative: bool = option(True, "measure each window from its last observation")
    seed: int = option(0, "seed of the weights and the batches", non_negative_int)
    dtype: str = option("float32", "float32 or float64", float_dtype)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.series is not None and (self.csv is not None or self.column is not None):
            raise ValueError("series: give either series or csv (with column), not both")


# -- the task -------------------------------------------------------------------------------------
class ForecastTask(Task):
    """Forecast the next `horizon` values of a series from its last `window` (LSTM → Linear).

    Data: `csv` (with `column`: a name or "a,b,c", the first is the target), or `series`, an
    array (N,) or (N, C) whose column 0 is the target, or neither: the airline passengers with
    `seasonal_period` 12. A `series` is kept in `config()` as a nested list so checkpoints can
    rebuild the task: fine for small series; keep long ones in a CSV file.

    `relative` (default): each window is measured from its last observation, so the model
    predicts the change from the naive forecast (see :func:`relative_to_last`).

    Training batches are drawn with replacement from the training windows by the task's RNG, so
    a resume needs only the RNG state. The loss is the MSE of the normalised targets.
    """

    name = "forecast"
    item_name = "windows"
    Options = ForecastOptions
    options: ForecastOptions
    model: SequenceToOne

    @takes_options(ForecastOptions)
    def __init__(self, options: ForecastOptions) -> None:
        self.options = options
        self.window, self.horizon = options.window, options.horizon
        self.batch_size, self.relative = options.batch_size, options.relative
        columns = _columns(options.column)
        if options.series is not None:
            data = np.asarray(options.series, dtype=np.float64)
            data = data.reshape(len(data), -1)
        elif options.csv is not None:
            check_regular_file("csv", options.csv)
            data = read_csv_columns(options.csv, columns)
        else:
            data = read_csv_columns(AIRLINE_CSV, columns or [AIRLINE_COLUMN])
        self.dtype = np.dtype(options.dtype)
        self.data = data  # (N, C) original units
        self.split = int(len(data) * (1 - options.val_fraction))
        window, horizon = self.window, self.horizon
        train_origins, self.val_origins = split_origins(len(data), window, horizon, self.split)
        if len(train_origins) == 0 or len(self.val_origins) == 0:
            raise ValueError(
                f"series: {len(data)} observations are too few for window {window}, horizon "
                f"{horizon} and val_fraction {options.val_fraction} (training part: {self.split})"
            )
        self.mean, self.std = fit_normalizer(data[: self.split])  # training part only
        scaled = normalize(data, self.mean, self.std)
        self.train_x, self.train_y, _ = self._model_space(scaled, train_origins)
        self.val_x, self.val_y, self.val_anchor = self._model_space(scaled, self.val_origins)
        self.val_true = make_windows(data, window, horizon, self.val_origins)[1]  # original units
        default_data = options.csv is None and options.series is None
        self.seasonal_period = (
            AIRLINE_PERIOD
            if default_data and options.seasonal_period is None
            else options.seasonal_period
        )
        self._baseline = self._baselines()

        model_seed, data_seed = np.random.SeedSequence(options.seed).spawn(2)
        model_rng = np.random.default_rng(model_seed)
        hidden_size = options.hidden_size
        self.model = SequenceToOne(
            LSTM(data.shape[1], hidden_size, dtype=self.dtype, rng=model_rng, forget_bias=1.0),
            Linear(hidden_size, horizon, dtype=self.dtype, rng=model_rng),
        )
        self.data_rng = np.random.default_rng(data_seed)
        self.items_per_step = self.batch_size
        self.train_items = len(train_origins)  # windows; batches are drawn with replacement

    def _model_space(self, scaled: np.ndarray, origins: np.ndarray) -> tuple[np.ndarray, ...]:
        """Normalised series → the model's inputs (window, n, C) and targets (n, horizon), in its
        dtype, and the anchor (n, 1) float64 that turns its outputs back into normalised values."""
        x, y = make_windows(scaled, self.window, self.horizon, origins)
        x, y, anchor = relative_to_last(x, y) if self.relative else (x, y, np.zeros((len(y), 1)))
        return x.astype(self.dtype), y.astype(self.dtype), anchor

    def _baselines(self) -> dict[str, float]:
        target, origins, true = self.data[:, 0], self.val_origins, self.val_true
        naive = naive_forecast(target, origins, self.horizon)
        metrics = {"naive_rmse": rmse(naive, true), "naive_mape": mape(naive, true)}
        if self.seasonal_period is not None:
            seasonal = seasonal_naive_forecast(target, origins, self.horizon, self.seasonal_period)
            metrics |= {
                "seasonal_rmse": rmse(seasonal, true),
                "seasonal_mape": mape(seasonal, true),
            }
        return metrics

    def generators(self) -> dict[str, np.random.Generator]:
        return {**super().generators(), "data": self.data_rng}

    def train_step(self) -> float:
        batch = self.data_rng.integers(0, self.train_y.shape[0], size=self.batch_size)
        loss, dpred = mse_loss(self.model(self.train_x[:, batch]), self.train_y[batch])
        self.model.backward(dpred)
        return loss

    def evaluate(self) -> dict[str, float]:
        """The normalised MSE ("loss"), and RMSE and MAPE in original units next to the naive
        (and seasonal-naive) forecasts' on the same validation targets."""
        pred = self.model(self.val_x)
        loss, _ = mse_loss(pred, self.val_y)
        pred = denormalize(pred + self.val_anchor, self.mean[0], self.std[0])
        true = self.val_true
        return {"loss": loss, "rmse": rmse(pred, true), "mape": mape(pred, true), **self._baseline}

    def baseline(self) -> dict[str, float]:
        """RMSE and MAPE of the naive and (with a seasonal period) seasonal-naive forecasts."""
        return dict(self._baseline)

    @classmethod
    def data_files(cls, config: dict[str, Any]) -> dict[str, str]:
        path = config.get("csv")
        return {"csv": path} if isinstance(path, str) else {}

    def data_digest(self) -> str:
        """SHA-256 of the series as read: (N, C) float64, little-endian, with its shape."""
        digest = hashlib.sha256(repr(self.data.shape).encode())
        digest.update(np.ascontiguousarray(self.data, dtype="<f8").tobytes())
        return digest.hexdigest()

    def forecast(self, history: npt.ArrayLike, steps: int | None = None) -> np.ndarray:
        """The next `steps` (default `horizon`) target values after `history` (L, C) or (L,),
        L ≥ window, in original units → (steps,).

        Direct within a block of `horizon` values (one forward pass predicts them all);
        recursive across blocks: the block is appended to the history and the model reads on.
        Only a univariate model can recurse — a multivariate one does not forecast its other
        input columns — so it forecasts at most `horizon` steps.
        """
        steps = self.horizon if steps is None else check_int("steps", steps, minimum=1)
        values = np.asarray(history, dtype=np.float64)
        values = values.reshape(len(values), -1) if values.ndim == 1 else values
        C = self.data.shape[1]
        if values.ndim != 2 or values.shape[1] != C or len(values) < self.window:
            raise ValueError(
                f"history: expected shape (L, {C}) with L ≥ window {self.window}, got "
                f"{np.shape(history)}"
            )
        if C > 1 and steps > self.horizon:
            raise ValueError(
                f"steps: a multivariate model forecasts at most horizon {self.horizon} steps"
            )
        scaled = normalize(values[-self.window :], self.mean, self.std)
        out: list[float] = []
        with evaluating(self.model):
            while len(out) < steps:
                x = scaled[-self.window :, None]  # (window, 1, C)
                anchor = x[-1, 0, 0] if self.relative else 0.0
                x = x - x[-1] if self.relative else x
                pred = self.model(x.astype(self.dtype))[0]  # (horizon,)
                block = pred.astype(np.float64) + anchor
                out.extend(block)
                scaled = np.concatenate([scaled, block[:, None]])
        return denormalize(np.array(out[:steps]), self.mean[0], self.std[0])

    def report(self, metrics: dict[str, float] | None = None) -> str:
        """A small table: the model's validation RMSE and MAPE next to the baselines'."""
        metrics = self.evaluate() if metrics is None else metrics
        rows = [
            ("model", "rmse", "mape"),
            ("naive", "naive_rmse", "naive_mape"),
            ("seasonal naive", "seasonal_rmse", "seasonal_mape"),
        ]
        lines = [f"{'validation':<16}{'RMSE':>10}{'MAPE %':>10}"]
        lines += [
            f"{label:<16}{metrics[r]:>10.3f}{metrics[m]:>10.2f}"
            for label, r, m in rows
            if r in metrics
        ]
        return "\n".join(lines)
