"""Profile labelled rows: sizes, label balance, token lengths, duplicates, empty rows, leakage.

Owns `DataProfile` and `profile_rows`. Token lengths are counted with the candidate model's own
tokenizer (read from its `tokenizer.json` with `tokenizers`, which does not load torch). What to
do about the findings is the recommender's business.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuning_core import recipe
from tuning_core.errors import ModelError

LENGTH_THRESHOLDS = (*range(8, 513, 8), 1024, 2048, 4096, 8192)


@dataclass
class DataProfile:
    rows: dict[str, int]
    label_counts: dict[str, int]
    imbalance_ratio: float
    token_lengths: dict[str, int]  # p50, p90, p99, max (with special tokens)
    share_longer_than: dict[str, float]  # threshold -> share of training rows longer
    exact_duplicates: int  # training rows whose text already appeared earlier in training
    conflicting_texts: int  # distinct texts that carry more than one label
    empty_texts: int
    leaked_texts: dict[str, int]  # split -> its texts that also appear in training
    tokenizer: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DataProfile:
        return cls(**raw)

    def truncated_share(self, max_length: int) -> float:
        """Share of training rows longer than `max_length` (exact at the stored thresholds)."""
        known = {int(k): v for k, v in self.share_longer_than.items()}
        if max_length in known:
            return known[max_length]
        below = [t for t in known if t <= max_length]
        return known[max(below)] if below else 1.0

    def summary_lines(self) -> list[str]:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.label_counts.items()))
        lengths = self.token_lengths
        lines = [
            "Rows: " + ", ".join(f"{k} {v}" for k, v in self.rows.items()),
            f"Labels (train): {counts}; imbalance {self.imbalance_ratio:.1f}x",
            f"Tokens per text: median {lengths['p50']}, p90 {lengths['p90']}, "
            f"p99 {lengths['p99']}, max {lengths['max']}",
            f"Exact duplicates in train: {self.exact_duplicates}; texts with conflicting "
            f"labels: {self.conflicting_texts}; empty texts: {self.empty_texts}",
        ]
        leaks = {k: v for k, v in self.leaked_texts.items() if v}
        if leaks:
            lines.append(
                "Leakage: " + ", ".join(f"{v} {k} texts also in train" for k, v in leaks.items())
            )
        return lines + self.notes


def token_counter(model_name: str):
    """A function texts -> token counts for `model_name`, plus a name for the tokenizer."""
    path = Path(recipe.resolve_model(model_name))
    tokenizer_file = path / "tokenizer.json"
    if tokenizer_file.exists():
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tokenizer_file))
        tok.no_truncation()
        tok.no_padding()

        def count(texts: list[str]) -> list[int]:
            return [len(e.ids) for e in tok.encode_batch(texts)]

        return count
    if not path.exists():
        raise ModelError(
            f"Model {model_name!r} is not a local folder and the hub is offline; "
            "give a local path or use the embedded default"
        )
    recipe.quiet_libraries()
    from transformers import AutoTokenizer

    slow = AutoTokenizer.from_pretrained(str(path))

    def count_slow(texts: list[str]) -> list[int]:
        return [len(ids) for ids in slow(texts)["input_ids"]]

    return count_slow


def _percentile(sorted_values: list[int], q: float) -> int:
    if not sorted_values:
        return 0
    k = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[k]


def profile_rows(splits: dict[str, tuple[list[str], list[str]]], model_name: str) -> DataProfile:
    """Profile rows already split (as `tuning_core.data.load_split_rows` returns them)."""
    texts, labels = splits["train"]
    counts = Counter(labels)
    imbalance = max(counts.values()) / max(1, min(counts.values())) if counts else 0.0
    lengths = sorted(token_counter(model_name)(texts)) if texts else []
    share = {
        str(t): round(sum(v > t for v in lengths) / max(1, len(lengths)), 4)
        for t in LENGTH_THRESHOLDS
    }
    seen: set[str] = set()
    duplicates = 0
    labels_by_text: dict[str, set[str]] = {}
    for text, label in zip(texts, labels, strict=True):
        key = text.strip()
        duplicates += key in seen
        seen.add(key)
        labels_by_text.setdefault(key, set()).add(label)
    conflicting = sum(len(v) > 1 for v in labels_by_text.values())
    leaked = {
        name: sum(t.strip() in seen for t in rows[0])
        for name, rows in splits.items()
        if name != "train"
    }
    notes = []
    if len(texts) < 500:
        notes.append(f"Small training set ({len(texts)} rows): expect a few points of seed noise.")
    return DataProfile(
        rows={name: len(rows[0]) for name, rows in splits.items()},
        label_counts=dict(sorted(counts.items())),
        imbalance_ratio=round(imbalance, 2),
        token_lengths={
            "p50": _percentile(lengths, 0.50),
            "p90": _percentile(lengths, 0.90),
            "p99": _percentile(lengths, 0.99),
            "max": lengths[-1] if lengths else 0,
        },
        share_longer_than=share,
        exact_duplicates=duplicates,
        conflicting_texts=conflicting,
        empty_texts=sum(not t.strip() for t in texts),
        leaked_texts=leaked,
        tokenizer=model_name,
        notes=notes,
    )
