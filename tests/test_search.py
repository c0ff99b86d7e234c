"""The Optuna search on a tiny model: trials in SQLite, pruning, the memory filter, and a
resume after a kill that keeps the trial history and retries the abandoned trial."""

import json

import optuna
import pytest
from conftest import TINY_PLAN
from optuna.trial import TrialState

from tuning_core import search
from tuning_core.data import inspect_data
from tuning_core.plan import Plan

pytestmark = pytest.mark.usefixtures("one_thread")

SPACE = {
    "learning_rate": {"low": 1e-3, "high": 6e-3, "log": True},
    "epochs": {"low": 2, "high": 4, "step": 1},
    "dropout": {"low": 0.0, "high": 0.2},
}


def search_inputs(tiny_model, sentiment_csv, trials):
    plan = Plan(
        base_model=str(tiny_model),
        max_length=32,
        search_space=SPACE,
        trials=trials,
        **TINY_PLAN,
    )
    return plan.validate().to_dict(), inspect_data(sentiment_csv).to_dict()


def history(study):
    return [(t.number, t.state, t.params, t.value) for t in study.get_trials()]


def test_suggest_follows_the_space():
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=3))
    plan = {
        "epochs": 3.0,
        "trials": 5,
        "search_space": {**SPACE, "pooling": {"choices": ["default", "mean"]}},
    }
    for _ in range(5):
        got = search.suggest(study.ask(), plan)
        assert 1e-3 <= got["learning_rate"] <= 6e-3
        assert got["epochs"] in (2.0, 3.0, 4.0) and isinstance(got["epochs"], float)
        assert 0 <= got["dropout"] <= 0.2 and got["pooling"] in ("default", "mean")
        assert got["trials"] == 0 and got["search_space"] == {}


def test_the_median_pruner_gives_no_verdict_before_the_second_epoch():
    study = optuna.create_study(direction="maximize", pruner=search._pruner("median", 5))
    for value in (0.8, 0.7, 0.9):
        trial = study.ask()
        trial.report(value, 1)
        trial.report(value, 2)
        study.tell(trial, value)
    trailing = study.ask()
    trailing.report(0.1, 1)
    assert not trailing.should_prune()  # epoch 1: far below the median, but too early to say
    trailing.report(0.2, 2)
    assert trailing.should_prune()


def test_the_median_pruner_compares_gradual_unfreezing_with_its_own_kind():
    """A gradual-unfreezing trial starts slowly (head first): it is judged against finished
    trials that unfreeze gradually too, not against full fine-tuning."""
    study = optuna.create_study(direction="maximize", pruner=search._pruner("median", 5))
    space = optuna.distributions.CategoricalDistribution([False, True])

    for gradual, values in ((False, (0.6, 0.8)), (False, (0.5, 0.7)), (True, (0.2, 0.5))):
        study.enqueue_trial({"gradual_unfreezing": gradual})
        trial = study.ask({"gradual_unfreezing": space})
        for step, value in enumerate(values, start=1):
            trial.report(value, step)
        study.tell(trial, values[-1])
    study.enqueue_trial({"gradual_unfreezing": True})
    slow = study.ask({"gradual_unfreezing": space})
    slow.report(0.3, 1)
    slow.report(0.4, 2)  # far below full fine-tuning at epoch 2 (0.75), but one peer only
    assert not slow.should_prune()
    slow.report(0.9, 3)
    study.tell(slow, 0.9)
    study.enqueue_trial({"gradual_unfreezing": True})
    behind = study.ask({"gradual_unfreezing": space})
    behind.report(0.1, 1)
    behind.report(0.3, 2)  # below the median of its two peers at epoch 2 (0.45)
    assert behind.should_prune()
    study.enqueue_trial({"gradual_unfreezing": False})
    full = study.ask({"gradual_unfreezing": space})
    full.report(0.5, 1)
    full.report(0.72, 2)  # below full fine-tuning's median (0.75); above the gradual trials'
    assert full.should_prune()


