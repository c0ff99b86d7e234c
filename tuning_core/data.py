"""Load labelled data and decide how to read it: which column is text, which is the label,
which splits exist, and whether it can train a classifier at all.

Owns `DataSpec` (a plain, JSON-serialisable description that the training recipe reads) and
`inspect_data`, which builds one from a file or a folder. `tuning_core.loaders` finds the
splits and checks each file's format, encoding and delimiter; reading goes through `datasets`
via the recipe's `read_table`, so the exported script reads exactly as the session did.
Profiling the rows is `tuning_core.profile`'s job.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuning_core import loaders, recipe
from tuning_core.errors import DatasetError

SUPPORTED_SUFFIXES = tuple(recipe.DATA_SUFFIXES)
MIN_ROWS = 20  # fewer labelled rows than this cannot train and still be evaluated
MAX_NUMERIC_CLASSES = 20  # more distinct numbers than this, mostly fractions: scores
find_split_files = loaders.find_split_files

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


@dataclass
class DataSpec:
    """How to read the person's data: files per split, columns, label set, checksums.

    `readers` holds one `recipe.read_table` reader dict per split (format, delimiter, encoding,
    compression, saved split); `warnings` are things the person should know about the data.
    Specs saved before these fields existed load with both empty (read by file extension).
    """

    files: dict[str, str | None]
    text_column: str
    label_column: str
    labels: list[str]
    sha256: dict[str, str] = field(default_factory=dict)
    split_seed: int = 42
    columns: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    readers: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # what each text is given (recipe.TASKS); multi-label cells are JSON lists ("json") or
    # names joined by a delimiter (the delimiter itself); regression has no `labels`
    task: str = "single_label_classification"
    label_format: str | None = None
    # unlabelled texts the person added for adaptive pretraining (a .txt, one text a line, or
    # a table with the text column); its checksum is in sha256["unlabelled"]
    unlabelled: str | None = None
    # other label sets of the same kind of text, trained together with this one when the plan's
    # `multitask` is on: each {"name", "files", "text_column", "label_column", "labels",
    # "readers", "sha256", "split_seed"}, another column of these files or a file of its own
    auxiliary: list[dict[str, Any]] = field(default_factory=list)

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
                parts.append(f"{name} from {display_name(path, self.readers.get(name))}")
            else:
                share = int(recipe.CARVE_SHARE[name] * 100)
                parts.append(
                    f"{name}: {share}% of the training file, stratified (seed {self.split_seed})"
                )
        return "; ".join(parts)


def _first_line(exc: BaseException) -> str:
    """The innermost cause's first line: datasets wraps the useful message."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def display_name(path: str | Path, reader: dict | None = None) -> str:
    """How a split's source is named to the person: the file name, plus a saved split's name."""
    name = Path(path).name
    split = (reader or {}).get("split")
    return (
        f"{name} (split {split!r})"
        if (reader or {}).get("format") == "arrow_dir" and split
        else name
    )


def read_columns(path: str | Path, reader: dict | None = None) -> dict[str, list[Any]]:
    """All columns of one split as lists; a clear `DatasetError` for anything unreadable.

    Without `reader`, the file is checked and its reader detected first (`loaders.detect_reader`).
    """
    p = Path(path).expanduser()
    if reader is None:
        if not p.exists():
            raise DatasetError(f"No such file or folder: {path}")
        reader = recipe.infer_reader(p) if p.is_dir() else loaders.detect_reader(p)[0]
    name = display_name(p, reader)
    try:
        table = recipe.read_table(p, reader)
    except Exception as exc:  # datasets raises many kinds for a broken file
        raise DatasetError(f"Could not read {name}: {_first_line(exc)}") from exc
    if table.num_rows == 0:
        raise DatasetError(f"{name} has no rows")
    return {column: recipe.column_values(table, column) for column in table.column_names}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _as_label(value: Any) -> str:
    return "" if value is None else str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _present(values: list[Any]) -> list[Any]:
    return [v for v in values if v is not None and str(v).strip() != ""]


def _numeric_share(values: list[Any]) -> float:
    present = _present(values)
    return sum(_number(v) is not None for v in present) / max(1, len(present))


def _string_share(values: list[Any]) -> float:
    return sum(isinstance(v, str) for v in values) / max(1, len(values))


