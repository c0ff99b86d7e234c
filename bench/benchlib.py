"""What the benchmark scripts share: the run's environment, the data dict for the recipe, and
writing the results (bench/results/NAME.json and a dated section in bench/RESULTS.md)."""

from __future__ import annotations

import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def environment(packages=("torch", "transformers")) -> dict:
    import torch

    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads",
        "versions": {p: metadata.version(p) for p in packages},
    }


def recipe_data(spec, splits, folder: Path) -> dict:
    """The data dict `recipe.train_and_evaluate` reads, over splits written as CSV files."""
    from recommend_vs_defaults import write_splits

    files = write_splits(splits, folder)
    labels = sorted(set(splits["train"][1]))
    return {**spec.to_dict(), "files": files, "readers": {}, "sha256": {}, "labels": labels}


def log_run(log: Path, row: dict) -> dict:
    """Append one run's row to the JSON-lines file `log` (and print it); returns the row."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)
    return row


def logged_runs(log: Path) -> list[dict]:
    """The rows `log_run` appended to `log`."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def record(name: str, summary: dict, lines: list[str]) -> None:
    """Write `summary` to results/NAME.json and `lines` (one bullet each) under a dated heading
    in RESULTS.md, after the machine line."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    with open(ROOT / "bench" / "RESULTS.md", "a", encoding="utf-8") as fh:
        fh.write(f"\n## {name} — {summary['date']}\n\n")
        fh.write(f"- machine: {summary['machine']}; {summary['versions']}\n")
        for line in lines:
            fh.write(f"- {line}\n")
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, dict | list)}))
