"""Find and check what a path holds, and decide how the recipe should read it.

`discover(path)` turns a file or a folder into the files of each split and one reader dict
per split (the format, the CSV delimiter, the text encoding, gzip: see `recipe.read_table`),
plus warnings for the person. It reads every text file once with the standard library to catch
what `datasets` would report vaguely or not at all: an empty file, a header without rows,
binary data, a broken JSON line, a ragged CSV row (each with its line number). Reading the rows
themselves is the recipe's job, so the exported script reads exactly as the session did.

Only the standard library is imported here.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from tuning_core import recipe
from tuning_core.errors import DatasetError

FORMATS_HELP = (
    "CSV (.csv, separated by commas, semicolons, tabs or pipes), TSV (.tsv, .tab), "
    "JSON Lines (.jsonl, .ndjson), a JSON list of objects (.json), Parquet (.parquet), "
    "any of these gzipped (e.g. .csv.gz), a folder written by datasets' save_to_disk, "
    "or a TweetEval folder (train_text.txt, train_labels.txt, mapping.txt)"
)
DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
SNIFF_CHARS = 64 * 1024
SPLIT_ALIASES = {
    "train": ("train", "training"),
    "validation": ("validation", "val", "valid", "dev"),
    "test": ("test", "testing"),
}
ENCODING_NAMES = {
    "cp1252": "windows-1252",
    "iso8859-1": "latin-1 (ISO-8859-1)",
    "latin-1": "latin-1 (ISO-8859-1)",
    "utf-16": "UTF-16",
}


@dataclass
class Source:
    """What a path holds: a file (or folder) per split, how to read each, and warnings."""

    files: dict[str, str | None]
    readers: dict[str, dict] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- encodings and bytes


def detect_encoding(raw: bytes) -> str:
    """The codec that decodes `raw`: UTF-8 (with or without a byte-order mark), UTF-16 with a
    mark; for text that looks Western (`_latin_looking`) windows-1252, else latin-1; otherwise
    charset_normalizer's guess where it is installed, else windows-1252, else latin-1."""
    if raw.startswith(codecs.BOM_UTF8):
        try:
            raw.decode("utf-8-sig")
            return "utf-8-sig"
        except UnicodeDecodeError:
            pass
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        raw.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    if _latin_looking(raw):
        # Western text in a legacy code page: accented letters here and there among plain
        # ones. charset_normalizer ranks a dozen code pages alike on such text and put Baltic
        # or Cyrillic ones first (crème read as crčme), so it is not asked
        try:
            raw.decode("cp1252")
            return "cp1252"
        except UnicodeDecodeError:
            return "latin-1"
    try:
        import charset_normalizer

        best = charset_normalizer.from_bytes(raw).best()
        if best is not None:
            return codecs.lookup(best.encoding).name
    except ImportError:
        pass
    try:
        raw.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def _latin_looking(raw: bytes) -> bool:
    """True when fewer than 40% of the letters are outside ASCII once read as latin-1: how
    Western European text looks in any of its code pages. Cyrillic, Greek or Hebrew text read
    so is nearly all such letters."""
    letters = [ch for ch in raw.decode("latin-1") if ch.isalpha()]
    if not letters:
        return True
    return sum(not ch.isascii() for ch in letters) / len(letters) < 0.4


def encoding_name(encoding: str) -> str:
    """How to name a codec to a person: cp1252 is "windows-1252"."""
    return ENCODING_NAMES.get(codecs.lookup(encoding).name, encoding)


def _binary_hint(raw: bytes) -> str:
    if raw.startswith(b"PK\x03\x04"):
        return " (it looks like a zip or Excel file: save it as CSV first)"
    if raw.startswith(b"PAR1"):
        return " (it looks like Parquet: name it .parquet)"
    if raw.startswith(b"%PDF"):
        return " (it looks like a PDF)"
    return ""


def _is_binary(raw: bytes) -> bool:
    return b"\x00" in raw[:8192]


# ---------------------------------------------------------------- CSV


def _records(text: str, delimiter: str):
    """(first line, fields) per CSV record; blank or whitespace-only lines are skipped, as
    pandas skips them."""
    csv.field_size_limit(1 << 30)  # a long text is no error (pandas has no such limit)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    end = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        start, end = end + 1, reader.line_num
        if record and not (len(record) == 1 and not record[0].strip()):
            yield start, record


def _consistent_width(text: str, delimiter: str) -> int:
    """The field count shared by every record of a sample, or 0 when they differ."""
    widths = set()
    try:
        for _, record in _records(text, delimiter):
            widths.add(len(record))
    except csv.Error:
        return 0
    return widths.pop() if len(widths) == 1 else 0