def _mean_words(values: list[Any]) -> float:
    sample = [str(v) for v in values[:2000] if v is not None]
    return sum(len(s.split()) for s in sample) / max(1, len(sample))


def looks_like_text(values: list[Any]) -> bool:
    """Strings, mostly not numbers, mostly distinct or several words long: not a category."""
    present = _present(values)
    if not present or _string_share(present) < 0.9 or _numeric_share(present) >= 0.5:
        return False
    return len({str(v) for v in present}) / len(present) > 0.5 or _mean_words(present) >= 3


def _describe_column(values: list[Any]) -> str:
    present = _present(values)
    if not present:
        return "empty"
    if _numeric_share(present) >= 0.9:
        return "numbers"
    return f"{len({str(v) for v in present})} distinct values"


def choose_columns(
    columns: dict[str, list[Any]],
    text_column: str | None = None,
    label_column: str | None = None,
) -> tuple[str, str, dict[str, str]]:
    """(text column, label column, reasons): the given ones, else by name, else by content."""
    names = list(columns)
    if len(names) < 2:
        raise DatasetError(
            f"Found only the column(s) {names}; need a text column and a label column"
        )
    reasons: dict[str, str] = {}
    text = text_column
    if text:
        reasons["text"] = "you chose it"
    else:
        others = [n for n in names if n != label_column]
        text = next((n for alias in TEXT_NAMES for n in others if _norm(n) == alias), None)
        if text:
            reasons["text"] = f"the column is named {text!r}"
        else:
            # by content: the column that looks most like text, with the most words per row
            candidates = [n for n in others if looks_like_text(columns[n])]
            if not candidates:
                summary = ", ".join(f"{n!r} ({_describe_column(columns[n])})" for n in names)
                raise DatasetError(
                    f"No column looks like text: {summary}. tunesmith classifies texts, so it "
                    "needs a column of sentences or documents. If one of these holds them, say "
                    "e.g. \"the text is in column 'review'\""
                )
            text = max(candidates, key=lambda n: _mean_words(columns[n]))
            reasons["text"] = (
                f"{text!r} has the longest texts ({_mean_words(columns[text]):.0f} words on average)"
            )
    label = label_column
    if label:
        reasons["label"] = "you chose it"
        return text, label, reasons
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


def check_text_column(name: str, values: list[Any]) -> None:
    present = _present(values)
    if not present:
        raise DatasetError(f"Column {name!r} is empty in every row; it cannot hold the texts")
    if _numeric_share(present) >= 0.9:
        examples = ", ".join(str(v) for v in present[:3])
        raise DatasetError(
            f"Column {name!r} holds numbers ({examples}, ...), not text. Name the column with "
            "the texts, e.g. \"the text is in column 'review'\""
        )


LIST_DELIMITERS = ("|", ";", ",")
MAX_LABELS = 200  # more distinct labels than this in a multi-label column: not label names


def _json_list(text: str) -> bool:
    try:
        return isinstance(json.loads(text), list)
    except json.JSONDecodeError:
        return False


def label_list_format(values: list[Any]) -> str | None:
    """How a column's cells list several labels each: "json" (JSON lists), a delimiter, or None
    when they do not look like label lists. A delimiter counts when it appears in a fifth of the
    cells or more and splitting yields a small vocabulary of short names, reused across rows."""
    present = [str(v).strip() for v in _present(values)]
    if not present:
        return None
    if sum(v.startswith("[") for v in present) >= 0.9 * len(present):
        # JSON lists, a broken cell or two included (reading them names their rows)
        sample = present[:2000]
        return "json" if sum(map(_json_list, sample)) >= 0.9 * len(sample) else None
    for delimiter in LIST_DELIMITERS:
        if sum(delimiter in v for v in present) < 0.2 * len(present):
            continue
        parts = [p.strip() for v in present for p in v.split(delimiter) if p.strip()]
        names = set(parts)
        short = sum(len(p.split()) <= 3 for p in parts) >= 0.95 * len(parts)
        if short and len(names) <= MAX_LABELS and len(names) < len(set(present)):
            return delimiter
    return None


def looks_like_scores(values: list[Any]) -> bool:
    """Numbers, and many distinct ones (mostly fractions, or mostly different per row): a
    continuous target rather than class ids."""
    present = [y for y in map(_as_label, values) if y != ""]
    distinct = sorted(set(present))
    numbers = [_number(y) for y in distinct]
    if len(distinct) < 2 or any(x is None for x in numbers):
        return False
    fractional = sum(x != int(x) for x in numbers if x is not None)
    many_fractions = len(distinct) > MAX_NUMERIC_CLASSES and fractional > len(distinct) / 2
    mostly_distinct = len(distinct) >= 10 and len(distinct) > len(present) / 2
    return many_fractions or mostly_distinct


