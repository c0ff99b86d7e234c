"""The hyperparameter search: an Optuna study over the plan's search space.

`run_search(plan, data, out_dir)` trains one trial per suggested plan with the recipe, each in
`out_dir/trials/trial-N`, and returns the best trial. Its parts:

- TPE with the plan's seed; every trial trains with the plan's seed too, so trials differ only
  in their hyperparameters.
- Each evaluation (once per epoch) is reported to the trial, and a pruner stops trials that
  trail the others: ASHA by default (epochs as the budget: every trial gets the space's
  longest schedule and is judged at rungs of 2, 6, 18 epochs), median (at the same share of
  their schedules) or Hyperband.
- A budget in trials (the plan's `trials`) and in wall time (`timeout_s`).
- The study lives in SQLite (`out_dir/study.db`), so `optuna-dashboard sqlite:///…/study.db`
  opens it and a killed search resumes: the finished trials stay as they were, and a trial that a
  dead process left running is marked failed and tried again with the same values.
- `too_big(plan)`, when given, names why a suggested plan would not fit (from the memory
  forecast); such a trial is recorded as pruned without training.
- The best trial keeps its model folder (trained to its best epoch, checkpoint restored); the
  others keep only their report, to spare the disk.

optuna and the recipe's libraries are imported inside the functions.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuning_core import recipe

INT_FIELDS = ("epochs", "lora_rank", "freeze_layers", "batch_size")
STUDY_NAME = "tunesmith"
PRUNERS = ("median", "asha", "hyperband", "none")
# the search's pruner unless one is named: asha (judging by schedule progress at its first rung,
# by epoch after) came on average 0.59 points below the unpruned search's best for 0.47x of its
# epochs on emotion-400, two seeds (bench/search_pruning.py, RESULTS.md 2026-11-30); the median
# pruner, the default until then, never came under 0.64x on the searches it was measured on
DEFAULT_PRUNER = "asha"
# pruners whose budget is the epoch: under them every trial gets the same schedule, the
# longest in the space, and the pruner decides how much of it each trial trains
EPOCH_BUDGET_PRUNERS = ("asha",)


def suggest(trial, plan: dict) -> dict:
    """The plan with each searched field replaced by the trial's suggestion."""
    out = {**plan, "trials": 0, "search_space": {}}
    for name, space in sorted(plan.get("search_space", {}).items()):
        if "choices" in space:
            out[name] = trial.suggest_categorical(name, list(space["choices"]))
        elif name in INT_FIELDS:
            out[name] = trial.suggest_int(
                name,
                int(space["low"]),
                int(space["high"]),
                step=int(space.get("step", 1)),
                log=bool(space.get("log", False)),
            )
        else:
            out[name] = trial.suggest_float(
                name, float(space["low"]), float(space["high"]), log=bool(space.get("log", False))
            )
    if "epochs" in out:
        out["epochs"] = float(out["epochs"])
    return out


# Options that change the shape of a learning curve, not only its height: a trial is compared
# with finished trials that share them. Under gradual unfreezing only the head and the top
# layers train in the first epochs, so such a trial trails full fine-tuning early and overtakes
# it later (measured on emotion-600: one scored 0.34 after epoch 2 and 0.685 at the end).
CURVE_SHAPING = ("gradual_unfreezing",)


def curve_shape(t) -> dict[str, Any]:
    """A trial's `CURVE_SHAPING` options: pruners compare a trial with trials that share them."""
    return {k: t.params.get(k) for k in CURVE_SHAPING}


def trial_epochs(t) -> float | None:
    """The length of a trial's schedule in epochs (searched, or the plan's), if recorded."""
    epochs = t.params.get("epochs") or t.user_attrs.get("epochs")
    return float(epochs) if epochs else None


