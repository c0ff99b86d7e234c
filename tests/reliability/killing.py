"""Kill a worker with SIGKILL at random moments, start it again, and let it finish.

Shared by tests/reliability/test_kill_loop.py and bench/kill_loop.py. The moments are
paced by the events an uninterrupted run writes (see `kill_loop`), so kills land while it
starts, trains, evaluates, checkpoints and writes its report, on a busy machine as on an idle
one.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

from tuning_core import runs

METRIC_KEYS = ("validation", "test", "loss_curve", "global_step", "epochs_run")


def comparable(report: dict) -> dict:
    """What must not change when a run is killed and resumed: every metric, the loss curve and
    the step count; for a search also the best trial's values and score."""
    out = {k: report.get(k) for k in METRIC_KEYS}
    search = report.get("search")
    if search:
        out["best_params"] = search["best"]["params"]
        out["best_value"] = search["best"]["value"]
        out["finished_trials"] = sorted(
            (json.dumps(t["params"], sort_keys=True), t["value"])
            for t in search["trials"]
            if t["state"] in ("complete", "pruned")
        )
    return out


def run_to_end(run_dir: Path, env: dict[str, str] | None = None, limit_s: float = 600) -> dict:
    """Start (or restart) the worker and wait for a terminal state; the status."""
    runs.start_worker(run_dir, env=env)
    return runs.follow_run(run_dir, lambda e: None, poll_s=0.1)


def worker_ready_time(run_dir: Path, pid: int, limit_s: float = 120) -> float:
    """Wait until worker `pid` has written its first event (it has imported torch and holds
    the folder); the monotonic time then, or now if it died first."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        events, _ = runs.read_events(run_dir)
        if any(e.get("type") == "worker" and e.get("pid") == pid for e in events):
            break
        if not runs.pid_alive(pid):
            break
        time.sleep(0.02)
    return time.monotonic()


def resumes_at(events: list[dict], reference: list[dict]) -> float:
    """How far into the uninterrupted run (seconds from its first event) a restart picks up:
    a search at the end of its last finished trial, a training run at its last checkpoint."""
    first = next(e["time"] for e in reference if e["type"] == "worker")
    ref_trials = [e["time"] for e in reference if e["type"] == "trial"]
    if ref_trials:
        done = sum(e["type"] == "trial" for e in events)
        return ref_trials[done - 1] - first if done else 0.0
    steps = [e["step"] for e in events if e["type"] == "checkpoint"]
    if not steps:
        return 0.0
    at = [e["time"] for e in reference if e["type"] == "checkpoint" and e["step"] == max(steps)]
    return at[0] - first if at else 0.0


def kill_loop(
    run_dir: Path,
    kills: int,
    reference: list[dict],
    rng: random.Random,
    env: dict[str, str] | None = None,
) -> list[dict]:
    """Start the worker and SIGKILL it at a random moment, `kills` times. The moment is paced
    by the run itself, so that a busy or an idle machine moves it alike: of the events the
    uninterrupted run (`reference`) wrote after the point this restart picks up from, one is
    drawn; the kill comes once the new worker has written as many, plus a random share of the
    time the reference took to its next event (its start-up, a stretch of steps, a checkpoint,
    the evaluation). Returns what each kill hit: the seconds after the worker's first event,
    whether it landed before the run finished, the newest step logged, the newest event and
    the number of events so far. The caller then lets the run finish."""
    first = next(e["time"] for e in reference if e["type"] == "worker")
    hits = []
    for _ in range(kills):
        events, _ = runs.read_events(run_dir)
        if runs.read_status(run_dir).get("state") == "finished":
            break
        resume = resumes_at(events, reference)
        # what the reference wrote after that point, its own first event excluded
        rest = [e for e in reference if e["time"] - first > resume and e["type"] != "worker"]
        j = rng.randrange(max(len(rest) - 1, 1))  # never after its last event
        before = len(events)
        pid = runs.start_worker(run_dir, env=env)
        ready = worker_ready_time(run_dir, pid)
        while runs.pid_alive(pid):
            written = len(runs.read_events(run_dir)[0]) - before - 1  # after its "worker" event
            if written >= j:
                break
            time.sleep(0.005)
        start = rest[j - 1]["time"] if j else first + resume
        gap = min(max(rest[j]["time"] - start, 0.0), 5.0) if rest else 0.5
        time.sleep(rng.uniform(0.0, 0.8 * gap))  # 0.8: a restart may go faster than it did
        landed = runs.pid_alive(pid) and runs.read_status(run_dir).get("state") != "finished"
        if runs.pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            while runs.pid_alive(pid):
                time.sleep(0.01)
        events, _ = runs.read_events(run_dir)
        steps = [e.get("step", 0) for e in events if e.get("type") in ("log", "checkpoint")]
        hits.append(
            {
                "after_s": round(time.monotonic() - ready, 2),
                "killed": landed,
                "last_step": max(steps, default=0),
                "last_event": events[-1]["type"] if events else None,
                "events": len(events),
            }
        )
    return hits