def check_targets(name: str, values: list[Any]) -> None:
    """A regression column: numbers in every labelled row, not all the same."""
    present = [y for y in map(_as_label, values) if y != ""]
    if not present:
        raise DatasetError(f"Column {name!r} is empty in every row; nothing to predict")
    bad = [y for y in present if _number(y) is None]
    if bad:
        raise DatasetError(
            f"Column {name!r} has {len(bad)} value(s) that are not numbers (e.g. "
            f"{', '.join(repr(b) for b in bad[:3])}): regression needs a number in every "
            "labelled row"
        )
    if len(set(map(_number, present))) < 2:
        raise DatasetError(f"Column {name!r} holds the same number in every row: nothing to learn")


def check_label_lists(name: str, values: list[Any], fmt: str) -> list[str]:
    """A multi-label column's sorted label set; `DatasetError` for unreadable cells."""
    names: set[str] = set()
    for i, value in enumerate(values):
        if _as_label(value) == "":
            continue
        try:
            names.update(recipe.parse_label_list(_as_label(value), fmt))
        except ValueError as exc:
            raise DatasetError(f"Column {name!r}, row {i + 1}: {exc}") from None
    if len(names) < 2:
        raise DatasetError(
            f"Column {name!r} lists {len(names)} distinct label(s); multi-label "
            "classification needs at least two"
        )
    if len(names) > MAX_LABELS:
        raise DatasetError(
            f"Column {name!r} lists {len(names)} distinct labels; more than {MAX_LABELS} does "
            "not look like label names"
        )
    return sorted(names)


def choose_task(values: list[Any], asked: str | None) -> tuple[str, str | None, str]:
    """(task, label format, why) for a label column: the task asked for, else by the cells."""
    fmt = label_list_format(values)
    if asked == recipe.TASKS[1]:
        return asked, fmt or ",", "you asked for several labels per text"
    if asked == "regression":
        return asked, None, "you asked for a score per text"
    if asked == recipe.TASKS[0]:
        return asked, None, "you asked for one label per text"
    if fmt is not None:
        how = "JSON lists" if fmt == "json" else f"names separated by {fmt!r}"
        return recipe.TASKS[1], fmt, f"the label cells hold several labels ({how})"
    if looks_like_scores(values):
        return "regression", None, "the labels are numbers with many distinct values (scores)"
    return recipe.TASKS[0], None, "one label per row"


