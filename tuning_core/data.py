"""Load a labelled file and decide how to read it: which column is text, which is the label,
which splits exist.

Owns `DataSpec` (a plain, JSON-serialisable description that the training recipe reads) and
`inspect_data`, which builds one from a path. Reading goes through `datasets` (via the recipe's
`read_table`, so the exported script reads exactly as the session did). Profiling the rows is
`tuning_core.profile`'s job.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuning_core import recipe
from tuning_core.errors import DatasetError

SUPPORTED_SUFFIXES = (".csv", ".tsv", ".tab", ".jsonl", ".json", ".ndjson", ".parquet")

TEXT_NAMES = (
    "text",
    "sentence",
    "tweet",
    "review",
    "content",
    "body",
    "message",
    "comment",
    "utterance",
    "document",
    "post",
    "question",
    "title",
)
LABEL_NAMES = (
    "label",
    "labels",
    "class",
    "category",
    "sentiment",
    "target",
    "emotion",
    "intent",
    "topic",
    "stars",
    "rating",
    "y",
)
SPLIT_ALIASES = {
    "validation": ("validation", "val", "valid", "dev"),
    "test": ("test",),
}


@dataclass
class DataSpec:
    """How to read the person's data: files per split, columns, label set, checksums."""

    files: dict[str, str | None]
    text_column: str
    label_column: str
    labels: list[str]
    sha256: dict[str, str] = field(default_factory=dict)
    split_seed: int = 42
    columns: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DataSpec:
        return cls(**raw)

    @property
    def train_file(self) -> str:
        return str(self.files["train"])

    def describe_splits(self) -> str:
        parts = []
        for name in ("validation", "test"):
            path = self.files.get(name)
            if path:
                parts.append(f"{name} from {Path(path).name}")
            else:
                share = int(recipe.CARVE_SHARE[name] * 100)
                parts.append(
                    f"{name}: {share}% of the training file, stratified (seed {self.split_seed})"
                )
        return "; ".join(parts)


def _check_path(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"No such file: {path}")
    if p.is_dir():
        raise DatasetError(f"{path} is a folder; give the data file inside it (e.g. train.csv)")
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if not suffixes or suffixes[-1] not in SUPPORTED_SUFFIXES:
        raise DatasetError(f"{p.name}: unsupported file type; use CSV, TSV, JSONL, JSON or Parquet")
    return p.resolve()


def read_columns(path: str | Path) -> dict[str, list[Any]]:
    """All columns of a data file as lists; a clear `DatasetError` for anything unreadable."""
    p = _check_path(path)
    try:
        table = recipe.read_table(p)
    except Exception as exc:  # datasets raises many kinds for a broken file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatasetError(f"Could not read {p.name}: {first[:300]}") from exc
    if table.num_rows == 0:
        raise DatasetError(f"{p.name} has no rows")
    return {name: list(table[name]) for name in table.column_names}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _string_share(values: list[Any]) -> float:
    return sum(isinstance(v, str) for v in values) / max(1, len(values))


def _mean_words(values: list[Any]) -> float:
    sample = [str(v) for v in values[:2000] if v is not None]
    return sum(len(s.split()) for s in sample) / max(1, len(sample))


def choose_columns(columns: dict[str, list[Any]]) -> tuple[str, str, dict[str, str]]:
    """(text column, label column, reasons), chosen by name first, then by content."""
    names = list(columns)
    if len(names) < 2:
        raise DatasetError(
            f"Found only the column(s) {names}; need a text column and a label column"
        )
    reasons: dict[str, str] = {}
    text = next((n for alias in TEXT_NAMES for n in names if _norm(n) == alias), None)
    if text:
        reasons["text"] = f"the column is named {text!r}"
    else:
        # by content: the string column with the most words per row
        candidates = [n for n in names if _string_share(columns[n]) > 0.9]
        if not candidates:
            raise DatasetError(f"No column holds text; columns are {names}")
        text = max(candidates, key=lambda n: _mean_words(columns[n]))
        reasons["text"] = (
            f"{text!r} has the longest texts ({_mean_words(columns[text]):.0f} words on average)"
        )
    rest = [n for n in names if n != text]
    label = next((n for alias in LABEL_NAMES for n in rest if _norm(n) == alias), None)
    if label:
        reasons["label"] = f"the column is named {label!r}"
    else:
        # by content: the column with the fewest distinct values relative to rows
        def distinct_share(n: str) -> float:
            values = columns[n]
            return len({str(v) for v in values}) / max(1, len(values))

        label = min(rest, key=distinct_share)
        reasons["label"] = (
            f"{label!r} has few distinct values ({len({str(v) for v in columns[label]})})"
        )
    return text, label, reasons


def find_split_files(train: Path) -> dict[str, str | None]:
    """Sibling files such as val.csv/dev.csv and test.csv next to train.csv."""
    files: dict[str, str | None] = {"train": str(train), "validation": None, "test": None}
    stem = train.name[: -len("".join(train.suffixes))] if train.suffixes else train.name
    suffix = "".join(train.suffixes)
    if "train" not in stem.lower():
        return files
    for split, aliases in SPLIT_ALIASES.items():
        for alias in aliases:
            candidate = train.with_name(re.sub("train", alias, stem, flags=re.IGNORECASE) + suffix)
            if candidate.exists() and candidate != train:
                files[split] = str(candidate)
                break
    return files


def inspect_data(
    path: str | Path,
    text_column: str | None = None,
    label_column: str | None = None,
    split_seed: int = 42,
) -> DataSpec:
    """Read `path`, pick the columns (or take the given ones) and find sibling split files."""
    p = _check_path(path)
    columns = read_columns(p)
    if text_column or label_column:
        missing = [c for c in (text_column, label_column) if c and c not in columns]
        if missing:
            raise DatasetError(
                f"{p.name} has no column {missing[0]!r}; its columns are {', '.join(columns)}"
            )
    auto_text, auto_label, reasons = choose_columns(columns)
    text = text_column or auto_text
    label = label_column or (auto_label if auto_label != text else None)
    if text_column:
        reasons["text"] = "you chose it"
    if label_column:
        reasons["label"] = "you chose it"
    if not label or label == text:
        raise DatasetError("The text and label columns must differ")
    labels = sorted({"" if v is None else str(v) for v in columns[label]} - {""})
    if len(labels) < 2:
        raise DatasetError(f"Column {label!r} has fewer than two labels; nothing to classify")
    if len(labels) > max(50, len(columns[label]) // 2):
        raise DatasetError(
            f"Column {label!r} has {len(labels)} distinct values in {len(columns[label])} rows: "
            "it does not look like class labels. Name the label column, e.g. "
            "\"the label is in column 'category'\""
        )
    files = find_split_files(p)
    sha = {name: recipe.file_sha256(f) for name, f in files.items() if f}
    return DataSpec(
        files=files,
        text_column=text,
        label_column=label,
        labels=labels,
        sha256=sha,
        split_seed=split_seed,
        columns=list(columns),
        reasons=reasons,
    )


def load_split_rows(spec: DataSpec) -> dict[str, tuple[list[str], list[str]]]:
    """Rows per split, exactly as the training recipe will see them."""
    try:
        return recipe.load_splits(spec.to_dict())
    except KeyError as exc:
        raise DatasetError(f"A split file lacks the column {exc}") from exc