def sniff_delimiter(text: str, default: str = ",") -> str:
    """Comma, semicolon, tab or pipe: csv.Sniffer's pick when every record of a sample splits
    into the same number (two or more) of fields by it, else the first such of the file
    extension's default and the others, else the Sniffer's pick or the default."""
    sample = text[:SNIFF_CHARS]
    if len(text) > SNIFF_CHARS and "\n" in sample:
        # drop the last, probably cut, line (a quoted newline may still be cut: then the
        # record counts differ and the next candidate is tried)
        sample = sample[: sample.rindex("\n")]
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        sniffed = None
    order = [d for d in (sniffed, default, *DELIMITERS) if d]
    for delimiter in dict.fromkeys(order):
        if _consistent_width(sample, delimiter) >= 2:
            return delimiter
    return sniffed or default


def check_csv(name: str, text: str, delimiter: str) -> int:
    """Every record has the header's number of fields; returns the number of rows."""
    header: list[str] | None = None
    rows = 0
    shown = DELIMITER_NAMES.get(delimiter, repr(delimiter))
    start = 1
    try:
        for start, record in _records(text, delimiter):
            if header is None:
                header = record
                continue
            if len(record) != len(header):
                raise DatasetError(
                    f"{name} line {start}: {len(record)} field(s) where the header has "
                    f"{len(header)} (separated by {shown}). Check that line for a stray "
                    f"{shown} or an unclosed quote; quote a text that contains the separator."
                )
            rows += 1
    except csv.Error as exc:
        raise DatasetError(f"{name} line {start + 1}: cannot be read as CSV ({exc})") from exc
    if header is None:
        raise DatasetError(f"{name} is empty")
    if rows == 0:
        raise DatasetError(f"{name} has a header ({', '.join(header)}) but no rows")
    return rows


# ---------------------------------------------------------------- JSON


def check_jsonl(name: str, text: str) -> int:
    """Every non-blank line is one JSON object; returns the number of rows."""
    rows = 0
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            snippet = line.strip()[:60]
            raise DatasetError(
                f"{name} line {number} is not valid JSON ({exc.msg} at column {exc.colno}): "
                f"{snippet!r}. Fix or delete that line."
            ) from exc
        if not isinstance(obj, dict):
            raise DatasetError(
                f"{name} line {number} is a JSON {type(obj).__name__}, not an object such as "
                '{"text": "...", "label": "..."}'
            )
        rows += 1
    if rows == 0:
        raise DatasetError(f"{name} is empty")
    return rows