def test_asha_keeps_the_top_third_of_like_trials_at_each_rung():
    """Successive halving with epochs as the budget: verdicts at epochs 2 and 6 only; at a rung
    the top third of the trials of the same kind that reached it go on."""
    study = optuna.create_study(direction="maximize", pruner=search._pruner("asha", 12))
    space = optuna.distributions.CategoricalDistribution([False, True])

    def trial_with(gradual):
        study.enqueue_trial({"gradual_unfreezing": gradual})
        return study.ask({"gradual_unfreezing": space})

    first = trial_with(False)
    first.report(0.5, 1)
    first.report(0.6, 2)
    assert not first.should_prune()  # alone at the rung: the best so far goes on
    study.tell(first, 0.6)
    second = trial_with(False)
    second.report(0.1, 1)
    assert not second.should_prune()  # epoch 1 is not a rung
    second.report(0.55, 2)
    assert second.should_prune()  # one peer: only the best of two goes on
    study.tell(second, state=optuna.trial.TrialState.PRUNED)
    slow = trial_with(True)
    slow.report(0.2, 2)  # far below full fine-tuning, but the first of its kind
    assert not slow.should_prune()
    study.tell(slow, 0.7)
    for value in (0.4, 0.45):
        t = trial_with(False)
        t.report(value, 2)
        assert t.should_prune()
        study.tell(t, state=optuna.trial.TrialState.PRUNED)
    # five full fine-tuning trials reached epoch 2 (0.6, 0.55, 0.4, 0.45 and this one):
    # the top 5 // 3 = 1 goes on, so 0.58 stops and 0.62 goes on
    behind = trial_with(False)
    behind.report(0.58, 2)
    assert behind.should_prune()
    study.tell(behind, state=optuna.trial.TrialState.PRUNED)
    ahead = trial_with(False)
    ahead.report(0.62, 2)
    assert not ahead.should_prune()
    for step in (3, 4, 5):
        ahead.report(0.62, step)
        assert not ahead.should_prune()  # no rung between 2 and 6
    ahead.report(0.5, 6)  # its best so far (0.62) counts; the only other at epoch 6: none
    assert not ahead.should_prune()


@pytest.mark.parametrize("scheduler", ["linear", "cosine", "constant_with_warmup", "constant"])
def test_lr_area_is_the_sum_of_the_learning_rates_transformers_schedules(scheduler):
    import torch
    from transformers import get_scheduler

    plan = {"learning_rate": 3e-4, "epochs": 4.0, "warmup": 0.1, "scheduler": scheduler}
    per_epoch, total = 1000, 4000
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
    warmup = 0 if scheduler == "constant" else int(0.1 * total)
    schedule = get_scheduler(scheduler, optimizer, warmup, total)
    rates = []
    for _ in range(total):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    for epoch in (0.2, 0.4, 1.0, 2.5, 4.0):
        summed = sum(rates[: round(epoch * per_epoch)]) / per_epoch
        assert search.lr_area(plan, epoch) == pytest.approx(summed, rel=0.01, abs=1e-7)
        assert search.epoch_at_area(plan, search.lr_area(plan, epoch)) == pytest.approx(
            epoch, abs=1e-3
        )
    assert search.epoch_at_area(plan, search.lr_area(plan, 4.0) * 1.01) is None


def test_asha_judges_a_slow_learning_rate_where_the_others_had_come_as_far():
    """At epoch 2 a trial at a quarter of the learning rate has moved as far as a trial at the
    full rate had after half an epoch: there is nothing to compare it with yet, so it goes on
    (by epoch it would have been stopped). At epoch 6 it is compared with the fast trial at the
    epoch where that one had come as far; "mixed" compares by epoch there, and stops it."""

    def plan(lr):
        return {"learning_rate": lr, "epochs": 15.0, "warmup": 0.0, "scheduler": "linear"}

    verdicts, at_six = {}, {}
    for compare in ("progress", "epoch", "mixed"):
        study = optuna.create_study(
            direction="maximize", pruner=search.asha_pruner(2, 3, compare=compare)
        )
        for lr, curve in ((1e-4, [0.5, 0.6, 0.62, 0.63, 0.64, 0.64]), (1e-4, [0.4, 0.55])):
            fast = study.ask()
            fast.set_user_attr("plan", plan(lr))
            for step, value in enumerate(curve, start=1):
                fast.report(value, step)
            study.tell(fast, max(curve))
        slow = study.ask()
        slow.set_user_attr("plan", plan(2.5e-5))
        slow.report(0.2, 1)
        slow.report(0.35, 2)
        verdicts[compare] = slow.should_prune()
        if compare != "epoch":
            for step, value in ((3, 0.45), (4, 0.5), (5, 0.55), (6, 0.58)):
                slow.report(value, step)
            # epoch 6 at a quarter of the rate: the fast trials had come as far at about
            # epoch 1.25, that is by epoch 1 (0.5, 0.4): 0.58 is the best of the three; by
            # epoch, the one fast trial that reached epoch 6 had 0.64
            assert search.epoch_at_area(
                plan(1e-4), search.lr_area(plan(2.5e-5), 6)
            ) == pytest.approx(1.25, abs=0.01)
            at_six[compare] = slow.should_prune()
            slow.report(0.4, 7)
    assert verdicts == {"progress": False, "epoch": True, "mixed": False}
    assert at_six == {"progress": False, "mixed": True}
    with pytest.raises(ValueError, match="compare must be"):
        search.asha_pruner(compare="area")


