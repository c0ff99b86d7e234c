import csv
import json

import pytest

from tuning_core.data import DataSpec, inspect_data, load_split_rows
from tuning_core.errors import DatasetError


def write_csv(path, header, rows, delimiter=","):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


ROWS = [(f"sample text number {i} with some words", ["pos", "neg"][i % 2]) for i in range(40)]


def test_csv_columns_found_by_name(tmp_path):
    path = write_csv(
        tmp_path / "d.csv",
        ["id", "sentence", "sentiment"],
        [(i, t, y) for i, (t, y) in enumerate(ROWS)],
    )
    spec = inspect_data(path)
    assert (spec.text_column, spec.label_column) == ("sentence", "sentiment")
    assert spec.labels == ["neg", "pos"]
    assert len(spec.sha256["train"]) == 64


def test_columns_found_by_content(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["a", "b"], [(y, t) for t, y in ROWS])
    spec = inspect_data(path)
    assert (spec.text_column, spec.label_column) == ("b", "a")
    assert "words" in spec.reasons["text"]


def test_tsv_jsonl_and_parquet(tmp_path):
    tsv = write_csv(tmp_path / "d.tsv", ["text", "label"], ROWS, delimiter="\t")
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(
        "".join(json.dumps({"review": t, "stars": i % 5}) + "\n" for i, (t, _) in enumerate(ROWS))
    )
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": [t for t, _ in ROWS], "label": [y for _, y in ROWS]}), parquet)
    assert inspect_data(tsv).labels == ["neg", "pos"]
    spec = inspect_data(jsonl)
    assert (spec.text_column, spec.label_column, spec.labels) == (
        "review",
        "stars",
        ["0", "1", "2", "3", "4"],
    )
    assert inspect_data(parquet).text_column == "text"


def test_na_text_is_kept_and_unlabelled_rows_dropped(tmp_path):
    rows = ROWS + [("NA", "pos"), ("", "neg"), ("no label here", "")]
    path = write_csv(tmp_path / "d.csv", ["text", "label"], rows)
    spec = inspect_data(path)
    splits = load_split_rows(spec)
    texts = [t for s in splits.values() for t in s[0]]
    assert "NA" in texts and "" in texts
    assert "no label here" not in texts
    assert sum(len(s[0]) for s in splits.values()) == len(ROWS) + 2


def test_sibling_split_files_are_used(tmp_path):
    write_csv(tmp_path / "train.csv", ["text", "label"], ROWS)
    write_csv(tmp_path / "val.csv", ["text", "label"], ROWS[:6])
    write_csv(tmp_path / "test.csv", ["text", "label"], ROWS[6:10])
    spec = inspect_data(tmp_path / "train.csv")
    splits = load_split_rows(spec)
    assert {k: len(v[0]) for k, v in splits.items()} == {"train": 40, "validation": 6, "test": 4}


def test_carved_splits_are_stratified_and_seeded(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["text", "label"], ROWS)
    a = load_split_rows(inspect_data(path, split_seed=1))
    b = load_split_rows(inspect_data(path, split_seed=1))
    c = load_split_rows(inspect_data(path, split_seed=2))
    assert a == b and a != c
    assert sorted(a["test"][1]) == ["neg", "neg", "pos", "pos"]


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("missing.csv", None, "No such file"),
        ("d.txt", "hello", "unsupported file type"),
        ("one.csv", "text\nhello\nworld\n", "need a text column and a label column"),
        ("same.csv", "text,label\na,x\nb,x\n", "only one label"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        inspect_data(path)


def test_remap_to_missing_column_names_the_columns(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["text", "label"], ROWS)
    with pytest.raises(DatasetError, match=r"no column 'category'.*text, label"):
        inspect_data(path, label_column="category")


def test_spec_round_trips_with_readers_and_warnings_and_old_dicts_load(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(
        b"text;label\n" + "".join(f"caf\xe9 {t};{y}\n" for t, y in ROWS).encode("cp1252")
    )
    spec = inspect_data(path)
    assert spec.readers == {"train": {"format": "csv", "delimiter": ";", "encoding": "cp1252"}}
    assert spec.warnings == ["d.csv: read as windows-1252, not UTF-8"]
    raw = json.loads(json.dumps(spec.to_dict()))
    assert DataSpec.from_dict(raw) == spec
    old = {k: v for k, v in raw.items() if k not in ("readers", "warnings")}
    assert DataSpec.from_dict(old).readers == {} and DataSpec.from_dict(old).warnings == []
    with pytest.raises(TypeError):
        DataSpec.from_dict({**raw, "surprise": 1})


def test_given_text_column_is_never_taken_as_the_label(tmp_path):
    rows = [(f"t{i}", y, f"some words {i}") for i, (_, y) in enumerate(ROWS)]
    path = write_csv(tmp_path / "d.csv", ["a", "b", "c"], rows)
    spec = inspect_data(path, text_column="c")
    assert (spec.text_column, spec.label_column) == ("c", "b")
    assert spec.reasons["text"] == "you chose it"
    with pytest.raises(DatasetError, match="must differ"):
        inspect_data(path, text_column="c", label_column="c")


def test_folders_are_accepted(tmp_path):
    write_csv(tmp_path / "train.csv", ["text", "label"], ROWS)
    write_csv(tmp_path / "val.csv", ["text", "label"], ROWS[:6])
    spec = inspect_data(tmp_path)
    assert spec.files["validation"].endswith("val.csv")
    assert "validation from val.csv" in spec.describe_splits()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="Found nothing to load in the folder"):
        inspect_data(empty)


def test_load_split_rows_turns_read_failures_into_dataset_errors(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["text", "label"], ROWS)
    spec = inspect_data(path)
    path.unlink()
    with pytest.raises(DatasetError, match="Could not read the data"):
        load_split_rows(spec)
