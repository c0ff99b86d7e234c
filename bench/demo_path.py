"""Benchmark: the whole path on the embedded default, through the headless chat.

Runs `tunesmith chat --headless` on the shipped demo data with the embedded MiniLM (blank
answers take every default), exports the bundle, reruns the bundle's `train.py`, and records:
the wall time of each stage, the metrics, and whether the rerun printed the same metrics.
Target (issue 2): the whole path under 10 minutes on 2 CPU cores.

    .venv/bin/python bench/demo_path.py

Writes bench/results/demo_path.json and appends a dated row to bench/RESULTS.md.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 600


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="tunesmith-bench-"))
    env = {**os.environ, "TUNESMITH_HOME": str(work / "home"), "HF_HUB_OFFLINE": "1"}
    bundle = work / "bundle"
    # task, data (the demo), "did I read it right?" (yes), plan (train), export
    turns = ["", "", "", "", f"/export {bundle}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant.cli", "chat", "--headless"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    proc.stdin.write("\n".join(turns) + "\n")
    proc.stdin.close()
    start = time.monotonic()
    marks: dict[str, float] = {}
    for line in proc.stdout:
        now = time.monotonic() - start
        if line.startswith("**My plan**"):
            marks.setdefault("plan_shown_s", now)
        elif line.startswith("Training started"):
            marks.setdefault("training_started_s", now)
        elif line.startswith("**Results**"):
            marks.setdefault("results_s", now)
        elif line.startswith("Exported to"):
            marks.setdefault("exported_s", now)
    proc.wait()
    total = time.monotonic() - start
    if proc.returncode != 0 or "results_s" not in marks:
        print("the headless path failed", file=sys.stderr)
        return 1
    home = work / "home"
    (session,) = [p for p in home.iterdir() if p.is_dir()]
    report = json.loads((session / "runs" / "run-1" / "report.json").read_text())

    rerun_start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "train.py"], cwd=bundle, capture_output=True, text=True, env=env
    )
    rerun_s = time.monotonic() - rerun_start
    rerun = json.loads(out.stdout.strip().splitlines()[-1])
    expected = {
        "test_accuracy": report["test"]["accuracy"],
        "test_macro_f1": report["test"]["macro_f1"],
        "validation_macro_f1": report["validation"]["macro_f1"],
    }
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "versions": {
            name: metadata.version(name) for name in ("torch", "transformers", "datasets")
        },
        "stages_s": {k: round(v, 1) for k, v in marks.items()},
        "whole_path_s": round(total, 1),
        "target_s": TARGET_S,
        "within_target": total < TARGET_S,
        "train_rows": report["train_rows"],
        "metrics": expected,
        "bundle_rerun_s": round(rerun_s, 1),
        "bundle_rerun_metrics": rerun,
        "bundle_reproduces": rerun == expected,
        "rerun_over_session_training": round(
            rerun_s / (marks["results_s"] - marks["training_started_s"]), 2
        ),
    }
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "demo_path.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    results_md = ROOT / "bench" / "RESULTS.md"
    if not results_md.exists():
        results_md.write_text("# Benchmark results\n\nOne row per run of a `bench/` script.\n\n")
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    row = (
        f"\n## demo_path — {result['date']}\n\n"
        f"- machine: {result['machine']}; {versions}\n"
        f"- whole path (headless, defaults, demo data, MiniLM): {result['whole_path_s']} s "
        f"(target < {TARGET_S} s: {'met' if result['within_target'] else 'MISSED'}); "
        f"stages at {result['stages_s']}\n"
        f"- test macro-F1 {expected['test_macro_f1']}, accuracy {expected['test_accuracy']} "
        f"({report['train_rows']} training rows)\n"
        f"- exported train.py reproduces the metrics: {result['bundle_reproduces']} "
        f"(rerun / in-session training time: {result['rerun_over_session_training']})\n"
    )
    with open(results_md, "a", encoding="utf-8") as fh:
        fh.write(row)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0 if result["bundle_reproduces"] and result["within_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