def test_epochs_as_budget_gives_every_trial_the_longest_schedule():
    plan = {"epochs": 3.0, "search_space": {**SPACE}}
    fixed = search.epochs_as_budget(plan)
    assert fixed["epochs"] == 4.0 and "epochs" not in fixed["search_space"]
    assert set(fixed["search_space"]) == set(SPACE) - {"epochs"}
    assert plan["search_space"] == SPACE  # the plan itself is left alone
    no_epochs = {"epochs": 3.0, "search_space": {"dropout": SPACE["dropout"]}}
    assert search.epochs_as_budget(no_epochs) == no_epochs


def test_the_median_pruner_compares_schedules_of_different_lengths_at_the_same_share():
    """The learning rate decays over a trial's whole schedule, so a 12-epoch trial is judged
    by what 4- and 6-epoch trials had reached by the same share of theirs, not by epoch."""
    study = optuna.create_study(direction="maximize", pruner=search._pruner("median", 12))
    space = {"epochs": optuna.distributions.IntDistribution(2, 12)}

    def trial_with(epochs):
        study.enqueue_trial({"epochs": epochs})
        return study.ask(space)

    for epochs, values in ((4, (0.5, 0.6, 0.7, 0.72)), (6, (0.4, 0.5, 0.6, 0.65, 0.7, 0.71))):
        trial = trial_with(epochs)
        for step, value in enumerate(values, start=1):
            trial.report(value, step)
        study.tell(trial, max(values))
    long = trial_with(12)
    long.report(0.3, 1)
    long.report(0.45, 2)  # 2/12 of its schedule: too early to judge
    assert not long.should_prune()
    long.report(0.5, 3)  # a quarter: the others had 0.5 and 0.4 by then (at epoch 3: 0.7, 0.6)
    assert not long.should_prune()
    behind = trial_with(12)
    for step, value in ((1, 0.2), (2, 0.3), (3, 0.35)):
        behind.report(value, step)
    assert behind.should_prune()


def test_report_callback_prunes_a_trailing_trial():
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1)
    )
    first = study.ask()
    first.report(0.9, 1)
    study.tell(first, 0.9)
    trial = study.ask()
    callback = search._report_callback(trial, "macro_f1")

    class State:
        epoch = 1.0

    with pytest.raises(optuna.TrialPruned):
        callback.on_evaluate(None, State(), None, metrics={"eval_macro_f1": 0.2})
    assert trial.storage.get_trial(trial._trial_id).intermediate_values == {1: 0.2}