def matched_median_pruner(
    n_startup_trials: int = 2, n_warmup_steps: int = 2, min_share: float = 0.25
):
    """Median pruning among like trials, at the same share of their schedules.

    After each evaluation (step = epoch) from step `n_warmup_steps` and `min_share` of the
    trial's own epochs on, a trial stops when its best metric so far is below the median of what
    the finished trials with the same `CURVE_SHAPING` options had reached by the same share of
    their own schedules; it is not judged until `n_startup_trials` such trials have finished.
    The share matters because the search varies the number of epochs, and the learning rate
    decays over the whole schedule: after 2 of 12 epochs a trial has barely started decaying
    while one of 5 epochs is nearly done, so at equal epochs the short ones look better. Trials
    without a recorded length are compared at the same step."""
    import statistics

    import optuna
    from optuna.trial import TrialState

    def reached(t, step: int, share: float | None) -> float | None:
        epochs = trial_epochs(t)
        if share is None or epochs is None:
            return t.intermediate_values.get(step)
        values = [v for s, v in t.intermediate_values.items() if s / epochs <= share + 1e-9]
        return max(values) if values else None

    class MatchedMedianPruner(optuna.pruners.BasePruner):
        def prune(self, study, trial) -> bool:
            step = trial.last_step
            if step is None or step < n_warmup_steps:
                return False
            epochs = trial_epochs(trial)
            share = step / epochs if epochs else None
            if share is not None and share < min_share:
                return False
            shape = curve_shape(trial)
            peers = [
                t
                for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if curve_shape(t) == shape
            ]
            if len(peers) < n_startup_trials:
                return False
            values = [v for t in peers if (v := reached(t, step, share)) is not None]
            if not values:
                return False
            so_far = [v for s, v in trial.intermediate_values.items() if s <= step]
            if study.direction == optuna.study.StudyDirection.MAXIMIZE:
                return max(so_far) < statistics.median(values)
            return min(so_far) > statistics.median(values)

    return MatchedMedianPruner()


def epochs_as_budget(plan: dict) -> dict:
    """The plan with `epochs` taken out of its search space and set to the space's longest
    schedule: the pruner, not the sampler, then decides how many epochs a trial trains (early
    stopping still ends a trial that stops improving). With a searched `epochs`, trials decay
    their learning rate over different schedules, so their metrics at the same epoch are not
    comparable; with one schedule they are."""
    space = dict(plan.get("search_space") or {})
    epochs = space.pop("epochs", None)
    if epochs is None:
        return plan
    return {**plan, "epochs": float(epochs["high"]), "search_space": space}


def lr_area(plan: dict, epoch: float) -> float:
    """The area under a plan's learning-rate schedule from the start to `epoch` (in epochs
    times learning rate): how far the optimiser has been allowed to move by then. Warmup is
    the plan's share of the schedule; linear, cosine and constant decay as in transformers."""
    lr = float(plan["learning_rate"])
    total = float(plan["epochs"])
    scheduler = plan.get("scheduler", "linear")
    warm = 0.0 if scheduler == "constant" else float(plan.get("warmup", 0.0)) * total
    t = min(max(epoch, 0.0), total)
    if t <= warm:
        return lr * t * t / (2 * warm) if warm else 0.0
    area, x, rest = lr * warm / 2, t - warm, total - warm
    if scheduler == "linear":
        return area + lr * (x - x * x / (2 * rest))
    if scheduler == "cosine":
        return area + lr / 2 * (x + rest / math.pi * math.sin(math.pi * x / rest))
    return area + lr * x  # constant, constant_with_warmup


def epoch_at_area(plan: dict, area: float) -> float | None:
    """The epoch at which `lr_area(plan, epoch)` reaches `area`; None if it never does."""
    total = float(plan["epochs"])
    if lr_area(plan, total) < area:
        return None
    low, high = 0.0, total
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if lr_area(plan, middle) < area else (low, middle)
    return high


# how `asha` judges a trial against the others (see asha_pruner), measured on emotion-400, 20
# trials, 1000 validation rows (bench/RESULTS.md, 2026-11-30): "mixed" came 0.12 points below
# the unpruned best for 0.41x of its epochs (seed 42; by epoch: 0 points, 0.56x) and 1.06
# points below for 0.53x (seed 7), where its chosen model scored higher on the test split
# (0.7247 against 0.7196). On the official 374 validation rows, whose noise is larger than the
# 1-point margin, neither "epoch" nor "progress" came within a point in real searches.
ASHA_COMPARE = "mixed"
ASHA_COMPARES = ("epoch", "progress", "mixed")


