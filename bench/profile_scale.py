"""Benchmark: profiling and the quick baseline on 1,000,000 labelled rows.

Generates a 1M-row labelled CSV in a temporary folder (fixed seed: varied synthetic texts with
planted exact duplicates, near duplicates, conflicting labels, empty/placeholder texts, very
long texts and rare labels), then loads it as the planner does (`inspect_data` +
`load_split_rows`), profiles it with `profile_rows(splits, MiniLM, max_length=128)` and runs
`run_baseline` (sampled). Records the wall time of each stage and peak memory (ru_maxrss of the
process, also per stage as the running peak), and prints the findings.
Target (issue 3): profile + sampled baseline under 60 s on 2 CPU cores, peak memory under 2 GB.

    .venv/bin/python bench/profile_scale.py [--rows N] [--keep]

Writes bench/results/profile_scale.json and appends a dated row to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_S = 60
TARGET_MB = 2048
MODEL = "sentence-transformers/all-MiniLM-L6-v2"

SYLLABLES = tuple(
    [
        "ka",
        "lo",
        "mi",
        "ne",
        "su",
        "ta",
        "ri",
        "po",
        "ve",
        "an",
        "el",
        "or",
        "us",
        "in",
        "ex",
        "de",
        "tra",
        "pro",
        "con",
        "sta",
        "ble",
        "ment",
        "ing",
        "ly",
    ]
)
COMMON = tuple(
    [
        "the",
        "a",
        "to",
        "and",
        "of",
        "is",
        "in",
        "it",
        "you",
        "that",
        "for",
        "on",
        "my",
        "this",
        "with",
        "was",
        "so",
        "be",
        "at",
        "have",
        "not",
        "are",
        "but",
        "just",
        "all",
        "me",
        "like",
        "your",
        "can",
        "get",
        "do",
        "what",
        "now",
        "love",
        "day",
        "good",
        "one",
        "today",
        "got",
        "time",
        "when",
    ]
)
LABELS = {  # label -> share of the generated rows (rare labels are planted separately)
    "joy": 0.34,
    "sadness": 0.24,
    "anger": 0.18,
    "optimism": 0.12,
    "fear": 0.08,
    "surprise": 0.04,
}
RARE = {"disgust": 40, "trust": 6, "awe": 2}  # label -> rows


def make_vocab(rng: np.random.Generator, size: int = 6000) -> np.ndarray:
    words = set()
    while len(words) < size:
        k = int(rng.integers(1, 4))
        words.add("".join(rng.choice(SYLLABLES, size=k)))
    return np.array(sorted(words))


def generate_rows(n: int, seed: int = 0) -> tuple[list[str], list[str], dict[str, int]]:
    """`n` (text, label) rows with planted problems; returns texts, labels and what was planted."""
    rng = np.random.default_rng(seed)
    vocab = make_vocab(rng)
    vocab_obj = np.array(vocab.tolist(), dtype=object)
    common_obj = np.array(COMMON, dtype=object)
    names = list(LABELS)
    label_ids = rng.choice(len(names), size=n, p=np.array(list(LABELS.values())))
    # each label prefers its own slice of the vocabulary (learnable, not trivially)
    per_label = len(vocab) // len(names)
    lengths = np.clip(rng.lognormal(2.6, 0.5, size=n).astype(int), 3, 60)
    texts: list[str] = []
    for start in range(0, n, 50_000):  # in chunks, to keep the generator's memory small
        stop = min(n, start + 50_000)
        chunk_lengths = lengths[start:stop]
        total = int(chunk_lengths.sum())
        owner = np.repeat(label_ids[start:stop], chunk_lengths)
        topical = rng.random(total) < 0.35
        word_ids = np.where(
            topical,
            owner * per_label + rng.integers(0, per_label, size=total),
            rng.integers(0, len(vocab), size=total),
        )
        words = vocab_obj[word_ids]
        common = rng.random(total) < 0.35
        words[common] = common_obj[rng.integers(0, len(COMMON), size=int(common.sum()))]
        flat = words.tolist()
        ends = np.cumsum(chunk_lengths)
        texts += [
            " ".join(flat[s:e])
            for s, e in zip((ends - chunk_lengths).tolist(), ends.tolist(), strict=True)
        ]
    labels = [names[i] for i in label_ids.tolist()]
    # decorations: URLs, mentions, capitalisation
    decorate = np.flatnonzero(rng.random(n) < 0.1)
    for k in decorate.tolist():
        texts[k] = f"@{vocab[rng.integers(len(vocab))]} {texts[k]} https://t.co/{k:x}"
    capital = np.flatnonzero(rng.random(n) < 0.3)
    for k in capital.tolist():
        texts[k] = texts[k][:1].upper() + texts[k][1:]
    planted = {}
    # rows to overwrite with planted problems (positions chosen once, disjoint)
    order = rng.permutation(n)
    cursor = 0

    def take(count: int) -> list[int]:
        nonlocal cursor
        out = order[cursor : cursor + count].tolist()
        cursor += count
        return out

    sources = order[-n // 4 :].tolist()  # planted copies copy from these rows
    exact = take(n * 3 // 100)
    for k, src in zip(exact, rng.choice(sources, size=len(exact)).tolist(), strict=True):
        texts[k], labels[k] = texts[src], labels[src]
    planted["exact_duplicates"] = len(exact)
    near = take(n * 2 // 100)
    for k, src in zip(near, rng.choice(sources, size=len(near)).tolist(), strict=True):
        words_ = texts[src].split()
        if len(words_) >= 15 and rng.random() < 0.5:
            i = int(rng.integers(len(words_)))
            words_[i] = str(vocab[rng.integers(len(vocab))])
            texts[k] = " ".join(words_)
        else:
            texts[k] = texts[src].upper() + " https://bit.ly/x" + str(k)
        labels[k] = labels[src]
    planted["near_duplicates"] = len(near)
    conflicts = take(n // 200)
    for k, src in zip(conflicts, rng.choice(sources, size=len(conflicts)).tolist(), strict=True):
        texts[k] = texts[src]
        labels[k] = names[(names.index(labels[src]) + 1) % len(names)]
    planted["conflicts"] = len(conflicts)
    empties = take(n // 500)
    for i, k in enumerate(empties):
        texts[k] = ["", " ", "nan", "NULL", "n/a", "-"][i % 6]
    planted["empty"] = len(empties)
    long_rows = take(n // 2000)
    for k in long_rows:
        texts[k] = " ".join(vocab[rng.integers(0, len(vocab), size=int(rng.integers(300, 700)))])
    planted["long"] = len(long_rows)
    for label, count in RARE.items():
        for k in take(count):
            labels[k] = label
    planted["rare_labels"] = len(RARE)
    return texts, labels, planted


def write_csv(path: Path, texts: list[str], labels: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels, strict=True))


def peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--no-record", action="store_true", help="print only")
    parser.add_argument("--generate", metavar="CSV", help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.generate:
        texts, labels, planted = generate_rows(args.rows)
        write_csv(Path(args.generate), texts, labels)
        print(json.dumps(planted))
        return 0

    from tuning_core.baseline import run_baseline
    from tuning_core.data import inspect_data, load_split_rows
    from tuning_core.profile import profile_rows

    work = Path(tempfile.mkdtemp(prefix="tunesmith-scale-"))
    stages: dict[str, float] = {}
    memory: dict[str, float] = {}
    try:
        # generated in a child process, so this process's peak memory is the profile's own
        start = time.monotonic()
        path = work / "train.csv"
        child = subprocess.run(
            [sys.executable, __file__, "--rows", str(args.rows), "--generate", str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        planted = json.loads(child.stdout.strip().splitlines()[-1])
        stages["generate_s"] = round(time.monotonic() - start, 1)
        memory["start_mb"] = peak_mb()
        size_mb = round(path.stat().st_size / 1e6, 1)
        print(f"generated {args.rows:,} rows ({size_mb} MB) in {stages['generate_s']} s")

        start = time.monotonic()
        spec = inspect_data(path)
        splits = load_split_rows(spec)
        stages["load_s"] = round(time.monotonic() - start, 1)
        memory["load_mb"] = peak_mb()
        rows = {name: len(r[0]) for name, r in splits.items()}
        print(f"loaded {rows} in {stages['load_s']} s")

        start = time.monotonic()
        profile = profile_rows(splits, MODEL, max_length=128)
        stages["profile_s"] = round(time.monotonic() - start, 1)
        memory["profile_mb"] = peak_mb()
        print(f"profiled in {stages['profile_s']} s")
        for line in profile.summary_lines():
            print("  " + line)

        start = time.monotonic()
        metric = "macro_f1"
        baseline = run_baseline(splits, metric)
        stages["baseline_s"] = round(time.monotonic() - start, 1)
        memory["baseline_mb"] = peak_mb()
        print(f"baseline in {stages['baseline_s']} s: {json.dumps(baseline)}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    profile_total = round(stages["profile_s"] + stages["baseline_s"], 1)
    # the target counts what a person waits for: reading the file, profiling it, the baseline
    whole = round(stages["load_s"] + profile_total, 1)
    near_sampled = any(
        n.startswith("Near-duplicate (Jaccard) search on a sample") for n in profile.notes
    )
    load_average = [round(x, 2) for x in os.getloadavg()]
    peak = peak_mb()
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "versions": {
            name: metadata.version(name)
            for name in ("numpy", "tokenizers", "scikit-learn", "datasets")
        },
        "rows": args.rows,
        "csv_mb": size_mb,
        "splits": rows,
        "planted": planted,
        "stages_s": stages,
        "profile_plus_baseline_s": profile_total,
        "load_profile_baseline_s": whole,
        "target_s": TARGET_S,
        "met_time": whole < TARGET_S,
        "peak_memory_mb": peak,
        "near_duplicate_search": "sampled" if near_sampled else "all distinct texts",
        "load_average_after": load_average,
        "peak_memory_after_stage_mb": memory,
        "target_mb": TARGET_MB,
        "met_memory": peak < TARGET_MB,
        "findings": [
            {k: f[k] for k in ("id", "severity", "count", "title")} for f in profile.findings
        ],
        "profile": {
            "token_lengths": profile.token_lengths,
            "exact_duplicates": profile.exact_duplicates,
            "near_duplicates": profile.near_duplicates,
            "conflicting_texts": profile.conflicting_texts,
            "empty_texts": profile.empty_texts,
            "leaked_texts": profile.leaked_texts,
            "leaked_near": profile.leaked_near,
            "notes": profile.notes,
        },
        "baseline": baseline,
    }
    print(json.dumps({k: result[k] for k in ("stages_s", "peak_memory_after_stage_mb")}))
    print(
        f"load + profile + baseline: {whole} s (target < {TARGET_S} s: "
        f"{'met' if result['met_time'] else 'MISSED'}); peak memory {peak} MB (target < "
        f"{TARGET_MB} MB: {'met' if result['met_memory'] else 'MISSED'})"
    )
    if args.no_record:
        return 0
    out = ROOT / "bench" / "results" / "profile_scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    base = baseline
    row = (
        f"\n## profile_scale — {result['date']}\n\n"
        f"- machine: {result['machine']}; {versions}\n"
        f"- {args.rows:,} rows ({size_mb} MB CSV; splits {rows}): load {stages['load_s']} s, "
        f"profile {stages['profile_s']} s, sampled baseline {stages['baseline_s']} s; load + "
        f"profile + baseline {whole} s (target < {TARGET_S} s: "
        f"{'met' if result['met_time'] else 'missed'})\n"
        f"- peak memory (ru_maxrss, whole process) {peak} MB (target < {TARGET_MB} MB: "
        f"{'met' if result['met_memory'] else 'missed'}); running peak after each stage "
        f"{memory}\n"
        f"- findings: "
        + "; ".join(f"{f['id']} {f['severity']} ({f['count']})" for f in result["findings"])
        + "\n"
        f"- near-duplicate search on {result['near_duplicate_search']}; token lengths on a "
        f"{profile.length_rows:,}-row sample; the CSV is generated in a child process, so the "
        f"peak is loading + profile + baseline; load average after the run {load_average}\n"
        f"- baseline ({base['metric']}, {base['rows_used']} rows, {base['folds']} folds): "
        f"majority {base['majority']['cv_mean']}, TF-IDF + LR {base['tfidf_lr']['cv_mean']} "
        f"± {base['tfidf_lr']['cv_std']} (validation {base['tfidf_lr'].get('validation')})\n"
    )
    with open(ROOT / "bench" / "RESULTS.md", "a", encoding="utf-8") as fh:
        fh.write(row)
    print(f"wrote {out} and a row in bench/RESULTS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