def test_search_runs_resumes_and_keeps_only_the_best_model(tiny_model, sentiment_csv, tmp_path):
    plan, data = search_inputs(tiny_model, sentiment_csv, trials=3)
    rows = []
    out = search.run_search(
        plan,
        data,
        tmp_path,
        pruner="median",  # epochs searched: the memory filter below turns the long ones away
        too_big=lambda p: "over the memory limit" if p["epochs"] >= 4 else None,
        on_trial=rows.append,
    )
    assert (tmp_path / "study.db").exists()
    finished = [r for r in out["trials"] if r["state"] in ("complete", "pruned")]
    assert len(finished) == 3 and len(rows) == 3
    for r in out["trials"]:
        if r["params"]["epochs"] >= 4:  # the memory filter: recorded, never trained
            assert r["state"] == "pruned" and r["note"] == "over the memory limit"
            assert not (tmp_path / "trials" / f"trial-{r['number']}").exists()
    best = out["best"]
    assert best is not None and best["value"] == max(
        r["value"] for r in out["trials"] if r["state"] == "complete"
    )
    assert best["plan"]["learning_rate"] == best["params"]["learning_rate"]
    models = sorted(p.parent.name for p in (tmp_path / "trials").glob("trial-*/model"))
    assert models == [f"trial-{best['number']}"]
    saved = json.loads((tmp_path / "trials" / models[0] / "report.json").read_text())
    assert saved["validation"]["macro_f1"] == best["value"]

    # a process dies in the middle of a trial: the study holds a RUNNING trial
    study = search.open_study(tmp_path, plan["seed"])
    before = history(study)
    dead = study.ask()
    dead_plan = search.suggest(dead, plan)
    assert study.trials[-1].state == TrialState.RUNNING

    plan["trials"] = 4
    again = search.run_search(plan, data, tmp_path, pruner="median", too_big=lambda p: None)
    study = search.open_study(tmp_path, plan["seed"])
    assert history(study)[: len(before)] == before  # the finished trials are kept as they were
    assert again["retried"] == [dead.number]
    assert study.trials[dead.number].state == TrialState.FAIL
    retry = study.trials[dead.number + 1]
    assert retry.user_attrs["retry_of"] == dead.number
    assert retry.params == {k: dead_plan[k] for k in SPACE}
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    done = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(done) == 4