def asha_pruner(min_epochs: int = 2, reduction_factor: int = 3, compare: str = ASHA_COMPARE):
    """Asynchronous successive halving (Li et al. 2020, "A System for Massively Parallel
    Hyperparameter Tuning"), with epochs as the budget and trials judged among like trials.

    Rungs are at `min_epochs` * `reduction_factor`**k epochs (2, 6, 18, ...). At a rung a trial
    goes on only if its best metric so far is among the top 1/`reduction_factor` of the trials
    with the same `CURVE_SHAPING` options that can be compared with it (itself included); while
    fewer than `reduction_factor` can, it goes on only if it is the best of them (as Optuna's
    SuccessiveHalvingPruner does). Like trials: under gradual unfreezing the first epochs train
    the top layers only, so such a trial trails full fine-tuning early (see `CURVE_SHAPING`).

    `compare="epoch"` judges the others by their best metric by the same epoch. A trial with a low learning rate then always looks behind early, although on
    emotion-400 the best trials of the unpruned search had the lowest rates and overtook the
    rest after epoch 6 (bench/RESULTS.md, 2026-11-30): ASHA stopped them at epoch 2.
    `compare="progress"` judges the others by their best metric by the epoch at which they had
    come as far along their own learning-rate schedules (`lr_area`) as this trial has at the
    rung: the same distance the optimiser was allowed to move. A finished trial that never came
    that far counts with its best; an unfinished one, or one not yet that far, is left out.
    `compare="mixed"` (`ASHA_COMPARE`) judges by progress at the first rung and by epoch from
    the second: a slow schedule is not stopped before it has moved, and later it has to keep up.
    Trials without a recorded plan are compared by epoch."""
    import optuna
    from optuna.trial import TrialState

    def best_by(t, step: float) -> float | None:
        values = [v for s, v in t.intermediate_values.items() if s <= step + 1e-9]
        return max(values) if values else None

    if compare not in ASHA_COMPARES:
        raise ValueError(f"compare must be one of {ASHA_COMPARES}, not {compare!r}")

    def plan_of(t) -> dict | None:
        plan = t.user_attrs.get("plan")
        if compare == "epoch" or not plan or "learning_rate" not in plan:
            return None
        return plan

    def comparable(t, mine: dict | None, rung: int) -> float | None:
        """`t`'s best metric where it had come as far as this trial at `rung`, or None."""
        theirs = plan_of(t)
        if compare == "mixed" and rung > min_epochs:
            theirs = None  # by epoch from the second rung
        if mine is None or theirs is None:
            return best_by(t, rung) if max(t.intermediate_values, default=0) >= rung else None
        at = epoch_at_area(theirs, lr_area(mine, rung))
        reached = max(t.intermediate_values, default=0)
        if at is None or math.floor(at + 1e-9) > reached:
            if t.state == TrialState.COMPLETE and t.intermediate_values:
                return max(t.intermediate_values.values())
            return None
        step = math.floor(at + 1e-9)
        return best_by(t, step) if step >= 1 else None

    class ShapeMatchedASHA(optuna.pruners.BasePruner):
        def prune(self, study, trial) -> bool:
            step = trial.last_step
            if step is None or step < min_epochs:
                return False
            rung = min_epochs
            while rung * reduction_factor <= step:
                rung *= reduction_factor
            if step != rung:
                return False
            sign = 1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1
            shape = curve_shape(trial)
            mine = best_by(trial, step)
            plan = plan_of(trial)
            values = [
                sign * v
                for t in study.get_trials(deepcopy=False)
                if t.number != trial.number
                and curve_shape(t) == shape
                and (v := comparable(t, plan, rung)) is not None
            ]
            values.append(sign * mine)
            values.sort(reverse=True)
            keep = max(1, len(values) // reduction_factor)
            return sign * mine < values[keep - 1]

    return ShapeMatchedASHA()


def _pruner(name: str, max_epochs: int):
    import optuna

    if name == "median":
        # no verdict on a trial before its second evaluation (steps are epochs counted from 1):
        # the first epoch says little, least of all with gradual unfreezing (head only)
        return matched_median_pruner(n_startup_trials=2, n_warmup_steps=2)
    if name == "asha":
        return asha_pruner(min_epochs=2, reduction_factor=3, compare=ASHA_COMPARE)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=2, max_resource=max(2, max_epochs), reduction_factor=3
        )
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"pruner must be one of {PRUNERS}, not {name!r}")


def score_sign(metric: str) -> int:
    """The study maximises; an error metric (mse, mae) is stored negated, so lower is better."""
    return -1 if metric in recipe.LOWER_IS_BETTER else 1


