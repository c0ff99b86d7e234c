"""Benchmark: kill the worker with SIGKILL at many random moments (issue 8, point 1).

The longer version of tests/reliability/test_kill_loop.py: a training run and a search on a
tiny random BERT (CPU), each killed KILLS times at random moments paced by the events of an
uninterrupted run (`tests/reliability/killing.py`), started again each time, then let finish; its metrics are compared with those of an
uninterrupted run with the same seed, and each kill point is listed (seconds after the worker's
first event, newest step logged, newest event).

    .venv/bin/python bench/kill_loop.py --kills 20 --seed 1
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "reliability"))

from benchlib import environment, record  # noqa: E402
from killing import comparable, kill_loop, run_to_end  # noqa: E402
from tiny import make_tiny_model, write_sentiment_csv  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tuning_core import runs  # noqa: E402
from tuning_core.data import inspect_data  # noqa: E402
from tuning_core.plan import Plan  # noqa: E402
from tuning_core.worker import STEP_DELAY_ENV  # noqa: E402

SPACE = {
    "learning_rate": {"low": 1e-3, "high": 6e-3, "log": True},
    "epochs": {"low": 3, "high": 6, "step": 1},
    "dropout": {"low": 0.0, "high": 0.2},
}
KINDS = {
    "training": {"learning_rate": 3e-3, "epochs": 6.0},
    "search": {"learning_rate": 3e-3, "epochs": 6.0, "trials": 4, "search_space": SPACE},
}


def one(kind: str, kills: int, seed: int, folder: Path, model: Path, data: dict) -> dict:
    plan = Plan(base_model=str(model), max_length=32, **KINDS[kind]).validate().to_dict()
    env = {STEP_DELAY_ENV: "0.05"}
    reference = folder / f"{kind}-reference"
    runs.prepare_run(reference, plan, data)
    assert run_to_end(reference, env)["state"] == "finished"
    events, _ = runs.read_events(reference)
    killed = folder / f"{kind}-killed"
    runs.prepare_run(killed, plan, data)
    hits = kill_loop(killed, kills, events, random.Random(seed), env)
    status = run_to_end(killed, env)
    same = status["state"] == "finished" and comparable(runs.read_report(killed)) == comparable(
        runs.read_report(reference)
    )
    report = runs.read_report(killed) or {}
    if not same:  # kept for a look: both runs' events, status and reports
        import shutil

        keep = Path(tempfile.gettempdir()) / f"kill_loop-{kind}-mismatch"
        shutil.rmtree(keep, ignore_errors=True)
        for name in (reference, killed):
            shutil.copytree(name, keep / name.name, ignore=shutil.ignore_patterns("*.safetensors"))
        print(f"{kind}: metrics differ; both runs kept in {keep}", flush=True)
    return {
        "kind": kind,
        "kills_landed": sum(h["killed"] for h in hits),
        "kills": hits,
        "final_state": status["state"],
        "same_metrics": same,
        "test_macro_f1": (report.get("test") or {}).get("macro_f1"),
        # trials that a kill left running: failed, then run again with the same values
        "failed_trials": sum(
            t["state"] == "fail" for t in (report.get("search") or {}).get("trials", [])
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="kills per run")
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill moments")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = make_tiny_model(folder / "model")
        data = inspect_data(write_sentiment_csv(folder / "posts.csv")).to_dict()
        results = []
        for kind in args.kinds:
            row = one(kind, args.kills, args.seed, folder, model, data)
            print({k: row[k] for k in ("kind", "kills_landed", "same_metrics")}, flush=True)
            results.append(row)
    summary = {**environment(("torch", "transformers", "optuna")), "seed": args.seed}
    summary["runs"] = results
    lines = []
    for row in results:
        where = sorted({h["last_event"] for h in row["kills"] if h["killed"]} - {None})
        lines.append(
            f"{row['kind']}: {row['kills_landed']} SIGKILLs landed (of {len(row['kills'])} "
            f"drawn, seed {args.seed}), newest event at the kills: {', '.join(where)}; finished "
            f"{row['final_state']}, metrics equal to the uninterrupted run: {row['same_metrics']}"
            + (
                f"; trials killed and retried: {row['failed_trials']}"
                if row["kind"] == "search"
                else ""
            )
        )
    record("kill_loop", summary, lines)
    return 0 if all(r["same_metrics"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