def test_worker_searches_then_reports_and_exports_the_best_trial(
    tiny_model, sentiment_csv, tmp_path
):
    import os
    import subprocess
    import sys

    from tuning_core import runs
    from tuning_core.export import export_bundle

    plan, data = search_inputs(tiny_model, sentiment_csv, trials=3)
    run_dir = tmp_path / "run-1"
    runs.prepare_run(run_dir, plan, data)
    runs.start_worker(run_dir)
    seen = []
    status = runs.follow_run(run_dir, seen.append, poll_s=0.2)
    assert status["state"] == "finished", (run_dir / "worker.log").read_text()[-3000:]
    report = runs.read_report(run_dir)
    best = report["search"]["best"]
    assert len([e for e in seen if e.get("type") == "trial"]) == 3
    assert report["trained_plan"]["trials"] == 0
    assert report["trained_plan"]["learning_rate"] == best["params"]["learning_rate"]
    assert report["validation"]["macro_f1"] == best["value"]
    assert "judge" in report

    bundle = export_bundle(run_dir, tmp_path / "bundle")
    assert json.loads((bundle / "plan.json").read_text()) == report["trained_plan"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "train.py"], cwd=bundle, capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (
        json.loads(out.stdout.strip().splitlines()[-1])["test_macro_f1"]
        == (report["test"]["macro_f1"])
    )
    # search.py reruns the session's search over the bundle's recipe: the same trials
    requirements = (bundle / "requirements.txt").read_text()
    assert "optuna==" in requirements
    again = subprocess.run(
        [sys.executable, "search.py", "--n-trials", "3", "--out", "again"],
        cwd=bundle,
        capture_output=True,
        text=True,
        env=env,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    rows = [json.loads(line) for line in again.stdout.splitlines()[:-1]]
    assert [r["params"] for r in rows] == [t["params"] for t in report["search"]["trials"]]
    assert [r["value"] for r in rows] == [t["value"] for t in report["search"]["trials"]]
    assert json.loads(again.stdout.splitlines()[-1])["best"]["params"] == best["params"]
    assert (bundle / "again" / "study.db").exists()
    # ruff on the generated scripts: tests/test_export_golden.py


def test_the_worker_filter_leaves_out_trials_the_forecast_says_will_not_fit(
    tiny_model, sentiment_csv, tmp_path
):
    from tuning_core import recipe
    from tuning_core.forecast import forecast_run
    from tuning_core.profile import DataProfile, profile_rows
    from tuning_core.worker import memory_filter

    plan, data = search_inputs(tiny_model, sentiment_csv, trials=3)
    assert memory_filter(tmp_path, 3) is None  # no limits.json: everything is tried
    profile = profile_rows(recipe.load_splits(data), str(tiny_model)).to_dict()
    small = Plan.from_dict(plan)
    full = Plan.from_dict({**plan, "batch_size": 4096})
    peaks = [
        forecast_run(p, DataProfile.from_dict(profile), 3).peak_memory_mb for p in (small, full)
    ]
    assert peaks[0] < peaks[1]
    limit = (peaks[0] + peaks[1]) / 2  # batches of 8 fit under it, batches of 4096 do not
    (tmp_path / "limits.json").write_text(json.dumps({"memory_mb": limit, "profile": profile}))
    too_big = memory_filter(tmp_path, 3)
    assert too_big(small.to_dict()) is None
    assert f"> {limit:.0f} MB available" in too_big(full.to_dict())


def test_a_trial_that_runs_out_of_memory_is_pruned_and_the_search_goes_on(
    tiny_model, sentiment_csv, tmp_path, monkeypatch
):
    import torch

    from tuning_core import recipe

    plan, data = search_inputs(tiny_model, sentiment_csv, trials=2)
    real, calls = recipe.train_and_evaluate, []

    def small_gpu(trial_plan, *args, **kwargs):
        calls.append(trial_plan)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (injected by a test)")
        return real(trial_plan, *args, **kwargs)

    monkeypatch.setattr(recipe, "train_and_evaluate", small_gpu)
    result = search.run_search(plan, data, tmp_path)
    rows = [(row["state"], row["note"]) for row in result["trials"]]
    assert rows == [("pruned", "out of memory at micro-batch 8"), ("complete", "")]
    assert result["best"]["number"] == 1


def test_an_asha_search_trains_every_trial_on_the_longest_schedule(
    tiny_model, sentiment_csv, tmp_path
):
    plan, data = search_inputs(tiny_model, sentiment_csv, trials=4)
    out = search.run_search(plan, data, tmp_path, pruner="asha")
    assert len(out["trials"]) == 4
    study = optuna.load_study(
        study_name=search.STUDY_NAME, storage=f"sqlite:///{tmp_path}/study.db"
    )
    for t in study.get_trials():
        assert "epochs" not in t.params and t.user_attrs["plan"]["epochs"] == 4.0
        assert t.user_attrs["plan"]["search_space"] == {}
    pruned = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "the seeded search prunes trials after the first (3 of 4 when written)"
    assert all(max(t.intermediate_values) == 2 for t in pruned)  # stopped at the rung, epoch 2
    assert out["best"]["plan"]["epochs"] == 4.0


def test_a_search_stopped_mid_trial_resumes_to_the_same_trials(tiny_model, sentiment_csv, tmp_path):
    """`interrupted()` stops the running trial at its next step, not after all its epochs; the
    trial is failed and, when the search resumes, tried again with the same values, so the
    finished trials match those of a search that was never stopped."""
    from transformers import TrainerCallback

    plan, data = search_inputs(tiny_model, sentiment_csv, trials=2)
    flag = {"on": False}

    class StopAtStep3(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                flag["on"] = True

    stopped = search.run_search(
        plan, data, tmp_path / "a", callbacks=[StopAtStep3()], interrupted=lambda: flag["on"]
    )
    assert [(r["state"], r["note"]) for r in stopped["trials"]] == [("fail", "stopped on request")]
    assert stopped["best"] is None
    study = optuna.load_study(
        study_name=search.STUDY_NAME, storage=f"sqlite:///{tmp_path / 'a'}/study.db"
    )
    # stopped at step 3, inside its first epoch: not one evaluation reported
    assert study.trials[0].user_attrs["stopped"] and study.trials[0].intermediate_values == {}

    resumed = search.run_search(plan, data, tmp_path / "a")
    assert resumed["retried"] == [0]
    again = search.run_search(plan, data, tmp_path / "a")  # nothing left: not retried twice
    assert again["retried"] == []
    never = search.run_search(plan, data, tmp_path / "b")

    def finished(result):
        return [
            (r["params"], r["state"], r["value"])
            for r in result["trials"]
            if r["state"] in ("complete", "pruned")
        ]

    assert finished(resumed) == finished(never) and len(finished(never)) == 2
    assert resumed["best"]["value"] == never["best"]["value"]


def test_the_worker_says_how_many_trials_a_stopped_search_finished(monkeypatch, tmp_path):
    from tuning_core import worker

    rows = [{"state": s} for s in ("complete", "pruned", "fail", "complete")]
    monkeypatch.setattr(
        search, "run_search", lambda *a, **k: {"best": None, "trials": rows, "retried": []}
    )
    plan = {"batch_size": 8, "extras": {}}
    got = worker.search_then_report(plan, {"labels": ["a"]}, tmp_path, [], lambda: True)
    assert got == {"interrupted": True, "global_step": 0, "trials_finished": 3}