def _report_callback(trial, metric: str):
    """Reports each evaluation's metric to the trial (step = epoch) and stops a pruned trial."""
    import optuna
    from transformers import TrainerCallback

    class ReportToTrial(TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            value = (metrics or {}).get(f"eval_{metric}")
            if value is None and metric == "perplexity" and "eval_loss" in (metrics or {}):
                value = recipe.instruct_tools().perplexity(float(metrics["eval_loss"]))
            if value is None:
                return
            step = max(1, round(float(state.epoch or 0)))
            trial.report(score_sign(metric) * float(value), step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"{metric} {value:.4f} after epoch {step}")

    return ReportToTrial()


def open_study(
    out_dir: Path,
    seed: int,
    pruner: str = DEFAULT_PRUNER,
    max_epochs: int = 5,
    storage: str | None = None,
):
    """The search's study, created or reopened: in `out_dir/study.db`, or in the Optuna RDB
    `storage` URL (PostgreSQL, MySQL, SQLite) that several workers on several machines share.
    A shared study keeps a heartbeat, so a trial whose worker died is failed and retried by
    another worker."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage:
        from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

        for attempt in range(4):
            try:
                where = RDBStorage(
                    storage,
                    heartbeat_interval=30,
                    grace_period=120,
                    failed_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
                )
                break
            except Exception:  # two workers creating the tables at once: one of them loses
                if attempt == 3:
                    raise
                time.sleep(1.0 + attempt)
    else:
        where = f"sqlite:///{(Path(out_dir) / 'study.db').resolve()}"
    return optuna.create_study(
        storage=where,
        study_name=STUDY_NAME,
        direction="maximize",
        # workers sharing a study must not draw the same values: each gets a seed of its own
        sampler=optuna.samplers.TPESampler(seed=None if storage else seed),
        pruner=_pruner(pruner, max_epochs),
        load_if_exists=True,
    )


def _rng_states(sampler) -> list:
    """The numpy random states that a seeded TPE sampler draws from (its own and that of the
    random sampler behind its first trials); empty for a sampler without them."""
    found = []
    for owner in (sampler, getattr(sampler, "_random_sampler", None)):
        lazy = getattr(owner, "_rng", None)
        if lazy is not None and hasattr(lazy, "rng"):
            found.append(lazy.rng)
    return found


def sampler_state(sampler) -> list:
    """The sampler's random states as JSON-ready lists."""
    out = []
    for rng in _rng_states(sampler):
        name, keys, pos, has_gauss, cached = rng.get_state()
        out.append([name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)])
    return out


def restore_sampler(study) -> bool:
    """Put the study's sampler back where it was after the newest trial drew its values, so a
    search resumed after a kill draws what an uninterrupted one would have drawn (a fresh
    sampler with the same seed would start its sequence again). False when nothing was saved."""
    import numpy as np

    saved = [t for t in study.get_trials(deepcopy=False) if "sampler_rng" in t.user_attrs]
    if not saved:
        return False
    states = saved[-1].user_attrs["sampler_rng"]
    rngs = _rng_states(study.sampler)
    if len(states) != len(rngs):
        return False
    for rng, (name, keys, pos, has_gauss, cached) in zip(rngs, states, strict=True):
        rng.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    return True


class StopRequested(Exception):
    """A trial stopped on request (`interrupted()`): failed, and tried again on resume."""