def _list_field(obj: dict) -> str | None:
    """The key of an object that holds the rows: "data", or the only list of objects."""
    if isinstance(obj.get("data"), list):
        return "data"
    keys = [k for k, v in obj.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
    return keys[0] if len(keys) == 1 else None


def _check_json_rows(name: str, rows: object, where: str) -> None:
    if not isinstance(rows, list):
        raise DatasetError(f"{name}: {where} is not a list of rows")
    if not rows:
        raise DatasetError(f"{name} has no rows ({where} is an empty list)")
    bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
    if bad is not None:
        raise DatasetError(
            f"{name}: item {bad + 1} of {where} is a JSON {type(rows[bad]).__name__}, not an "
            'object such as {"text": "...", "label": "..."}'
        )


def check_json(name: str, text: str) -> dict:
    """A JSON list of objects, {"data": [...]}, or JSON Lines under a .json name; returns the
    reader keys that say which ({"format": "json"} plus "field", or {"format": "jsonl"})."""
    body = text.lstrip("\ufeff \t\r\n")
    if not body.startswith(("[", "{")):
        raise DatasetError(
            f"{name} is not JSON (it should start with [ or {{); tunesmith reads {FORMATS_HELP}"
        )
    try:
        obj = json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError as exc:
        first = text.lstrip("\ufeff").split("\n", 1)[0]
        try:
            json.loads(first)
        except json.JSONDecodeError:
            raise DatasetError(
                f"{name} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
            ) from exc
        check_jsonl(name, text)  # one object per line under a .json name
        return {"format": "jsonl"}
    if isinstance(obj, list):
        _check_json_rows(name, obj, "the top-level list")
        return {"format": "json"}
    key = _list_field(obj) if isinstance(obj, dict) else None
    if key is None:
        raise DatasetError(
            f"{name} holds one JSON object without a list of rows; tunesmith reads a list of "
            'objects ([{"text": "...", "label": "..."}, ...]) or {"data": [...]}'
        )
    _check_json_rows(name, obj[key], f'"{key}"')
    return {"format": "json", "field": key}


# ---------------------------------------------------------------- one file


def _check_tweeteval(path: Path) -> tuple[dict, list[str]]:
    labels, mapping = recipe.tweeteval_paths(path)
    if not labels.exists():
        raise DatasetError(
            f"{path.name} needs {labels.name} beside it (TweetEval layout: one text per line, "
            "its label on the same line of the labels file)"
        )
    reader: dict = {"format": "tweeteval", "labels": labels.name, "mapping": None}
    warnings: list[str] = []
    if mapping:
        reader["mapping"] = mapping.name
    else:
        warnings.append(f"No mapping.txt beside {path.name}: the labels stay as numbers")
    raw = recipe.read_bytes(path)
    if not raw.strip():
        raise DatasetError(f"{path.name} is empty")
    if _is_binary(raw):
        raise DatasetError(f"{path.name} holds binary data, not one text per line")
    encoding = detect_encoding(raw + b"\n" + recipe.read_bytes(labels))
    reader["encoding"] = encoding
    if not recipe.is_utf8(encoding):
        warnings.append(f"{path.name}: read as {encoding_name(encoding)}, not UTF-8")
    try:
        table = recipe.read_tweeteval(path, reader)
    except ValueError as exc:
        raise DatasetError(
            f"{exc}; each text needs its label on the same line number"
            if "lines but" in str(exc)
            else f"Could not read {path.name}: {exc}"
        ) from exc
    names = set(recipe.tweeteval_mapping(mapping, encoding).values()) if mapping else set()
    unmapped = sorted({y for y in table["label"] if y} - names)
    if mapping and unmapped:
        warnings.append(
            f"{labels.name} has labels that {mapping.name} does not name: {', '.join(unmapped[:5])}"
        )
    return reader, warnings


def detect_reader(path: str | Path) -> tuple[dict, list[str]]:
    """Check one data file and say how to read it: (reader dict, warnings)."""
    p = Path(path)
    name = p.name
    if p.name.lower().endswith(recipe.TWEETEVAL_TEXT):
        return _check_tweeteval(p)
    suffix, gzipped = recipe.data_suffix(p)
    fmt = recipe.DATA_SUFFIXES.get(suffix)
    if fmt is None:
        hint = ""
        if suffix == ".txt":
            hint = " A TweetEval text file is named like train_text.txt, beside train_labels.txt."
        raise DatasetError(
            f"{name}: unsupported file type ({suffix or 'no extension'}). "
            f"tunesmith reads {FORMATS_HELP}.{hint}"
        )
    raw = p.read_bytes()
    if gzipped:
        if not raw.startswith(recipe.GZIP_MAGIC):
            raise DatasetError(f"{name} ends in .gz but is not gzip-compressed; rename it")
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{name} is a damaged gzip file ({exc})") from exc
    elif raw.startswith(recipe.GZIP_MAGIC):
        raise DatasetError(f"{name} is gzip-compressed; name it {name}.gz")
    if not raw.strip():
        raise DatasetError(f"{name} is empty")
    reader: dict = {"format": fmt}
    if gzipped:
        reader["compression"] = "gzip"
    kind = "Parquet" if fmt == "parquet" else suffix.lstrip(".").upper()
    if fmt == "parquet":
        if not raw.startswith(b"PAR1"):
            raise DatasetError(
                f"{name} is not a Parquet file (it lacks Parquet's signature). "
                f"tunesmith reads {FORMATS_HELP}."
            )
        import pyarrow.parquet as pq

        try:
            rows = pq.ParquetFile(io.BytesIO(raw)).metadata.num_rows
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError and others
            raise DatasetError(f"{name} is a damaged Parquet file ({exc})") from exc
        if rows == 0:
            raise DatasetError(f"{name} has no rows")
        return reader, []
    encoding = detect_encoding(raw)
    if encoding != "utf-16" and _is_binary(raw):
        raise DatasetError(
            f"{name} does not look like a {kind} file: it holds binary data{_binary_hint(raw)}. "
            f"tunesmith reads {FORMATS_HELP}."
        )
    text = raw.decode(encoding)
    warnings = []
    if not recipe.is_utf8(encoding):
        warnings.append(f"{name}: read as {encoding_name(encoding)}, not UTF-8")
    if not text.strip():
        raise DatasetError(f"{name} is empty")
    if fmt == "csv":
        delimiter = sniff_delimiter(text, "\t" if suffix in (".tsv", ".tab") else ",")
        check_csv(name, text, delimiter)
        reader["delimiter"] = delimiter
    elif fmt == "jsonl":
        check_jsonl(name, text)
    else:
        reader.update(check_json(name, text))
    reader["encoding"] = encoding
    return reader, warnings


# ---------------------------------------------------------------- layouts


def find_split_files(train: Path) -> dict[str, str | None]:
    """Sibling files such as val.csv/dev.csv and test.csv next to train.csv (also
    val_text.txt beside train_text.txt, test.jsonl.gz beside train.jsonl.gz)."""
    files: dict[str, str | None] = {"train": str(train), "validation": None, "test": None}
    suffix, gzipped = recipe.data_suffix(train)
    ending = suffix + (".gz" if gzipped else "")
    if not train.name.lower().endswith(ending):
        ending = ""
    stem = train.name[: len(train.name) - len(ending)] if ending else train.name
    if "train" not in stem.lower():
        return files
    for split in ("validation", "test"):
        for alias in SPLIT_ALIASES[split]:
            name = re.sub("train", alias, stem, flags=re.IGNORECASE) + train.name[len(stem) :]
            candidate = train.with_name(name)
            if candidate.exists() and candidate != train:
                files[split] = str(candidate)
                break
    return files


def _split_for(name: str) -> str | None:
    return next((s for s, aliases in SPLIT_ALIASES.items() if name.lower() in aliases), None)


def _arrow_dict(folder: Path) -> Source:
    try:
        names = json.loads((folder / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{folder / 'dataset_dict.json'} is damaged ({exc})") from exc
    source = Source(files={"train": None, "validation": None, "test": None})
    ignored = []
    for split_name in names:
        split = _split_for(split_name)
        if split is None or source.files[split]:
            ignored.append(split_name)
            continue
        source.files[split] = str(folder)
        source.readers[split] = {"format": "arrow_dir", "split": split_name}
    if not source.files["train"]:
        if len(names) != 1:
            raise DatasetError(
                f"{folder.name} holds the splits {', '.join(names)} but none is named train; "
                "rename one, or save the training split alone"
            )
        source.files = {"train": str(folder), "validation": None, "test": None}
        source.readers = {"train": {"format": "arrow_dir", "split": names[0]}}
        source.warnings.append(f"{folder.name}: its only split, {names[0]!r}, is used to train")
        ignored = []
    if ignored:
        source.warnings.append(f"{folder.name}: ignored the split(s) {', '.join(ignored)}")
    return source


def _discover_file(path: Path) -> Source:
    source = Source(files=find_split_files(path))
    for split, file in source.files.items():
        if file:
            reader, warnings = detect_reader(file)
            source.readers[split] = reader
            source.warnings += warnings
    return source


def _data_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and recipe.data_suffix(p)[0] in recipe.DATA_SUFFIXES
    )


def discover(path: str | Path) -> Source:
    """The splits a file or a folder holds and how to read each; `DatasetError` otherwise."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"No such file or folder: {path}")
    p = p.resolve()
    if p.is_file():
        return _discover_file(p)
    if (p / "dataset_dict.json").is_file():
        return _arrow_dict(p)
    if (p / "state.json").is_file() and any(p.glob("*.arrow")):
        return Source(
            files={"train": str(p), "validation": None, "test": None},
            readers={"train": {"format": "arrow_dir", "split": None}},
        )
    if (p / f"train{recipe.TWEETEVAL_TEXT}").is_file():
        return _discover_file(p / f"train{recipe.TWEETEVAL_TEXT}")
    candidates = _data_files(p)
    trains = [f for f in candidates if _split_for(f.name.split(".")[0]) == "train"]
    if trains:
        return _discover_file(trains[0])
    if len(candidates) == 1:
        return _discover_file(candidates[0])
    if candidates:
        shown = ", ".join(f.name for f in candidates[:8])
        raise DatasetError(
            f"{p} holds several data files ({shown}); give the one with the training data, "
            "or name it train.<ext> (val.<ext> and test.<ext> beside it are used as splits)"
        )
    raise DatasetError(
        f"Found nothing to load in the folder {p}. I looked for: a folder written by datasets' "
        "save_to_disk (dataset_dict.json, or state.json with .arrow files), a TweetEval layout "
        "(train_text.txt with train_labels.txt and mapping.txt), and data files "
        f"({', '.join(recipe.DATA_SUFFIXES)}, optionally .gz). Give the data file itself, "
        "or a folder holding one of these."
    )