def check_labels(name: str, values: list[Any]) -> list[str]:
    """The sorted label set of a label column; `DatasetError` when it is not class labels."""
    present = [y for y in map(_as_label, values) if y != ""]
    distinct = sorted(set(present))
    if not distinct:
        raise DatasetError(f"Column {name!r} is empty in every row; nothing to classify")
    if len(distinct) < 2:
        raise DatasetError(
            f"Column {name!r} has only one label ({distinct[0]!r}) in its {len(present)} "
            "labelled rows; a classifier needs at least two. If the labels are in another "
            "column, say e.g. \"the label is in column 'category'\""
        )
    if looks_like_scores(values):
        examples = ", ".join(present[:4])
        raise DatasetError(
            f"Column {name!r} holds {len(distinct)} different numbers in {len(present)} "
            f"rows (e.g. {examples}): these look like scores. Say `regression` to predict the "
            "number, or name a column of class labels"
        )
    if len(distinct) > max(50, len(values) // 2):
        raise DatasetError(
            f"Column {name!r} has {len(distinct)} distinct values in {len(values)} rows: "
            "it does not look like class labels. Name the label column, e.g. "
            "\"the label is in column 'category'\""
        )
    return distinct


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _listed(items: list[str], most: int = 8) -> str:
    return ", ".join(items[:most]) + (f" and {len(items) - most} more" if len(items) > most else "")


def carve_warnings(train_labels: list[str], files: dict[str, str | None]) -> list[str]:
    """Labels too rare to reach the validation/test rows carved from training (the recipe's
    `stratified_carve` keeps at least one row of each label in training and carves
    round(share x rows) of it, so a label needs 6 rows to reach test and 7 to reach both)."""
    carved = [s for s in ("test", "validation") if not files.get(s)]  # the recipe's order
    if not carved:
        return []
    warnings = []
    counts = Counter(train_labels)
    singles = sorted(label for label, n in counts.items() if n < 2)
    if singles:
        one = len(singles) == 1
        warnings.append(
            f"{'Label' if one else 'Labels'} {_listed([repr(s) for s in singles])} "
            f"{'has a single example: it stays' if one else 'have a single example each: they stay'}"
            f" in training, so the {' and '.join(carved)} rows carved from the training file "
            f"never include {'it' if one else 'them'}. Add examples, remove those rows, or "
            "provide validation and test files"
        )
    missing: dict[tuple[str, ...], list[str]] = {}
    for label, n in sorted(counts.items()):
        left, lacking = n, []
        for split in carved:
            take = min(left - 1, round(left * recipe.CARVE_SHARE[split]))
            if take <= 0:
                lacking.append(split)
            left -= max(take, 0)
        if lacking and n >= 2:
            missing.setdefault(tuple(lacking), []).append(f"{label!r} ({_rows(n)})")
    for splits, labels in missing.items():
        warnings.append(
            f"Too few rows for the carved {' and '.join(splits)} split(s) to include "
            f"{_listed(labels)}: {'its' if len(labels) == 1 else 'their'} scores there are not "
            "measured"
        )
    return warnings


TOKEN_SUFFIXES = (".conll", ".conllu", ".bio", ".iob", ".iob2")


def other_task_shape(path: Path) -> str | None:
    """What task a file's shape says when it is not a table of texts and labels: token
    classification (CoNLL columns, or JSON lines with token and tag lists) or instruction
    tuning (JSON lines of prompts and responses, or chat messages); None otherwise."""
    from tuning_core import tokens

    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            sample = fh.read(64_000)
    except OSError:
        return None
    if path.suffix.lower() in TOKEN_SUFFIXES or (
        path.suffix.lower() in (".txt", ".tsv", "") and tokens.looks_like_conll(sample)
    ):
        return "token classification (NER): one token and its tag per line"
    first = next((line for line in sample.splitlines() if line.strip()), "")
    try:
        row = json.loads(first)
    except json.JSONDecodeError:
        return None
    if not isinstance(row, dict):
        return None
    keys = set(row)
    tags = keys & set(tokens.TAG_KEYS)
    if keys & set(tokens.TOKEN_KEYS) and any(isinstance(row[k], list) for k in tags):
        return "token classification (NER): lists of tokens and tags"
    if keys & {"messages", "conversations"} or (
        keys & {"prompt", "instruction"} and keys & {"response", "completion", "output"}
    ):
        return "instruction tuning: prompts and responses (or chat messages) for a language model"
    return None


def _token_reader(path: Path) -> dict:
    name = path.name.lower()
    return {"format": "token_jsonl" if name.endswith((".jsonl", ".json")) else "conll"}


def inspect_token_data(path: Path, split_seed: int = 42) -> DataSpec:
    """A token-classification file (and its val/test siblings) as a `DataSpec`: the tag set,
    the scheme (BIO, BIOES, IO or plain) and the broken tag sequences as warnings."""
    tools = recipe.token_tools()
    files = loaders.find_split_files(path)
    readers = {name: _token_reader(Path(f)) for name, f in files.items() if f}
    rows: dict[str, tuple[list[str], list[str]]] = {}
    for name, f in files.items():
        if not f:
            continue
        try:
            rows[name] = recipe.read_token_rows(f, readers[name])
        except (ValueError, OSError) as exc:
            raise DatasetError(f"Could not read {Path(f).name}: {_first_line(exc)}") from exc
    train_tags = [y.split(" ") for y in rows["train"][1]]
    labels = sorted({t for tags in train_tags for t in tags})
    if len(labels) < 2:
        raise DatasetError(
            f"{path.name} has {len(labels)} distinct tag(s); token classification needs two "
            "at least (e.g. O and B-PER)"
        )
    for name in ("validation", "test"):
        if name in rows:
            unseen = sorted({t for y in rows[name][1] for t in y.split(" ")} - set(labels))
            if unseen:
                raise DatasetError(
                    f"{Path(files[name]).name} has tag(s) that {path.name} lacks: "
                    f"{', '.join(unseen[:5])}. Every tag of the validation and test splits "
                    "must occur in training"
                )
    total = sum(len(texts) for texts, _ in rows.values())
    if total < MIN_ROWS:
        raise DatasetError(
            f"{path.name} has only {total} sentence(s); tunesmith needs at least {MIN_ROWS} to "
            "train and keep some apart for validation and test"
        )
    scheme = tools.tag_scheme(train_tags)
    sentences = [
        {"tokens": t.split(" "), "tags": y.split(" ")} for t, y in zip(*rows["train"], strict=True)
    ]
    broken = tools.broken_sequences(sentences, scheme, most=None)
    warnings = []
    if broken:
        shown = "; ".join(
            f"sentence {b['sentence'] + 1}, token {b['token'] + 1} ({b['word']!r}): {b['problem']}"
            for b in broken[:5]
        )
        warnings.append(
            f"{len(broken)} broken {scheme} tag sequence(s) in {path.name}, e.g. {shown}. "
            "Such tags are read as the start of a new entity"
        )
    kind = "CoNLL columns" if readers["train"]["format"] == "conll" else "JSON lines"
    return DataSpec(
        files=files,
        text_column="tokens",
        label_column="tags",
        labels=labels,
        sha256={name: recipe.file_sha256(f) for name, f in files.items() if f},
        split_seed=split_seed,
        columns=["tokens", "tags"],
        reasons={
            "text": f"the tokens ({kind})",
            "label": f"one tag per token, {scheme} scheme",
            "task": f"the file holds a tag for every token ({kind})",
        },
        readers=readers,
        warnings=warnings,
        task=recipe.TOKEN_TASK,
        label_format=scheme,
    )


def inspect_instruction_data(path: Path, split_seed: int = 42) -> DataSpec:
    """An instruction-tuning file (JSON lines of prompt/response pairs, Alpaca records or chat
    messages; val/test siblings too) as a `DataSpec` with no labels."""
    files = loaders.find_split_files(path)
    readers = {name: {"format": "instruction_jsonl"} for name, f in files.items() if f}
    total = 0
    for f in files.values():
        if not f:
            continue
        try:
            total += len(recipe.read_instruction_rows(f)[0])
        except (ValueError, OSError) as exc:
            raise DatasetError(f"Could not read {Path(f).name}: {_first_line(exc)}") from exc
    if total < MIN_ROWS:
        raise DatasetError(
            f"{path.name} has only {total} conversation(s); tunesmith needs at least "
            f"{MIN_ROWS} to train and keep some apart for validation and test"
        )
    with open(path, encoding="utf-8") as fh:
        first = json.loads(next(line for line in fh if line.strip()))
    kind = (
        "chat messages"
        if {"messages", "conversations"} & set(first)
        else "instruction/output records"
        if "instruction" in first
        else "prompt/response pairs"
    )
    return DataSpec(
        files=files,
        text_column="prompt",
        label_column="response",
        labels=[],
        sha256={name: recipe.file_sha256(f) for name, f in files.items() if f},
        split_seed=split_seed,
        columns=["prompt", "response"],
        reasons={
            "text": f"the conversation before each reply ({kind})",
            "label": "the reply the model learns to write",
            "task": f"the file holds {kind} for a language model",
        },
        readers=readers,
        task=recipe.INSTRUCT_TASK,
    )


def inspect_data(
    path: str | Path,
    text_column: str | None = None,
    label_column: str | None = None,
    split_seed: int = 42,
    task: str | None = None,
) -> DataSpec:
    """Read `path` (a file or a folder), pick the columns (or take the given ones), find the
    split files and check that the data can train a model for `task` (by default the task
    the label cells suggest: lists of labels, scores, or one class each)."""
    shape = other_task_shape(Path(path).expanduser())
    if shape and shape.startswith("token classification"):
        return inspect_token_data(Path(path).expanduser(), split_seed)
    if shape and shape.startswith("instruction tuning"):
        return inspect_instruction_data(Path(path).expanduser(), split_seed)
    if task == recipe.INSTRUCT_TASK:
        raise DatasetError(
            f'{Path(path).name} is not instruction data: give JSON lines with "prompt" and '
            '"response" (or "instruction" and "output", or "messages" with roles)'
        )
    if task == recipe.TOKEN_TASK:
        raise DatasetError(
            f"{Path(path).name} is not token-classification data: give a CoNLL file (a token "
            "and its tag per line, a blank line between sentences) or JSON lines with "
            '"tokens" and "tags" lists'
        )
    if shape:
        raise DatasetError(
            f"{Path(path).name} looks like data for {shape}. tunesmith reads it but cannot "
            "train that yet: it trains text classifiers (one or several labels per text) and "
            "regressors (a number per text) on a table with a text column and a label column"
        )
    source = loaders.discover(path)
    train_path, train_reader = source.files["train"], source.readers["train"]
    assert train_path is not None
    train_name = display_name(train_path, train_reader)
    columns = read_columns(train_path, train_reader)
    for chosen in (text_column, label_column):
        if chosen and chosen not in columns:
            raise DatasetError(
                f"{train_name} has no column {chosen!r}; its columns are {', '.join(columns)}"
            )
    if text_column and text_column == label_column:
        raise DatasetError("The text and label columns must differ")
    text, label, reasons = choose_columns(columns, text_column, label_column)
    if label == text:
        raise DatasetError("The text and label columns must differ")
    check_text_column(text, columns[text])
    task, fmt, reasons["task"] = choose_task(columns[label], task)
    if task == "regression":
        check_targets(label, columns[label])
        labels: list[str] = []
    elif task == recipe.TASKS[1]:
        labels = check_label_lists(label, columns[label], fmt or ",")
    else:
        labels = check_labels(label, columns[label])
    train_labels = [y for y in map(_as_label, columns[label]) if y != ""]
    warnings = list(source.warnings)
    unlabelled = len(columns[label]) - len(train_labels)
    if unlabelled:
        warnings.append(f"{train_name}: {unlabelled} row(s) without a label are skipped")
    total = len(train_labels)
    for split in ("validation", "test"):
        split_path = source.files.get(split)
        if not split_path:
            continue
        split_name = display_name(split_path, source.readers.get(split))
        split_columns = read_columns(split_path, source.readers.get(split))
        missing = [c for c in (text, label) if c not in split_columns]
        if missing:
            raise DatasetError(
                f"{split_name} has no column {missing[0]!r} (its columns are "
                f"{', '.join(split_columns)}); the {split} split needs the same columns as "
                f"{train_name}"
            )
        split_labels = [y for y in map(_as_label, split_columns[label]) if y != ""]
        if task == "regression":
            check_targets(label, split_columns[label])
            split_labels = []  # nothing to compare with training's labels
        elif task == recipe.TASKS[1]:
            split_labels = [x for y in split_labels for x in recipe.parse_label_list(y, fmt or ",")]
        unseen = Counter(y for y in split_labels if y not in set(labels))
        if unseen:
            shown = ", ".join(f"{y!r} ({_rows(n)})" for y, n in unseen.most_common(5))
            raise DatasetError(
                f"{split_name} has label(s) that {train_name} lacks: {shown}. Every label of "
                "the validation and test splits must occur in training"
            )
        total += sum(1 for y in map(_as_label, split_columns[label]) if y != "")
    if total < MIN_ROWS:
        with_splits = " (split files included)" if total > len(train_labels) else ""
        raise DatasetError(
            f"{train_name} has only {total} labelled row(s){with_splits}; tunesmith "
            f"needs at least {MIN_ROWS} to train and keep some apart for validation and test. "
            "Add rows: a few dozen per label is a sensible minimum"
        )
    if task == recipe.TASKS[0]:
        warnings += carve_warnings(train_labels, source.files)
    sha = {
        name: recipe.source_sha256(f, source.readers.get(name))
        for name, f in source.files.items()
        if f
    }
    return DataSpec(
        files=source.files,
        text_column=text,
        label_column=label,
        labels=labels,
        sha256=sha,
        split_seed=split_seed,
        columns=list(columns),
        reasons=reasons,
        readers=source.readers,
        warnings=warnings,
        task=task,
        label_format=fmt if task == recipe.TASKS[1] else None,
    )


def load_split_rows(spec: DataSpec) -> dict[str, tuple[list[str], list[str]]]:
    """Rows per split, exactly as the training recipe will see them."""
    try:
        return recipe.load_splits(spec.to_dict())
    except KeyError as exc:
        raise DatasetError(f"A split file lacks the column {exc}") from exc
    except Exception as exc:  # a file changed or vanished since it was inspected
        raise DatasetError(f"Could not read the data: {_first_line(exc)}") from exc
