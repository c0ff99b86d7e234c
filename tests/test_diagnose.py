"""Live diagnosis from a run's events: divergence, overfitting, plateau; each said once."""

from tuning_core.diagnose import RunWatcher


def logs(losses, start=1):
    return [{"type": "log", "step": start + i, "loss": v} for i, v in enumerate(losses)]


def evals(pairs, step0=10):
    return [
        {"type": "eval", "step": step0 * (i + 1), "metrics": {"eval_loss": loss, "eval_f1": f1}}
        for i, (loss, f1) in enumerate(pairs)
    ]


def feed(watcher, events):
    return [f for e in events for f in watcher.feed(e)]


def test_a_healthy_run_raises_nothing():
    w = RunWatcher("f1")
    events = logs([1.0, 0.9, 0.8, 0.7]) + evals([(0.7, 0.5), (0.6, 0.6), (0.55, 0.65)])
    assert feed(w, events) == []


def test_exploding_and_nan_losses_are_divergence_once():
    w = RunWatcher()
    found = feed(w, logs([0.7, 0.69, 0.68, 0.9, 2.5, float("nan")]))
    assert [f.kind for f in found] == ["divergence"]
    assert found[0].step == 5 and "half the learning rate" in found[0].message
    nan = feed(RunWatcher(), logs([0.7, float("nan")]))
    assert nan[0].kind == "divergence" and "nan" in nan[0].message


def test_rising_validation_loss_while_training_loss_falls_is_overfitting():
    w = RunWatcher("f1")
    events = []
    for i, (loss, f1) in enumerate([(0.50, 0.70), (0.55, 0.72), (0.62, 0.71)]):
        events += logs([0.6 - 0.1 * i, 0.55 - 0.1 * i], start=10 * i + 1)
        events += evals([(loss, f1)], step0=1)
        events[-1]["step"] = 10 * (i + 1)
    found = feed(w, events)
    assert [f.kind for f in found] == ["overfitting"]
    assert "0.5000 -> 0.5500 -> 0.6200" in found[0].message
    assert "best checkpoint (step 20)" in found[0].message


def test_rising_validation_loss_with_rising_training_loss_is_not_overfitting():
    w = RunWatcher("f1")
    events = []
    for i, loss in enumerate([0.50, 0.55, 0.62]):
        events += logs([0.4 + 0.1 * i], start=10 * i + 1)
        events += evals([(loss, 0.7)], step0=1)
        events[-1]["step"] = 10 * (i + 1)
    assert all(f.kind != "overfitting" for f in feed(w, events))


def test_a_flat_metric_is_a_plateau_and_a_new_run_starts_fresh():
    w = RunWatcher("f1")
    pairs = [(0.6, 0.70), (0.5, 0.701), (0.45, 0.699), (0.44, 0.7015)]
    found = feed(w, evals(pairs))
    assert [f.kind for f in found] == ["plateau"]
    assert "0.7000" in found[0].message
    assert feed(w, evals([(0.4, 0.7)])) == []  # said once
    improving = RunWatcher("f1")
    assert feed(improving, evals([(0.6, 0.6), (0.5, 0.65), (0.45, 0.7), (0.4, 0.75)])) == []


def test_an_error_metric_improves_downwards():
    """Mean absolute error (and a language model's loss) improve as they fall: a steady fall
    is no plateau; three evaluations no lower than the best before are one."""

    def errors(values):
        return [
            {"type": "eval", "step": 10 * (i + 1), "metrics": {"eval_mae": v, "eval_loss": v}}
            for i, v in enumerate(values)
        ]

    for metric in ("mae", "loss"):
        assert feed(RunWatcher(metric), errors([0.9, 0.8, 0.7, 0.6, 0.5])) == []
        found = feed(RunWatcher(metric), errors([0.9, 0.5, 0.6, 0.55, 0.51]))
        assert [f.kind for f in found] == ["plateau"] and "0.5000" in found[0].message
