"""The memory and time forecast: its parts, its calibration, and the check after a run."""

from tuning_core.data import inspect_data
from tuning_core.forecast import calibrate, compare, forecast_run, trainable_params_m
from tuning_core.plan import Plan
from tuning_core.profile import DataProfile


def profile(rows=3000, p50=26, longest=62):
    return DataProfile(
        rows={"train": rows, "validation": 300, "test": 300},
        label_counts={"a": rows // 2, "b": rows - rows // 2},
        imbalance_ratio=1.0,
        token_lengths={"p50": p50, "p90": p50 + 10, "p99": longest - 10, "max": longest},
        share_longer_than={},
        exact_duplicates=0,
        conflicting_texts=0,
        empty_texts=0,
        leaked_texts={},
    )


def test_trainable_parameters_shrink_with_freezing():
    args = dict(params_m=22.7, layers=6, hidden=384, labels=4)
    full = trainable_params_m(Plan(), **args)
    bottom = trainable_params_m(Plan(freezing="bottom_k", freeze_layers=4), **args)
    lora = trainable_params_m(Plan(freezing="lora", lora_rank=8), **args)
    head = trainable_params_m(Plan(freezing="head_only"), **args)
    assert full > bottom > lora > head > 0


def test_forecast_grows_with_batch_and_length_and_shrinks_with_lora():
    base = forecast_run(Plan(max_length=64), profile(), 2)
    bigger_batch = forecast_run(Plan(max_length=64, batch_size=32), profile(), 2)
    longer = forecast_run(Plan(max_length=256), profile(longest=300), 2)
    lora = forecast_run(Plan(max_length=64, freezing="lora"), profile(), 2)
    assert bigger_batch.breakdown_mb["activations"] > base.breakdown_mb["activations"]
    assert longer.breakdown_mb["activations"] > base.breakdown_mb["activations"]
    assert lora.peak_memory_mb < base.peak_memory_mb
    assert base.steps_per_epoch == 375  # 3000 rows / batch 8
    assert not base.calibrated and "estimated" in base.describe()


def test_calibration_times_real_steps(tiny_model, sentiment_csv):
    plan = Plan(base_model=str(tiny_model), max_length=32)
    data = inspect_data(sentiment_csv).to_dict()
    calibration = calibrate(plan, data, steps=3)
    assert calibration["seconds_per_step"] > 0 and calibration["runtime_mb"] > 100
    forecast = forecast_run(plan, profile(rows=96), 3, calibration)
    assert forecast.calibrated and forecast.seconds_per_step == calibration["seconds_per_step"]
    assert forecast.breakdown_mb["runtime"] == calibration["runtime_mb"]


def test_calibration_failure_is_reported_not_raised(sentiment_csv, tmp_path):
    plan = Plan(base_model=str(tmp_path / "no-model-here"))
    result = calibrate(plan, inspect_data(sentiment_csv).to_dict(), steps=2)
    assert "error" in result


def test_compare_puts_forecast_beside_the_measurement():
    events = [
        {"type": "start", "time": 100.0, "step": 0},
        {"type": "log", "time": 130.0, "memory_mb": 900.0},
        {"type": "eval", "time": 160.0},
        {"type": "log", "time": 170.0, "memory_mb": 1000.0},
    ]
    out = compare({"peak_memory_mb": 950.0, "seconds_per_epoch": 66.0}, events, {})
    assert out["measured_peak_mb"] == 1000.0 and out["memory_error"] == -0.05
    assert out["measured_seconds_per_epoch"] == 60.0 and out["time_error"] == 0.1
