"""Every supported source reads the same in the session and in the exported recipe, and every
bad input gets one message a person can act on."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import pytest

from tuning_core import loaders, recipe
from tuning_core.data import DataSpec, inspect_data, load_split_rows
from tuning_core.errors import DatasetError

TWEETEVAL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tweeteval"

# Texts with every delimiter, quotes, accents, a text "NA" and "null", and an embedded newline.
ROWS = [
    (f'post {i}: café, “smart” and "plain" quotes; a|b {"x" * (i % 5)}', ["pos", "neg"][i % 2])
    for i in range(38)
] + [("NA", "pos"), ("null", "neg"), ("two\nlines, one text", "pos"), ("ünïcödé ok", "neg")]


def rows_of(splits: dict) -> list[tuple[str, str]]:
    return sorted(
        pair for texts, labels in splits.values() for pair in zip(texts, labels, strict=True)
    )


def csv_text(rows, delimiter=",", header=("text", "label"), newline="\n") -> str:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, delimiter=delimiter, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def put(path: Path, data: str | bytes, encoding="utf-8", gz=False) -> Path:
    raw = data.encode(encoding) if isinstance(data, str) else data
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    return path


def jsonl_text(rows) -> str:
    return "".join(json.dumps({"text": t, "label": y}, ensure_ascii=False) + "\n" for t, y in rows)


def parquet_bytes(rows) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"text": [t for t, _ in rows], "label": [y for _, y in rows]}), buf)
    return buf.getvalue()


WRITERS = {
    "comma.csv": lambda rows: csv_text(rows, ","),
    "semicolon.csv": lambda rows: csv_text(rows, ";"),
    "tab.csv": lambda rows: csv_text(rows, "\t"),
    "pipe.csv": lambda rows: csv_text(rows, "|"),
    "crlf.csv": lambda rows: csv_text(rows, ",", newline="\r\n"),
    "d.tsv": lambda rows: csv_text(rows, "\t"),
    "d.jsonl": jsonl_text,
    "d.json": lambda rows: json.dumps([{"text": t, "label": y} for t, y in rows]),
    "wrapped.json": lambda rows: json.dumps({"data": [{"text": t, "label": y} for t, y in rows]}),
    "d.parquet": parquet_bytes,
}
EXPECTED_READER = {
    "comma.csv": {"format": "csv", "delimiter": ",", "encoding": "utf-8"},
    "semicolon.csv": {"format": "csv", "delimiter": ";", "encoding": "utf-8"},
    "tab.csv": {"format": "csv", "delimiter": "\t", "encoding": "utf-8"},
    "pipe.csv": {"format": "csv", "delimiter": "|", "encoding": "utf-8"},
    "crlf.csv": {"format": "csv", "delimiter": ",", "encoding": "utf-8"},
    "d.tsv": {"format": "csv", "delimiter": "\t", "encoding": "utf-8"},
    "d.jsonl": {"format": "jsonl", "encoding": "utf-8"},
    "d.json": {"format": "json", "encoding": "utf-8"},
    "wrapped.json": {"format": "json", "field": "data", "encoding": "utf-8"},
    "d.parquet": {"format": "parquet"},
}


def assert_reads_back(spec: DataSpec, rows) -> dict:
    """The session's rows equal the exported recipe's rows, and equal what was written."""
    session = load_split_rows(spec)
    exported = recipe.load_splits(json.loads(json.dumps(spec.to_dict())))
    assert exported == session
    assert rows_of(session) == sorted(rows)
    return session


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("name", list(WRITERS))
def test_every_format_reads_the_same_in_session_and_export(tmp_path, name, gz):
    path = put(tmp_path / (name + (".gz" if gz else "")), WRITERS[name](ROWS), gz=gz)
    spec = inspect_data(path)
    expected = dict(EXPECTED_READER[name], **({"compression": "gzip"} if gz else {}))
    assert spec.readers == {"train": expected}
    assert (spec.text_column, spec.label_column, spec.labels) == ("text", "label", ["neg", "pos"])
    assert spec.warnings == []
    assert_reads_back(spec, ROWS)
    assert recipe.check_checksums(spec.to_dict()) == []


def test_utf8_bom_is_invisible(tmp_path):
    path = put(tmp_path / "bom.csv", csv_text(ROWS), encoding="utf-8-sig")
    spec = inspect_data(path)
    assert spec.columns == ["text", "label"] and spec.warnings == []
    assert spec.readers["train"]["encoding"] == "utf-8-sig"
    assert_reads_back(spec, ROWS)
    jsonl = put(tmp_path / "bom.jsonl", jsonl_text(ROWS), encoding="utf-8-sig")
    assert_reads_back(inspect_data(jsonl), ROWS)


CP1252_ROWS = [(f"crème brûlée n°{i} € déjà vu, naïve", ["oui", "non"][i % 2]) for i in range(30)]


@pytest.mark.parametrize(
    "name,write",
    [
        ("latin.csv", lambda rows: csv_text(rows, ";")),
        ("latin.csv.gz", lambda rows: csv_text(rows, ";")),
        ("latin.jsonl", jsonl_text),
        (
            "latin.json",
            lambda rows: json.dumps([{"text": t, "label": y} for t, y in rows], ensure_ascii=False),
        ),
    ],
)
def test_windows_1252_is_read_with_a_warning_naming_it(tmp_path, name, write):
    path = put(tmp_path / name, write(CP1252_ROWS), encoding="cp1252", gz=name.endswith(".gz"))
    spec = inspect_data(path)
    assert spec.readers["train"]["encoding"] == "cp1252"
    assert spec.warnings == [f"{name}: read as windows-1252, not UTF-8"]
    session = assert_reads_back(spec, CP1252_ROWS)
    texts = [t for split_texts, _ in session.values() for t in split_texts]
    assert "crème brûlée n°0 € déjà vu, naïve" in texts


def test_quoted_newlines_crlf_and_integer_labels(tmp_path):
    rows = [(f'line one of {i}\r\nline "two", end', str(i % 3)) for i in range(30)]
    path = put(tmp_path / "q.csv", csv_text(rows, newline="\r\n"))
    spec = inspect_data(path)
    assert spec.labels == ["0", "1", "2"]
    assert_reads_back(spec, rows)
    jsonl = put(
        tmp_path / "ints.jsonl",
        "".join(json.dumps({"text": t, "label": int(y)}) + "\n" for t, y in rows),
    )
    assert inspect_data(jsonl).labels == ["0", "1", "2"]
    assert_reads_back(inspect_data(jsonl), rows)


def test_late_empty_label_does_not_break_integer_labels(tmp_path):
    # datasets reads CSV in chunks of 10,000 rows; an empty cell after the first chunk used to
    # fail to cast the integer column
    rows = [(f"text {i}", "" if i == 10_003 else str(i % 3)) for i in range(10_005)]
    spec = inspect_data(put(tmp_path / "big.csv", csv_text(rows)))
    assert spec.labels == ["0", "1", "2"]
    assert any("1 row(s) without a label are skipped" in w for w in spec.warnings)
    assert sum(len(t) for t, _ in load_split_rows(spec).values()) == 10_004


def test_sibling_splits_of_gzipped_files(tmp_path):
    put(tmp_path / "train.jsonl.gz", jsonl_text(ROWS), gz=True)
    put(tmp_path / "dev.jsonl.gz", jsonl_text(ROWS[:6]), gz=True)
    put(tmp_path / "test.csv.gz", csv_text(ROWS[6:10]), gz=True)  # no match: other format
    spec = inspect_data(tmp_path / "train.jsonl.gz")
    assert spec.files["validation"].endswith("dev.jsonl.gz") and spec.files["test"] is None
    splits = assert_reads_back(spec, ROWS + ROWS[:6])
    assert len(splits["validation"][0]) == 6


# ---------------------------------------------------------------- folders


def save_splits(folder: Path, splits: dict[str, list], class_label=True) -> Path:
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    names = ["neg", "pos"]
    features = Features(
        {
            "text": Value("string"),
            "label": ClassLabel(names=names) if class_label else Value("string"),
        }
    )

    def make(rows):
        labels = [names.index(y) if class_label else y for _, y in rows]
        return Dataset.from_dict({"text": [t for t, _ in rows], "label": labels}, features=features)

    if list(splits) == [None]:
        make(splits[None]).save_to_disk(str(folder))
    else:
        DatasetDict({k: make(v) for k, v in splits.items()}).save_to_disk(str(folder))
    return folder


def test_save_to_disk_dataset_dict_maps_dev_to_validation(tmp_path):
    folder = save_splits(tmp_path / "dd", {"train": ROWS, "dev": ROWS[:8], "test": ROWS[8:14]})
    spec = inspect_data(folder)
    assert spec.readers == {
        "train": {"format": "arrow_dir", "split": "train"},
        "validation": {"format": "arrow_dir", "split": "dev"},
        "test": {"format": "arrow_dir", "split": "test"},
    }
    assert spec.labels == ["neg", "pos"]  # ClassLabel indices become their names
    assert "validation from dd (split 'dev')" in spec.describe_splits()
    splits = assert_reads_back(spec, ROWS + ROWS[:14])
    assert [len(splits[s][0]) for s in ("train", "validation", "test")] == [42, 8, 6]
    assert recipe.check_checksums(spec.to_dict()) == []
    assert len(set(spec.sha256.values())) == 3


def test_save_to_disk_dataset_and_unknown_splits(tmp_path):
    spec = inspect_data(save_splits(tmp_path / "one", {None: ROWS}, class_label=False))
    assert spec.readers == {"train": {"format": "arrow_dir", "split": None}}
    assert_reads_back(spec, ROWS)
    folder = save_splits(tmp_path / "odd", {"train": ROWS, "unsupervised": ROWS[:3]})
    assert any("ignored the split(s) unsupervised" in w for w in inspect_data(folder).warnings)
    folder = save_splits(tmp_path / "bad", {"a": ROWS, "b": ROWS})
    with pytest.raises(DatasetError, match="holds the splits a, b but none is named train"):
        inspect_data(folder)


def write_tweeteval(folder: Path, splits: dict[str, list], mapping="0\tneg\n1\tpos\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, rows in splits.items():
        (folder / f"{prefix}_text.txt").write_text(
            "".join(t.replace("\n", " ") + "\n" for t, _ in rows)
        )
        (folder / f"{prefix}_labels.txt").write_text(
            "".join(f"{['neg', 'pos'].index(y)}\n" for _, y in rows)
        )
    if mapping is not None:
        (folder / "mapping.txt").write_text(mapping)
    return folder


TWEET_ROWS = [(t.replace("\n", " "), y) for t, y in ROWS]


@pytest.mark.parametrize("mapping", ["0\tneg\n1\tpos\n", "0 neg\n1 pos\n"], ids=["tab", "space"])
def test_tweeteval_folder(tmp_path, mapping):
    folder = write_tweeteval(
        tmp_path / "emo",
        {"train": TWEET_ROWS, "val": TWEET_ROWS[:5], "test": TWEET_ROWS[5:9]},
        mapping,
    )
    spec = inspect_data(folder)
    assert spec.readers["validation"] == {
        "format": "tweeteval",
        "labels": "val_labels.txt",
        "mapping": "mapping.txt",
        "encoding": "utf-8",
    }
    assert Path(spec.files["train"]).name == "train_text.txt"
    assert spec.labels == ["neg", "pos"]
    assert_reads_back(spec, TWEET_ROWS + TWEET_ROWS[:9])
    assert inspect_data(folder / "train_text.txt").to_dict() == spec.to_dict()
    assert recipe.check_checksums(spec.to_dict()) == []
    (folder / "val_labels.txt").write_text("1\n" * 5)
    assert recipe.check_checksums(spec.to_dict()) == [f"validation: {spec.files['validation']}"]


def test_tweeteval_problems(tmp_path):
    folder = write_tweeteval(tmp_path / "nomap", {"train": TWEET_ROWS}, mapping=None)
    spec = inspect_data(folder)
    assert spec.labels == ["0", "1"]
    assert any("No mapping.txt" in w for w in spec.warnings)
    folder = write_tweeteval(tmp_path / "short", {"train": TWEET_ROWS})
    (folder / "train_labels.txt").write_text("0\n" * 20 + "1\n" * 21)
    with pytest.raises(
        DatasetError, match=r"train_text.txt has 42 lines but train_labels.txt has 41"
    ):
        inspect_data(folder)
    (folder / "train_labels.txt").unlink()
    with pytest.raises(DatasetError, match=r"train_text.txt needs train_labels.txt beside it"):
        inspect_data(folder)


def test_folder_with_one_data_file_or_a_train_file(tmp_path):
    (tmp_path / "only").mkdir()
    put(tmp_path / "only" / "stuff.tsv", csv_text(ROWS, "\t"))
    assert inspect_data(tmp_path / "only").readers["train"]["delimiter"] == "\t"
    (tmp_path / "several").mkdir()
    put(tmp_path / "several" / "train.csv", csv_text(ROWS))
    put(tmp_path / "several" / "test.csv", csv_text(ROWS[:4]))
    put(tmp_path / "several" / "notes.csv", csv_text(ROWS[:4]))
    spec = inspect_data(tmp_path / "several")
    assert spec.files["test"].endswith("test.csv")


def test_old_spec_without_readers_still_loads(tmp_path):
    path = put(tmp_path / "d.csv.gz", csv_text(ROWS), gz=True)
    spec = inspect_data(path)
    old = {k: v for k, v in spec.to_dict().items() if k not in ("readers", "warnings")}
    assert DataSpec.from_dict(old).readers == {}
    assert recipe.load_splits(old) == load_split_rows(spec)
    tsv = put(tmp_path / "d.tsv", csv_text(ROWS, "\t"))
    old = {k: v for k, v in inspect_data(tsv).to_dict().items() if k != "readers"}
    assert rows_of(recipe.load_splits(old)) == sorted(ROWS)


# ---------------------------------------------------------------- bad input


def one_error(path, *args, **kwargs) -> str:
    with pytest.raises(DatasetError) as info:
        inspect_data(path, *args, **kwargs)
    message = str(info.value)
    assert "Traceback" not in message and "\n" not in message
    return message


def test_missing_path_and_empty_folder(tmp_path):
    assert one_error(tmp_path / "nope.csv").startswith("No such file or folder:")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.md").write_text("hello")
    message = one_error(tmp_path / "empty")
    assert "Found nothing to load in the folder" in message
    for looked_for in ("save_to_disk", "dataset_dict.json", "train_text.txt", ".csv", ".parquet"):
        assert looked_for in message


@pytest.mark.parametrize(
    "name,data,expected",
    [
        ("empty.csv", "", "empty.csv is empty"),
        ("blank.csv", "\n\n  \n", "blank.csv is empty"),
        ("empty.jsonl", "\n", "empty.jsonl is empty"),
        ("head.csv", "text,label\n", "head.csv has a header (text, label) but no rows"),
        ("head.tsv", "text\tlabel\r\n\r\n", "head.tsv has a header (text, label) but no rows"),
        ("none.json", "[]", "none.json has no rows"),
        ("obj.json", '{"a": 1}', "holds one JSON object without a list of rows"),
        ("strs.json", '["a", "b"]', "item 1 of the top-level list is a JSON str, not an object"),
        (
            "bad.json",
            '[{"text": "a",\n "label": }]',
            "bad.json is not valid JSON: Expecting value at line 2",
        ),
        ("notgz.csv.gz", "text,label\n", "ends in .gz but is not gzip-compressed"),
        ("fake.parquet", "text,label\n", "fake.parquet is not a Parquet file"),
    ],
)
def test_empty_and_malformed_files(tmp_path, name, data, expected):
    assert expected in one_error(put(tmp_path / name, data))


def test_empty_parquet_and_gzipped_empty_file(tmp_path):
    assert "has no rows" in one_error(put(tmp_path / "e.parquet", parquet_bytes([])))
    assert "e.csv.gz is empty" in one_error(put(tmp_path / "e.csv.gz", "", gz=True))
    gz_named_csv = put(tmp_path / "g.csv", csv_text(ROWS), gz=True)
    assert "g.csv is gzip-compressed; name it g.csv.gz" in one_error(gz_named_csv)


@pytest.mark.parametrize(
    "name,data,expected",
    [
        ("sheet.xlsx", b"PK\x03\x04junk", "sheet.xlsx: unsupported file type (.xlsx)"),
        ("notes.txt", b"hello", "unsupported file type (.txt)"),
        ("noext", b"hello", "unsupported file type (no extension)"),
        ("sheet.csv", b"PK\x03\x04\x00\x00junk", "zip or Excel"),
        (
            "blob.csv",
            bytes(range(256)) * 4,
            "blob.csv does not look like a CSV file: it holds binary data",
        ),
        ("blob.jsonl", b"\x00\x01\x02{}", "binary data"),
    ],
)
def test_binary_or_unsupported_files_list_the_formats(tmp_path, name, data, expected):
    message = one_error(put(tmp_path / name, data))
    assert expected in message
    assert "tunesmith reads CSV" in message and "Parquet" in message and "TweetEval" in message


def test_broken_jsonl_line_is_named(tmp_path):
    lines = jsonl_text(ROWS).splitlines()
    lines[6] = '{"text": "oops", "label": "pos"'
    message = one_error(put(tmp_path / "d.jsonl", "\n".join(lines)))
    assert message.startswith("d.jsonl line 7 is not valid JSON")
    lines[6] = '["a list"]'
    assert "line 7 is a JSON list, not an object" in one_error(
        put(tmp_path / "e.jsonl", "\n".join(lines))
    )


def test_jsonl_under_a_json_name(tmp_path):
    spec = inspect_data(put(tmp_path / "lines.json", jsonl_text(ROWS)))
    assert spec.readers["train"]["format"] == "jsonl"
    assert_reads_back(spec, ROWS)
    lines = jsonl_text(ROWS).splitlines()
    lines[3] = "{broken"
    assert "lines.json line 4 is not valid JSON" in one_error(
        put(tmp_path / "lines.json", "\n".join(lines))
    )


@pytest.mark.parametrize(
    "delimiter,bad_row,expected",
    [
        (",", "one,two,three", "line 5: 3 field(s) where the header has 2 (separated by comma)"),
        (
            ";",
            "only one field",
            "line 5: 1 field(s) where the header has 2 (separated by semicolon)",
        ),
        ("\t", "a\tb\tc", "line 5: 3 field(s) where the header has 2 (separated by tab)"),
        ("|", "a|b|c|d", "line 5: 4 field(s) where the header has 2 (separated by pipe)"),
    ],
)
def test_ragged_csv_row_gives_its_line_number(tmp_path, delimiter, bad_row, expected):
    lines = csv_text([(f"text {i}", "pos") for i in range(30)], delimiter).splitlines()
    lines.insert(4, bad_row)
    message = one_error(put(tmp_path / "r.csv", "\n".join(lines) + "\n"))
    assert message.startswith("r.csv " + expected)


def test_ragged_line_number_counts_physical_lines(tmp_path):
    text = 'text,label\n"multi\nline\ntext",pos\nok,neg\nbad,row,here\n' + "x,pos\n" * 30
    assert "r.csv line 6: 3 field(s)" in one_error(put(tmp_path / "r.csv", text))
    text = 'text,label\nok,pos\n"never closed,neg\n' + "x,pos\n" * 30
    assert "r.csv line 3: 1 field(s)" in one_error(put(tmp_path / "r.csv", text))


def test_no_column_looks_like_text(tmp_path):
    rows = [(i, i * 7 % 13, ["a", "b"][i % 2]) for i in range(40)]
    message = one_error(put(tmp_path / "n.csv", csv_text(rows, header=("id", "score", "cat"))))
    assert message.startswith("No column looks like text: 'id' (numbers), 'score' (numbers)")
    assert "'cat' (2 distinct values)" in message
    rows = [(i, ["a", "b"][i % 2]) for i in range(40)]
    message = one_error(put(tmp_path / "t.csv", csv_text(rows, header=("text", "label"))))
    assert message.startswith("Column 'text' holds numbers (0, 1, 2, ...), not text")


def test_single_label_and_continuous_labels(tmp_path):
    rows = [(f"text {i}", "spam") for i in range(30)] + [("unlabelled", "")]
    message = one_error(put(tmp_path / "one.csv", csv_text(rows)))
    assert message.startswith("Column 'label' has only one label ('spam') in its 30 labelled rows")
    # scores are read as regression targets; asked to classify them, it says what they are
    scores = [(f"text number {i}", f"{i * 0.37 % 5:.2f}") for i in range(60)]
    path = put(tmp_path / "s.csv", csv_text(scores, header=("text", "score")))
    assert inspect_data(path).task == "regression"
    with pytest.raises(DatasetError) as caught:
        inspect_data(path, task="single_label_classification")
    assert "these look like scores. Say `regression` to predict the number" in str(caught.value)
    assert str(caught.value).startswith("Column 'score' holds")
    ints = [(f"text number {i}", str(i * 3)) for i in range(40)]
    assert inspect_data(put(tmp_path / "i.csv", csv_text(ints))).task == "regression"
    # few distinct integer classes are labels, not scores
    stars = [(f"text number {i}", str(i % 5 + 1)) for i in range(40)]
    assert inspect_data(put(tmp_path / "stars.csv", csv_text(stars))).labels == list("12345")


def test_too_few_rows_and_rare_labels(tmp_path):
    rows = [(f"text {i}", ["a", "b"][i % 2]) for i in range(12)]
    message = one_error(put(tmp_path / "few.csv", csv_text(rows)))
    assert message.startswith("few.csv has only 12 labelled row(s); tunesmith needs at least 20")
    rows = [(f"text {i}", ["a", "b"][i % 2]) for i in range(30)]
    rows += [("lonely", "c"), ("pair", "d"), ("pair two", "d"), ("six", "e")]
    rows += [(f"six {i}", "e") for i in range(5)]
    spec = inspect_data(put(tmp_path / "rare.csv", csv_text(rows)))
    assert spec.warnings == [
        "Label 'c' has a single example: it stays in training, so the test and validation rows "
        "carved from the training file never include it. Add examples, remove those rows, or "
        "provide validation and test files",
        "Too few rows for the carved test and validation split(s) to include 'd' (2 rows): its "
        "scores there are not measured",
        "Too few rows for the carved validation split(s) to include 'e' (6 rows): its scores "
        "there are not measured",
    ]
    splits = load_split_rows(spec)
    assert splits["train"][1].count("c") == 1 and splits["train"][1].count("d") == 2
    assert splits["test"][1].count("e") == 1 and "e" not in splits["validation"][1]


def test_split_files_must_match_the_training_file(tmp_path):
    put(tmp_path / "train.csv", csv_text(ROWS))
    put(tmp_path / "val.csv", csv_text([("new", "maybe")] + ROWS[:4]))
    assert "val.csv has label(s) that train.csv lacks: 'maybe' (1 row)" in one_error(
        tmp_path / "train.csv"
    )
    put(tmp_path / "val.csv", csv_text(ROWS[:4], header=("body", "label")))
    assert "val.csv has no column 'text' (its columns are body, label)" in one_error(
        tmp_path / "train.csv"
    )


def test_delimiter_sniffing_prefers_a_consistent_split():
    text = csv_text(ROWS, ";")
    assert loaders.sniff_delimiter(text) == ";"
    assert loaders.sniff_delimiter("text\nhello\nworld\n", "\t") == "\t"  # one column: extension
    assert loaders.sniff_delimiter(csv_text(ROWS, "|"), ",") == "|"


def test_encoding_detection():
    assert loaders.detect_encoding("café".encode()) == "utf-8"
    assert loaders.detect_encoding("café".encode("utf-8-sig")) == "utf-8-sig"
    assert loaders.detect_encoding("café € ok".encode("cp1252")) == "cp1252"
    assert loaders.detect_encoding(b"caf\xe9 \x81") == "latin-1"  # 0x81 is undefined in cp1252
    assert loaders.encoding_name("latin-1") == "latin-1 (ISO-8859-1)"


# ---------------------------------------------------------------- the real TweetEval files


@pytest.mark.skipif(
    not (TWEETEVAL / "emotion" / "train.csv").exists(),
    reason=f"the shared TweetEval CSVs are not at {TWEETEVAL}",
)
def test_real_tweeteval_emotion():
    spec = inspect_data(TWEETEVAL / "emotion" / "train.csv")
    assert Path(spec.files["validation"]).name == "val.csv"
    assert Path(spec.files["test"]).name == "test.csv"
    assert spec.labels == ["anger", "joy", "optimism", "sadness"]
    assert spec.readers["train"] == {"format": "csv", "delimiter": ",", "encoding": "utf-8"}
    session = load_split_rows(spec)
    assert {k: len(v[0]) for k, v in session.items()} == {
        "train": 3257,
        "validation": 374,
        "test": 1421,
    }
    assert recipe.load_splits(spec.to_dict()) == session


@pytest.mark.skipif(
    not (TWEETEVAL / "sentiment" / "test.csv").exists(),
    reason=f"the shared TweetEval CSVs are not at {TWEETEVAL}",
)
def test_real_tweeteval_folder_without_a_train_file():
    # sentiment has only val.csv and test.csv: the folder holds several files, none named train
    message = one_error(TWEETEVAL / "sentiment")
    assert "holds several data files (test.csv, val.csv)" in message


def test_blank_and_whitespace_lines_are_skipped_like_pandas(tmp_path):
    text = "\n  \ntext,label\n" + "".join(f"row {i},{'ab'[i % 2]}\n   \n\t\n" for i in range(30))
    spec = inspect_data(put(tmp_path / "gaps.csv", text))
    assert spec.columns == ["text", "label"]
    assert rows_of(load_split_rows(spec)) == sorted((f"row {i}", "ab"[i % 2]) for i in range(30))


def test_duplicate_and_blank_header_names(tmp_path):
    rows = [(f"id{i}", f"some text {i}", "ab"[i % 2], "x") for i in range(30)]
    spec = inspect_data(
        put(tmp_path / "h.csv", csv_text(rows, header=("", "text", "label", "label")))
    )
    assert spec.columns == ["column_1", "text", "label", "label.1"]
    assert spec.labels == ["a", "b"]


def test_legacy_cyrillic_is_left_to_charset_normalizer_and_western_text_is_not():
    pytest.importorskip("charset_normalizer")
    cyrillic = ("привет мир, как у вас дела сегодня? " * 5).encode("cp1251")  # noqa: RUF001
    assert loaders.detect_encoding(cyrillic) == "cp1251"
    western = ("crème brûlée n°1 € déjà vu, naïve; Müller über Straße " * 5).encode("cp1252")
    assert loaders.detect_encoding(western) == "cp1252"