def retry_abandoned(study) -> list[int]:
    """Trials left RUNNING by a process that died, and trials stopped on request: marked
    failed, their values queued again (once)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    queued = {t.user_attrs.get("retry_of") for t in trials}
    retried = []
    for t in trials:
        stopped = t.state == TrialState.FAIL and t.user_attrs.get("stopped")
        if t.state != TrialState.RUNNING and not (stopped and t.number not in queued):
            continue
        if t.state == TrialState.RUNNING:
            study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        if t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        retried.append(t.number)
    return retried


def run_search(
    plan: dict,
    data: dict,
    out_dir,
    timeout_s: float | None = None,
    pruner: str = DEFAULT_PRUNER,
    too_big: Callable[[dict], str | None] | None = None,
    callbacks=(),
    on_trial: Callable[[dict], None] | None = None,
    interrupted: Callable[[], bool] = lambda: False,
    storage: str | None = None,
) -> dict[str, Any]:
    """Search as the plan says; returns {"best": {...}, "trials": [...], "retried": [...]}.

    `callbacks` go to every trial's Trainer; `on_trial(row)` is called after each trial with
    its row of the trials table; `interrupted()` true stops the search at the current trial's
    next step (the trial is failed, and retried with the same values when the search resumes).
    With `storage` (an Optuna RDB URL) the study is shared: each worker takes trials until the
    study holds the plan's number of finished trials.
    """
    import optuna
    from optuna.trial import TrialState

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    budget = int(plan.get("trials", 0))
    if pruner in EPOCH_BUDGET_PRUNERS:
        plan = epochs_as_budget(plan)
    if budget < 1 or not plan.get("search_space"):
        raise ValueError("a search needs trials >= 1 and a search space")
    max_epochs = int(plan.get("search_space", {}).get("epochs", {}).get("high", plan["epochs"]))
    study = open_study(out_dir, int(plan["seed"]), pruner, max_epochs, storage)
    # a shared study's running trials may belong to live workers: its heartbeat retries the dead
    retried = [] if storage else retry_abandoned(study)
    if not storage:  # a seeded sampler: it goes on from where the killed search left it
        restore_sampler(study)
    metric = plan.get("metric", "macro_f1")
    started = time.monotonic()

    def objective(trial) -> float:
        trial_plan = suggest(trial, plan)
        if not storage:  # what a resumed search needs to draw the next trial's values alike
            trial.set_user_attr("sampler_rng", sampler_state(study.sampler))
        trial.set_user_attr("plan", trial_plan)
        trial.set_user_attr("epochs", float(trial_plan["epochs"]))  # the pruner's yardstick
        reason = too_big(trial_plan) if too_big else None
        if reason:
            trial.set_user_attr("skipped", reason)
            raise optuna.TrialPruned(f"not tried: {reason}")
        run_dir = out_dir / "trials" / f"trial-{trial.number}"
        if run_dir.exists():
            shutil.rmtree(run_dir)  # a retried or half-written trial starts clean
        try:
            report = recipe.train_and_evaluate(
                trial_plan,
                data,
                run_dir,
                callbacks=[
                    *callbacks,
                    _report_callback(trial, metric),
                    recipe.stop_callback(interrupted),
                ],
                interrupted=interrupted,
            )
        except Exception as exc:
            if not recipe.is_out_of_memory(exc):
                raise
            reason = f"out of memory at micro-batch {trial_plan['batch_size']}"
            trial.set_user_attr("skipped", reason)
            failure = optuna.TrialPruned(reason)
        else:
            failure = None
        if failure is not None:  # raised outside the handler, so the failed step's memory goes
            recipe.free_accelerator_memory()
            raise failure
        if report.get("interrupted"):  # failed, and retried when the search resumes
            trial.set_user_attr("stopped", True)
            raise StopRequested(f"trial {trial.number} stopped on request")
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        recipe_report = {k: v for k, v in report.items() if k != "loss_curve"}
        (run_dir / "report.json").write_text(json.dumps(recipe_report, indent=1, sort_keys=True))
        value = float(report["validation"][metric])
        trial.set_user_attr("epochs_run", report.get("epochs_run"))
        return score_sign(metric) * value

    def after_trial(study, frozen) -> None:
        keep_best_model_only(study, out_dir)
        if on_trial:
            on_trial(trial_row(frozen, metric))
        if interrupted():
            study.stop()

    while True:
        done = len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)))
        left = budget - done
        remaining_s = None if timeout_s is None else timeout_s - (time.monotonic() - started)
        if left <= 0 or (remaining_s is not None and remaining_s <= 0) or interrupted():
            break
        # one trial at a time, so the budget counts finished trials, retries included
        try:
            study.optimize(
                objective, n_trials=1, timeout=remaining_s, callbacks=[after_trial], catch=()
            )
        except StopRequested:
            break
    rows = [trial_row(t, metric) for t in study.get_trials(deepcopy=False)]
    complete = [t for t in study.get_trials(states=(TrialState.COMPLETE,))]
    best = None
    if complete:
        b = study.best_trial
        best = {
            "number": b.number,
            "value": score_sign(metric) * b.value,
            "params": b.params,
            "plan": b.user_attrs["plan"],
            "run_dir": str(out_dir / "trials" / f"trial-{b.number}"),
        }
    return {"best": best, "trials": rows, "retried": retried, "metric": metric}


def trial_row(t, metric: str = "macro_f1") -> dict[str, Any]:
    """One row of the trials table: number, state, value (the metric itself, un-negated),
    params, epochs reached, duration."""
    seconds = None
    if t.datetime_start and t.datetime_complete:
        seconds = round((t.datetime_complete - t.datetime_start).total_seconds(), 1)
    return {
        "number": t.number,
        "state": t.state.name.lower(),
        "value": None if t.value is None else round(score_sign(metric) * float(t.value), 4),
        "params": dict(t.params),
        "epochs_reported": max(t.intermediate_values, default=0),
        "seconds": seconds,
        "note": t.user_attrs.get("skipped")
        or ("stopped on request" if t.user_attrs.get("stopped") else ""),
    }


def keep_best_model_only(study, out_dir: Path) -> None:
    """Delete the model folders of every trial but the best one so far."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = max(complete, key=lambda t: t.value).number if complete else None
    for folder in (Path(out_dir) / "trials").glob("trial-*"):
        if folder.name != f"trial-{best}":
            shutil.rmtree(folder / "model", ignore_errors=True)
            shutil.rmtree(folder / "checkpoints", ignore_errors=True)
