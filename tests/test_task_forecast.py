"""The forecasting task: CSV reading and its errors, windows, train-only normalisation, the
naive baselines recomputed by hand, forecasts, training beats the baselines, bit-exact resume."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from conftest import assert_resume_is_bit_exact
from numpy_lstm.tasks import ForecastTask, build_task
from numpy_lstm.tasks.forecast import (
    AIRLINE_CSV,
    make_windows,
    mape,
    read_csv_columns,
    relative_to_last,
    rmse,
)
from numpy_lstm.train import Trainer, TrainerConfig
from numpy_lstm.train.optim import Adam, AdamW


@pytest.fixture(autouse=True)
def one_blas_thread() -> Iterator[None]:
    """These models are tiny: one BLAS thread is faster, and immune to a busy machine (threads
    that spin-wait for a busy core made a 2 s run take 30 s)."""
    with threadpool_limits(limits=1):
        yield


def write(tmp_path: Path, text: str, name: str = "data.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def small(**kwargs: object) -> ForecastTask:
    options = dict(window=4, hidden_size=6, batch_size=5, dtype="float64")
    return ForecastTask(**(options | kwargs))


# -- CSV ------------------------------------------------------------------------------------------
def test_csv_columns_are_read_in_the_order_asked(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffdate, a ,b\n2001,1.5,10\n\n2002,-2,20\n2003,3e1,30\n")
    np.testing.assert_array_equal(
        read_csv_columns(path, ["b", "a"]), [[10, 1.5], [20, -2], [30, 30]]
    )
    assert read_csv_columns(write(tmp_path, "x\n1\n2\n", "one.csv"), None).shape == (2, 1)


@pytest.mark.parametrize(
    ("text", "columns", "message"),
    [
        ("date,a\n1,2\n", ["c"], r"data.csv: no column 'c'; available columns: \['date', 'a'\]"),
        ("date,a\n1,2\n", None, r"data.csv: name the column\(s\) to use; available columns"),
        (
            "date,a\n1,2\n2,n/a\n",
            ["a"],
            r"data.csv: row 3, column 'a': expected a number, got 'n/a'",
        ),
        ("date,a\n1,nan\n", ["a"], r"row 2, column 'a': expected a number, got 'nan'"),
        ("date,a\n1,2\n3\n", ["a"], r"data.csv: row 3: expected 2 cells, got 1"),
        ("", ["a"], r"data.csv: empty file, expected a header row"),
        ("date,a\n", ["a"], r"data.csv: no data rows after the header"),
    ],
)
def test_csv_errors_name_the_file_row_and_column(
    tmp_path: Path, text: str, columns: list[str] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        read_csv_columns(write(tmp_path, text), columns)


def test_task_argument_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "t,v\n" + "".join(f"{i},{i}\n" for i in range(40)))
    with pytest.raises(ValueError, match=r"no column 'w'; available columns: \['t', 'v'\]"):
        ForecastTask(csv=path, column="v, w")
    with pytest.raises(ValueError, match="give either series or csv"):
        ForecastTask(csv=path, series=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"observations are too few for window 35"):
        ForecastTask(csv=path, column="v", window=35)
    with pytest.raises(ValueError, match="series: expected finite values"):
        ForecastTask(series=[1.0, math.inf, 2.0])
    with pytest.raises(ValueError, match="horizon: expected a positive integer"):
        ForecastTask(horizon=0)
    with pytest.raises(ValueError, match="seasonal_period: 40 reaches before the start"):
        ForecastTask(csv=path, column="v", window=3, seasonal_period=40)


def test_the_airline_data_ships_with_the_package() -> None:
    values = read_csv_columns(AIRLINE_CSV, ["passengers"])[:, 0]
    assert len(values) == 144 and values.sum() == 40363
    assert list(values[:12]) == [112, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118]
    assert values[-1] == 432
    assert np.all(np.diff(values.reshape(12, 12).sum(axis=1)) > 0)  # every year busier


# -- windows and normalisation --------------------------------------------------------------------
def test_windows_and_targets_line_up_by_hand() -> None:
    series = np.array([[0, 100], [1, 101], [2, 102], [3, 103], [4, 104], [5, 105]], float)
    x, y = make_windows(series, window=2, horizon=3, origins=np.array([2, 3]))
    # Origin 2 reads steps 0, 1 and predicts column 0 at steps 2, 3, 4; origin 3 one step later.
    np.testing.assert_array_equal(x[:, 0], [[0, 100], [1, 101]])
    np.testing.assert_array_equal(x[:, 1], [[1, 101], [2, 102]])
    np.testing.assert_array_equal(y, [[2, 3, 4], [3, 4, 5]])
    rx, ry, anchor = relative_to_last(x, y)
    np.testing.assert_array_equal(rx[:, 0], [[-1, -1], [0, 0]])
    np.testing.assert_array_equal(ry + anchor, y)
    np.testing.assert_array_equal(anchor, [[1], [2]])


@pytest.mark.parametrize("relative", [False, True])
def test_the_split_is_chronological_and_every_window_is_there(relative: bool) -> None:
    series = np.arange(20.0) ** 1.5
    task = small(series=series, window=3, horizon=2, val_fraction=0.25, relative=relative)
    assert task.split == 15
    # Training targets all lie before the split (origins 3..13); validation targets after it.
    assert task.train_y.shape == (11, 2) and task.val_y.shape == (4, 2)
    truth = [series[t : t + 2] for t in range(15, 19)]
    np.testing.assert_array_equal(task.val_true, truth)
    restored = (task.val_y + task.val_anchor) * task.std[0] + task.mean[0]
    np.testing.assert_allclose(restored, truth, rtol=1e-12)
    # The first validation window reads steps 12..14, in train-fitted units (minus its last).
    origin = series[14] if relative else task.mean[0]
    np.testing.assert_allclose(task.val_x[:, 0, 0], (series[12:15] - origin) / task.std[0])


def test_normalisation_uses_the_training_part_only() -> None:
    series = np.sin(np.arange(60) / 3) * 5 + 20
    task = small(series=series, relative=False)
    np.testing.assert_allclose(task.mean, [series[:48].mean()])
    np.testing.assert_allclose(task.std, [series[:48].std()])
    changed = series.copy()
    changed[task.split :] *= 100  # the validation part changes; the statistics must not
    other = small(series=changed, relative=False)
    np.testing.assert_array_equal(other.mean, task.mean)
    np.testing.assert_array_equal(other.std, task.std)
    np.testing.assert_array_equal(other.train_x, task.train_x)
    assert not np.array_equal(other.val_x, task.val_x)


def test_multivariate_inputs_all_columns_and_targets_the_first(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i * i},{-i}\n" for i in range(30))
    task = small(csv=write(tmp_path, "t,sq,neg\n" + rows), column="neg,sq", relative=False)
    assert task.train_x.shape[-1] == 2 and task.model.lstm.input_size == 2
    np.testing.assert_array_equal(task.val_true[:, 0], -np.arange(task.split, 30))
    with pytest.raises(ValueError, match="a multivariate model forecasts at most horizon 1"):
        task.forecast(task.data[:10], steps=2)


# -- baselines and metrics ------------------------------------------------------------------------
def by_hand(task: ForecastTask, period: int | None) -> dict[str, float]:
    """RMSE and MAPE of the naive and seasonal-naive forecasts, written out with loops."""
    y, h = list(task.data[:, 0]), task.horizon
    naive, seasonal, truth = [], [], []
    for t in range(task.split, len(y) - h + 1):
        for k in range(h):
            truth.append(y[t + k])
            naive.append(y[t - 1])
            j = t + k
            while period and j >= t:  # the same season, known at the origin t
                j -= period
            seasonal.append(y[j])

    def scores(pred: list[float]) -> tuple[float, float]:
        errors = [p - q for p, q in zip(pred, truth, strict=True)]
        rms = math.sqrt(sum(e * e for e in errors) / len(errors))
        pairs = [(e, q) for e, q in zip(errors, truth, strict=True) if q != 0]
        return rms, 100 * sum(abs(e) / abs(q) for e, q in pairs) / len(pairs)

    out = dict(zip(["naive_rmse", "naive_mape"], scores(naive), strict=True))
    if period:
        out |= dict(zip(["seasonal_rmse", "seasonal_mape"], scores(seasonal), strict=True))
    return out


@pytest.mark.parametrize(
    ("options", "period"),
    [({}, 12), ({"horizon": 5, "seasonal_period": 3}, 3), ({"horizon": 13}, 12)],
)
def test_baselines_match_loops_on_the_airline_data(options: dict, period: int) -> None:
    task = small(**options)
    expected = by_hand(task, period)
    assert task.baseline() == pytest.approx(expected, rel=1e-12)
    if not options:  # the numbers the report quotes
        assert task.baseline()["naive_rmse"] == pytest.approx(52.4914, abs=1e-4)
        assert task.baseline()["seasonal_rmse"] == pytest.approx(46.0816, abs=1e-4)


def test_no_seasonal_baseline_without_a_period_and_mape_skips_zeros() -> None:
    task = small(series=np.cos(np.arange(50) * np.pi / 2).round())  # 1, 0, −1, 0, …
    assert set(task.baseline()) == {"naive_rmse", "naive_mape"}
    assert task.baseline() == pytest.approx(by_hand(task, None), rel=1e-12)
    assert mape(np.array([1.0, 5.0]), np.array([2.0, 0.0])) == 50.0
    assert math.isnan(mape(np.array([1.0]), np.array([0.0])))
    assert rmse(np.array([1.0, 2.0]), np.array([4.0, 6.0])) == pytest.approx(math.sqrt(12.5))


# -- the model ------------------------------------------------------------------------------------
def test_training_on_the_airline_data_beats_both_baselines() -> None:
    task = ForecastTask()  # the defaults: airline passengers, window 24, seasonal period 12
    config = TrainerConfig(steps=300, eval_every=300, progress=False)
    Trainer(task, Adam(task.model, lr=3e-3), config=config, out=io.StringIO()).fit()
    metrics = task.evaluate()
    # Measured: RMSE ≈ 28 and MAPE ≈ 5 % vs naive 52.5 / 10.3 % and seasonal naive 46.1 / 9.1 %.
    assert metrics["rmse"] < 0.8 * metrics["seasonal_rmse"] < metrics["naive_rmse"]
    assert metrics["mape"] < 0.8 * metrics["seasonal_mape"]
    report = task.report(metrics)
    assert "model" in report and "seasonal naive" in report


@pytest.mark.parametrize("relative", [False, True])
def test_forecasts_are_recursive_for_horizon_one(relative: bool) -> None:
    task = small(relative=relative)
    history = task.data[:30, 0]
    got = task.forecast(history, steps=3)
    seen = list(history)
    for _ in range(3):  # one step at a time, each prediction appended to the history
        window = (np.array(seen[-4:]) - task.mean[0]) / task.std[0]
        anchor = window[-1] if relative else 0.0
        pred = task.model((window - anchor)[:, None, None])[0, 0] + anchor
        seen.append(pred * task.std[0] + task.mean[0])
    np.testing.assert_allclose(got, seen[30:], rtol=1e-12)


def test_forecasts_are_direct_within_the_horizon() -> None:
    task = small(horizon=3, relative=False)
    window = (task.data[26:30] - task.mean) / task.std
    direct = task.model(window[:, None])[0] * task.std[0] + task.mean[0]
    np.testing.assert_allclose(task.forecast(task.data[:30]), direct, rtol=1e-12)
    assert task.forecast(task.data[:30], steps=7).shape == (7,)
    with pytest.raises(ValueError, match=r"history: expected shape \(L, 1\) with L ≥ window 4"):
        task.forecast(task.data[:3])


# -- checkpoints ----------------------------------------------------------------------------------
def test_config_is_json_and_rebuilds_the_task(tmp_path: Path) -> None:
    task = small(series=np.linspace(0.1, 3.0, 40).astype(np.float32), horizon=2)
    config = json.loads(json.dumps(task.config()))
    rebuilt = build_task("forecast", config)
    np.testing.assert_array_equal(rebuilt.data, task.data)
    np.testing.assert_array_equal(rebuilt.val_x, task.val_x)
    assert rebuilt.config() == task.config()


@pytest.mark.parametrize("source", ["airline", "csv", "series"])
def test_resume_is_bit_exact(tmp_path: Path, source: str) -> None:
    """N steps == k steps + save + Trainer.resume + N − k steps."""
    path = write(tmp_path, "t,v,u\n" + "".join(f"{i},{math.sin(i)},{i % 7}\n" for i in range(50)))
    data = {
        "airline": {},
        "csv": {"csv": path, "column": "v,u", "seasonal_period": 7},
        "series": {"series": np.sin(np.arange(50) / 2)},
    }[source]

    def build() -> Trainer:
        task = small(horizon=2, **data)
        schedule = {"name": "cosine", "total_steps": 10, "warmup_steps": 2}
        config = TrainerConfig(steps=10, eval_every=3, log_every=5, progress=False)
        return Trainer(task, AdamW(task.model, lr=1e-2), schedule, config, out=io.StringIO())

    assert_resume_is_bit_exact(build, 6, tmp_path / "run.ckpt")
