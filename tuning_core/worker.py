"""The training worker: `python -m tuning_core.worker RUN_DIR`.

Runs the recipe on the run folder's plan and data, in its own process so that it survives the
terminal closing and never competes with the UI. It streams events into `events.jsonl`,
checkpoints each epoch, and on SIGTERM checkpoints at the current step and exits; started
again on the same folder it resumes from the newest checkpoint, with the same result as an
uninterrupted run. The seed and the library versions are stored with the run.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import resource
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from tuning_core import recipe
from tuning_core.runs import read_status, write_json_atomic

# An Optuna RDB URL for the search's study (shared by several workers); read, never stored.
STORAGE_ENV = "TUNESMITH_STORAGE"
# Tests slow each step down by this many seconds to hit a run mid-epoch; never set otherwise.
STEP_DELAY_ENV = "TUNESMITH_TEST_STEP_DELAY"
# Tests set "STEP:BATCH" to raise an out-of-memory error at update STEP while the micro-batch is
# larger than BATCH, as a GPU that is too small would; never set otherwise.
OOM_ENV = "TUNESMITH_TEST_OOM"
# held (flock) by the worker training in a run folder: a second worker there exits at once
LOCK_NAME = "worker.lock"


class EventLog:
    """Appends one JSON object per line; each line is written with a single write call.

    A worker killed in the middle of a write can leave half a line at the end; the next worker
    ends it first, so that its own first event is not glued to it (readers skip the broken one).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with open(path, "rb+") as fh:
                fh.seek(0, os.SEEK_END)
                if fh.tell():
                    fh.seek(-1, os.SEEK_END)
                    if fh.read(1) != b"\n":
                        fh.write(b"\n")
        except FileNotFoundError:
            pass

    def append(self, event: dict[str, Any]) -> None:
        line = json.dumps({"time": round(time.time(), 3), **event}, sort_keys=True) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()


def hardware_line() -> str:
    """Where the run trained, in words: the GPU(s), or the CPU and its cores."""
    import torch

    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return f"{len(names)} x {names[0]} (CUDA {torch.version.cuda})"
    return f"CPU, {os.cpu_count()} cores ({platform.machine()}), {torch.get_num_threads()} threads"


def library_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    names = ("torch", "transformers", "datasets", "accelerate", "peft", "tokenizers", "numpy")
    # scikit-learn: the linear probe that can start the output layer; optuna: the search
    for name in (*names, "scikit-learn", "optuna"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 1024**2, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def progress_callback(events: EventLog, batch_size: int):
    """Streams step, loss, learning rate, grad norm, eval metrics, speed, memory and ETA."""
    from transformers import TrainerCallback

    delay = float(os.environ.get(STEP_DELAY_ENV, "0") or 0)
    oom_at = [int(v) for v in os.environ.get(OOM_ENV, "").split(":") if v.strip()]

    class Progress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.start_time, self.start_step = time.monotonic(), state.global_step
            events.append(
                {"type": "start", "step": state.global_step, "max_steps": state.max_steps}
            )

        def on_step_begin(self, args, state, control, **kwargs):
            too_big = oom_at and args.per_device_train_batch_size > oom_at[1]
            if too_big and state.global_step >= oom_at[0]:
                import torch

                raise torch.OutOfMemoryError("CUDA out of memory (injected by a test)")

        def on_step_end(self, args, state, control, **kwargs):
            if delay:
                time.sleep(delay)

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" not in logs:
                return
            elapsed = time.monotonic() - self.start_time
            done = max(1, state.global_step - self.start_step)
            per_step = elapsed / done
            events.append(
                {
                    "type": "log",
                    "step": state.global_step,
                    "max_steps": state.max_steps,
                    "epoch": round(float(state.epoch or 0), 3),
                    "loss": round(float(logs["loss"]), 4),
                    "learning_rate": float(logs.get("learning_rate", 0.0)),
                    "grad_norm": round(float(logs.get("grad_norm", 0.0)), 4),
                    "samples_per_s": round(done * batch_size / max(elapsed, 1e-9), 1),
                    "eta_s": round(per_step * (state.max_steps - state.global_step), 1),
                    "memory_mb": peak_memory_mb(),
                }
            )

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            events.append(
                {
                    "type": "eval",
                    "step": state.global_step,
                    "epoch": round(float(state.epoch or 0), 3),
                    "metrics": {k: round(float(v), 4) for k, v in (metrics or {}).items()},
                }
            )

        def on_save(self, args, state, control, **kwargs):
            events.append({"type": "checkpoint", "step": state.global_step})

    return Progress()


def smaller_batch(plan: dict) -> dict | None:
    """The plan with half the micro-batch and twice the accumulation (the effective batch kept),
    or None when the micro-batch is already 1."""
    batch = int(plan["batch_size"])
    if batch <= 1:
        return None
    half = batch // 2
    accum = -(-batch * int(plan.get("grad_accum", 1)) // half)  # exact for an even batch
    return {**plan, "batch_size": half, "grad_accum": accum}


def train_adapting_batch(plan: dict, data: dict, run_dir: Path, events: EventLog, stop, resume):
    """Train the plan; on a GPU out-of-memory error, halve the micro-batch, double the gradient
    accumulation and resume from the last checkpoint, until it fits or the micro-batch is 1.
    Returns the report and the plan that finished (also written to `run_dir/plan.json`)."""
    while True:
        failure = None
        try:
            report = recipe.train_and_evaluate(
                plan,
                data,
                run_dir,
                callbacks=[progress_callback(events, int(plan["batch_size"])), stop],
                resume=resume,
                interrupted=lambda: stop.stopped,
            )
            return report, plan
        except Exception as exc:
            if not recipe.is_out_of_memory(exc):
                raise
            failure = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        smaller = smaller_batch(plan)
        if smaller is None:
            raise RuntimeError(f"out of memory even with a micro-batch of 1 ({failure})")
        recipe.free_accelerator_memory()
        checkpoint = recipe.last_complete_checkpoint(run_dir / "checkpoints")
        step = int(checkpoint.rsplit("-", 1)[1]) if checkpoint else 0
        effective = int(plan["batch_size"]) * int(plan.get("grad_accum", 1))
        message = (
            f"The GPU ran out of memory with a micro-batch of {plan['batch_size']}. I halved it "
            f"to {smaller['batch_size']} and raised gradient accumulation to "
            f"{smaller['grad_accum']}, so each update still averages {effective} rows, and "
            + (f"resumed from the checkpoint at step {step}." if step else "restarted the run.")
        )
        events.append(
            {
                "type": "oom",
                "step": step,
                "batch_size": smaller["batch_size"],
                "grad_accum": smaller["grad_accum"],
                "was_batch_size": plan["batch_size"],
                "message": message,
            }
        )
        plan = smaller
        write_json_atomic(run_dir / "plan.json", plan)
        resume = checkpoint is not None


def memory_filter(run_dir: Path, labels: int):
    """From the run's `limits.json` (the memory there is and the data's profile, written when the
    run was started), a check that names why a trial's plan would not fit, or None without it."""
    path = run_dir / "limits.json"
    if not path.exists():
        return None
    from tuning_core.forecast import forecast_run
    from tuning_core.plan import Plan
    from tuning_core.profile import DataProfile

    limits = json.loads(path.read_text())
    memory_mb = float(limits["memory_mb"])
    profile = DataProfile.from_dict(limits["profile"])
    calibration = limits.get("calibration") or {}

    def too_big(trial_plan: dict) -> str | None:
        peak = forecast_run(Plan.from_dict(trial_plan), profile, labels, calibration)
        if peak.peak_memory_mb > memory_mb:
            return f"forecast peak {peak.peak_memory_mb:.0f} MB > {memory_mb:.0f} MB available"
        return None

    return too_big


def search_then_report(plan: dict, data: dict, run_dir: Path, events: EventLog, stopping) -> dict:
    """Run the plan's search in `run_dir/search` (resuming a killed one); the best trial's
    report becomes the run's, with the trials table and the plan it trained.

    With `TUNESMITH_STORAGE` set (an Optuna RDB URL), the study lives there and other workers
    can share it; the URL stays in the environment, never in the run folder or the session,
    since it may hold a password."""
    from tuning_core.search import run_search

    timeout = plan.get("extras", {}).get("search_seconds")
    result = run_search(
        plan,
        data,
        run_dir / "search",
        storage=os.environ.get(STORAGE_ENV) or None,
        timeout_s=float(timeout) if timeout else None,
        too_big=memory_filter(run_dir, max(1, len(data["labels"]))),
        callbacks=[progress_callback(events, int(plan["batch_size"]))],
        on_trial=lambda row: events.append({"type": "trial", **row}),
        interrupted=stopping,
    )
    if stopping():  # the trial it was training is failed and retried when the search resumes
        finished = sum(row["state"] in ("complete", "pruned") for row in result["trials"])
        return {"interrupted": True, "global_step": 0, "trials_finished": finished}
    best = result["best"]
    if best is None:
        raise RuntimeError("no trial of the search finished; see the trials table")
    report = json.loads((Path(best["run_dir"]) / "report.json").read_text())
    report["trained_plan"] = best["plan"]
    report["search"] = {
        "best": {k: best[k] for k in ("number", "value", "params")},
        "trials": result["trials"],
        "retried": result["retried"],
    }
    return report


def judge_report(report: dict, plan: dict, data: dict) -> dict:
    """The verdict on the report, with both baselines scored on the same test rows (left out,
    with a note, if they fail: the run itself succeeded)."""
    from tuning_core.baseline import baselines_on_test
    from tuning_core.judge import judge

    positive = report["test"].get("positive_label")
    if recipe.task_of(data) == recipe.INSTRUCT_TASK:  # the base model, scored in the run
        base = report["test"].get("base_perplexity")
        return judge(report, {"majority": None, "tfidf_lr": base})
    try:
        baselines = baselines_on_test(
            recipe.load_splits(data),
            list(data["labels"]),
            report["metric"],
            positive,
            seed=int(plan.get("seed", 42)),
            task=recipe.task_of(data),
            label_format=data.get("label_format"),
        )
    except Exception as exc:  # a missing baseline must not fail a finished run
        baselines = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
    verdict = judge(report, baselines)
    if "error" in baselines:
        verdict["calls"].append(f"The baselines could not be scored: {baselines['error']}")
    return verdict


def hold_run_lock(run_dir: Path) -> int | None:
    """Take the run folder's worker lock, an flock that the system drops when this process ends
    (SIGKILL included, so no stale lock is left). Its file descriptor, kept open for the life of
    the process, or None when another live worker holds it."""
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def failure_message(exc: BaseException) -> str:
    """One line for the chat: what went wrong, in words where we know them."""
    if isinstance(exc, recipe.CheckpointError):
        return str(exc).splitlines()[0][:500]
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return (
            f"The disk is full ({exc.filename or 'writing the run'}); free some space and resume."
        )
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]


def run(run_dir: Path) -> int:
    run_dir = Path(run_dir).resolve()
    lock = hold_run_lock(run_dir)
    if lock is None:
        holder = (run_dir / LOCK_NAME).read_text().strip() or "?"
        print(
            f"another worker (pid {holder}) is training in {run_dir}; not starting a second one",
            file=sys.stderr,
        )
        return 3
    try:
        return _run_holding_lock(run_dir)
    finally:
        os.close(lock)  # the lock goes with it (a process that ends drops it anyway)


def _run_holding_lock(run_dir: Path) -> int:
    from tuning_core.errors import TuningError
    from tuning_core.plan import Plan

    try:  # a plan edited by hand: unknown or wrong-typed fields are named, nothing runs
        Plan.load(run_dir / "plan.json")
    except TuningError as exc:
        write_json_atomic(run_dir / "status.json", {"state": "failed", "error": str(exc)})
        return 1
    plan = json.loads((run_dir / "plan.json").read_text())
    data = json.loads((run_dir / "data.json").read_text())
    events = EventLog(run_dir / "events.jsonl")
    stop_requested = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.set())

    # a checkpoint cut short by a kill or a full disk is deleted here, never resumed from
    resume = recipe.last_complete_checkpoint(run_dir / "checkpoints") is not None
    previous = read_status(run_dir)
    status = {
        "state": "running",
        "pid": os.getpid(),
        "started": previous.get("started") or time.time(),
        "resumed": resume,
        "seed": plan.get("seed"),
    }
    write_json_atomic(run_dir / "status.json", status)
    write_json_atomic(run_dir / "versions.json", library_versions())
    events.append({"type": "worker", "pid": os.getpid(), "resumed": resume})
    stop = recipe.stop_callback(stop_requested.is_set)
    try:
        if int(plan.get("trials", 0)) > 0 and plan.get("search_space"):
            report = search_then_report(plan, data, run_dir, events, stop_requested.is_set)
        else:
            first_batch = plan["batch_size"]
            report, plan = train_adapting_batch(plan, data, run_dir, events, stop, resume)
            if plan["batch_size"] != first_batch and not report.get("interrupted"):
                report["trained_plan"] = plan  # what ran to the end, for the export
    except Exception as exc:  # the run failed: say why, keep the traceback in worker.log
        traceback.print_exc()
        message = failure_message(exc)
        events.append({"type": "error", "message": message})
        # a full disk is not the run's fault: once there is room it resumes where it stopped
        space = isinstance(exc, recipe.CheckpointError) or getattr(exc, "errno", 0) == errno.ENOSPC
        failed = {**status, "state": "failed", "error": message, "resumable": space}
        write_json_atomic(run_dir / "status.json", failed)
        return 1
    if report.get("interrupted"):
        events.append({"type": "stopped", "step": report["global_step"]})
        stopped = {**status, "state": "stopped", "step": report["global_step"]}
        if "trials_finished" in report:
            stopped["trials_finished"] = report["trials_finished"]
        write_json_atomic(run_dir / "status.json", stopped)
        return 0
    report["versions"] = library_versions()
    report["seed"] = plan.get("seed")
    report["hardware"] = hardware_line()
    report["wall_seconds"] = round(time.time() - status["started"], 1)  # restarts included
    events.append({"type": "judging"})
    report["judge"] = judge_report(report, plan, data)
    write_json_atomic(run_dir / "report.json", report)
    headline = recipe.headline(report)
    events.append({"type": "finished", "headline": headline})
    write_json_atomic(
        run_dir / "status.json",
        {**status, "state": "finished", "ended": time.time(), "headline": headline},
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m tuning_core.worker RUN_DIR", file=sys.stderr)
        return 2
    lower_priority()
    return run(Path(argv[0]))


NICE_ENV = "TUNESMITH_WORKER_NICE"
DEFAULT_NICE = 10


def lower_priority() -> int:
    """Run the worker at a lower CPU priority (`nice`, 10 by default; `TUNESMITH_WORKER_NICE`
    sets it, 0 keeps the parent's): the app's event loop then gets a core the moment it needs
    one, while training still takes every cycle the app leaves idle. On this 2-core machine the
    worker's threads otherwise took the cores from the app in the middle of its screen updates
    (bench/ui_stalls.py). Returns the niceness now in force."""
    try:
        step = int(os.environ.get(NICE_ENV, DEFAULT_NICE))
    except ValueError:
        step = DEFAULT_NICE
    try:
        return os.nice(max(0, step))
    except (AttributeError, OSError):  # no nice() (Windows) or not allowed: run as is
        return 0


if __name__ == "__main__":
    sys.exit(main())
