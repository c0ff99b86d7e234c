"""Data-quality findings and fixes (tuning_core.quality): exact numbers on small crafted rows."""

from __future__ import annotations

import copy
import random
import subprocess
import sys
import time

import numpy as np
import pytest

from tuning_core import quality
from tuning_core.quality import FIXES, Finding, analyse, analyse_with_counts, apply_fix, normalise

TWENTY = (
    "the quick brown fox jumps over the lazy dog while the farmer watches "
    "from his old wooden porch this morning"
)
assert len(TWENTY.split()) == 20


def by_id(findings: list[Finding]) -> dict[str, Finding]:
    return {f.id: f for f in findings}


def filler(n: int, seed: int = 0, words: int = 8) -> list[str]:
    """`n` distinct, unrelated texts of `words` words."""
    rng = random.Random(seed)
    vocab = [f"{a}{b}{c}" for a in "bcdfgk" for b in "aeiou" for c in "lmnprst"]
    return [" ".join(rng.choice(vocab) for _ in range(words)) + f" n{i}" for i in range(n)]


# ---------------------------------------------------------------- normalise


def test_normalise_masks_urls_and_mentions_and_collapses_whitespace():
    assert normalise("  Great   movie!!! http://x.co/a?b=1 @Bob\n") == "great movie!!! <url> @user"
    assert normalise("see www.example.com/page and HTTPS://Y.IO") == "see <url> and <url>"
    assert normalise("mail bob@example.com") == "mail bob@example.com"  # not a mention
    assert normalise("@a_1: hi\t\tthere") == "@user: hi there"
    assert normalise("") == ""
    assert quality.is_empty_like(" NaN ") and quality.is_empty_like("-")
    assert quality.is_empty_like("\t") and not quality.is_empty_like("NA text")


# ---------------------------------------------------------------- near duplicates


def test_near_duplicates_catch_masked_urls_mentions_and_one_word_edits():
    edited = TWENTY.replace("farmer", "baker")
    train = [
        "Great movie!!! http://x.co @bob",
        "great movie!!! https://y.io @alice",
        TWENTY,
        edited,
        *filler(30),
    ]
    findings, counts = analyse_with_counts({"train": (train, ["a"] * len(train))})
    near = by_id(findings)["near_duplicates"]
    assert near.count == 2 and counts["near_duplicates"] == 2
    assert near.fix is None and near.severity == "low"
    assert {s["row"] for s in near.samples} == {1, 3}
    assert {s["duplicate_of"]["row"] for s in near.samples} == {0, 2}
    edit_sample = next(s for s in near.samples if s["row"] == 3)
    assert 0.8 <= edit_sample["jaccard"] < 1.0
    assert "0.8" in near.detail


def test_near_duplicate_pairs_find_planted_pairs_and_nothing_else():
    rng = random.Random(3)
    texts = filler(3000, seed=1, words=20)
    planted = {}
    for i in range(0, 600, 3):  # 200 one-word edits of 20-word texts
        words = texts[i].split()
        words[rng.randrange(1, 20)] = "zzzzq"
        planted[len(texts)] = i
        texts.append(" ".join(words))
    started = time.monotonic()
    pairs = quality.near_duplicate_pairs(texts)
    assert time.monotonic() - started < 5
    found = {(i, j) for i, j, _ in pairs}
    expected = {(src, dup) for dup, src in planted.items()}
    assert all(jac >= quality.NEAR_THRESHOLD for _i, _j, jac in pairs)
    assert found <= expected  # nothing unrelated
    assert len(found) >= 0.95 * len(expected)


def test_unrelated_texts_are_not_near_duplicates():
    texts = [
        "I love this phone, the battery lasts all day",
        "The train to Leeds was cancelled again this morning",
        "i hate it",
        "i love it",
        "good day",
        "bad day",
    ]
    assert quality.near_duplicate_pairs([normalise(t) for t in texts]) == []
    findings = analyse({"train": (texts, list("abcabc"))})
    assert "near_duplicates" not in by_id(findings)


def test_the_jaccard_search_is_sampled_beyond_its_cap(monkeypatch):
    monkeypatch.setattr(quality, "NEAR_MAX_TEXTS", 20)
    train = filler(60) + [TWENTY, TWENTY + " !"]
    findings, counts = analyse_with_counts(
        {"train": (train, ["a"] * len(train)), "test": ([TWENTY + " ?"], ["a"])}
    )
    assert counts["near_search"] == {
        "threshold": quality.NEAR_THRESHOLD,
        "texts": 63,
        "searched": 20,
        "sampled": True,
    }
    leak = by_id(findings)["leakage"]
    assert "sample of 20 of 63 distinct texts" in leak.detail


def test_long_texts_shrink_the_jaccard_search(monkeypatch):
    monkeypatch.setattr(quality, "NEAR_MAX_CHARS", 500)
    train = filler(60)  # ~40 characters each: about 12 fit in 500
    _findings, counts = analyse_with_counts({"train": (train, ["a"] * 60)})
    search = counts["near_search"]
    assert search["sampled"] and search["texts"] == 60 and 8 <= search["searched"] <= 16


def test_exact_jaccard_in_batches_matches_python_sets(monkeypatch):
    monkeypatch.setattr(quality, "_JACCARD_BATCH_CHARS", 100)
    texts = [TWENTY, TWENTY.replace("farmer", "baker"), "abcdefgh", "abcdefgx", "zzzzzzzz"]

    def grams(t):
        return {t[i : i + 5] for i in range(len(t) - 4)}

    a, b = [0, 2, 0, 4], [1, 3, 2, 3]
    got = quality._jaccard(texts, np.array(a), np.array(b))
    for k, (i, j) in enumerate(zip(a, b, strict=True)):
        x, y = grams(texts[i]), grams(texts[j])
        assert got[k] == pytest.approx(len(x & y) / len(x | y))


# ---------------------------------------------------------------- each finding


def test_exact_duplicates_and_conflicting_labels():
    train = ["good day", "good day ", "Bad day", "bad  day", "fine", "good day", "x y"]
    labels = ["pos", "pos", "neg", "pos", "pos", "neg", "neg"]
    findings, counts = analyse_with_counts({"train": (train, labels)})
    found = by_id(findings)
    dup = found["exact_duplicates"]
    assert dup.count == 2 and counts["exact_duplicates"] == 2  # rows 1 and 5
    assert [s["row"] for s in dup.samples] == [1, 5]
    assert dup.samples[0]["duplicate_of"]["row"] == 0
    assert dup.fix == "drop_exact_duplicates"
    assert "Drop the 1 rows" in dup.fix_text  # only row 1 repeats text and label
    conflict = found["conflicting_labels"]
    # "good day" (pos/neg) and "bad day" (normalised: "Bad day" neg, "bad  day" pos)
    assert conflict.count == 2 and counts["conflicting_texts"] == 2
    assert "(5 rows, 71.4%)" in conflict.title  # rows 0, 1, 5 and 2, 3
    assert conflict.fix == "resolve_conflicts_majority"
    sample = conflict.samples[0]
    assert sample["row"] == 0 and sample["other_labels"] == ["neg"]


def test_empty_and_placeholder_texts():
    train = ["", "   ", "NaN", "null", "-", "N/A", "None", "na", "NA text", "fine"]
    findings = analyse({"train": (train, ["a", "b"] * 5), "validation": (["", "ok"], ["a", "b"])})
    empty = by_id(findings)["empty_texts"]
    assert empty.count == 8
    assert "2 empty, 6 like 'nan'/'null'" in empty.title
    assert empty.severity == "high"  # 80% of the rows
    assert "Also in validation 1" in empty.detail
    assert empty.fix == "drop_empty"
    assert len(empty.samples) == 5


def test_short_and_long_outliers_by_words():
    train = [f"{w} a b c d e f g h i" for w in filler(100, words=1)] + ["ok", "two words"]
    train.append(" ".join(["long"] * 200))
    findings = analyse({"train": (train, ["a", "b", "c"] * 34 + ["a"])})
    found = by_id(findings)
    assert found["short_texts"].count == 2
    assert {s["text"] for s in found["short_texts"].samples} == {"ok", "two words"}
    long = found["long_texts"]
    assert long.count == 1 and "words" in long.title
    assert long.samples[0]["row"] == 102 and long.samples[0]["length"] == 200


def test_short_texts_are_not_outliers_when_the_data_is_short():
    train = ["hi", "hello there", "ok", "yes please now", "no"]
    assert "short_texts" not in by_id(analyse({"train": (train, list("ababa"))}))


def test_truncation_uses_token_lengths_and_max_length():
    train = filler(10)
    lengths = [10, 12, 14, 16, 20, 30, 40, 130, 140, 200]
    findings = analyse({"train": (train, ["a", "b"] * 5)}, {"train": lengths}, max_length=128)
    trunc = by_id(findings)["truncation"]
    assert trunc.count == 3
    assert trunc.title.startswith("30.0% of training texts are longer than max_length 128")
    assert trunc.severity == "medium"
    assert [s["row"] for s in trunc.samples] == [7, 8, 9]
    # counted on a sample: the rows are given, the title says so
    sampled = analyse(
        {"train": (train, ["a", "b"] * 5)},
        {"train": [10, 300]},
        max_length=128,
        token_rows={"train": [2, 5]},
    )
    trunc = by_id(sampled)["truncation"]
    assert trunc.count == 1 and trunc.samples[0]["row"] == 5
    assert "sample of 2 of 10 rows" in trunc.title


def test_rare_labels_and_labels_missing_from_training():
    train = filler(47)
    labels = ["a"] * 20 + ["b"] * 20 + ["c"] * 2 + ["d"] * 5
    findings = analyse({"train": (train, labels), "validation": (["x"], ["e"])})
    rare = by_id(findings)["rare_labels"]
    assert rare.count == 3
    assert rare.severity == "high"  # 'c' cannot be split, 'e' is not in training
    assert rare.title == "3 labels have too few training rows: 'e' (0), 'c' (2), 'd' (5)"
    assert rare.fix == "merge_rare_labels" and rare.fix_options == {"min_count": 10}
    assert {s["label"] for s in rare.samples} == {"c", "d", "e"}


def test_on_a_tiny_set_only_unsplittable_labels_are_rare():
    findings = analyse({"train": (filler(9), ["a"] * 4 + ["b"] * 4 + ["c"])})
    rare = by_id(findings)["rare_labels"]
    assert rare.count == 1 and rare.fix_options == {"min_count": quality.SPLIT_MIN}


def test_class_imbalance_is_info_then_medium_and_ignores_rare_labels():
    mild = analyse({"train": (filler(40), ["a"] * 30 + ["b"] * 10)})
    imbalance = by_id(mild)["class_imbalance"]
    assert imbalance.severity == "info" and imbalance.fix is None
    assert "3.0x" in imbalance.title and "macro-F1" in imbalance.fix_text
    strong = analyse({"train": (filler(111), ["a"] * 100 + ["b"] * 10 + ["c"])})
    imbalance = by_id(strong)["class_imbalance"]
    assert imbalance.severity == "medium" and "10.0x" in imbalance.title
    assert "not counting the 1 rare labels" in imbalance.title
    assert "class_imbalance" not in by_id(analyse({"train": (filler(4), list("aabb"))}))


def test_leakage_exact_and_near_per_split():
    edited = TWENTY.replace("farmer", "baker")
    train = ["shared text here", "Great movie!!! http://x.co @bob", TWENTY, *filler(10)]
    splits = {
        "train": (train, ["a"] * len(train)),
        "validation": (
            ["shared text here", "great movie!!! https://y.io @alice", "new"],
            list("aaa"),
        ),
        "test": ([edited, "  shared text here  ", "other"], list("aaa")),
    }
    findings, counts = analyse_with_counts(splits)
    leak = findings[0]
    assert leak.id == "leakage" and leak.severity == "high"
    assert leak.count == 4
    assert counts["leaked_exact"] == {"validation": 1, "test": 1}
    assert counts["leaked_near"] == {"validation": 1, "test": 1}
    assert counts["leaked_train_rows"] == 3
    assert "validation: 1 exact, 1 near; test: 1 exact, 1 near" in leak.title
    assert leak.fix == "drop_leaked" and "3 training rows" in leak.fix_text
    matches = {(s["split"], s["row"]): (s["match"], s["duplicate_of"]["row"]) for s in leak.samples}
    assert matches == {
        ("validation", 0): ("exact", 0),
        ("validation", 1): ("near", 1),
        ("test", 0): ("near", 2),
        ("test", 1): ("exact", 0),
    }


def test_findings_are_sorted_by_severity_then_count_and_round_trip():
    train = ["", "x y z w", "x y z w", "p q r s", "p q r s", "p q r s", *filler(30)]
    labels = ["a", "a", "a", "b", "b", "b"] + ["a", "b"] * 15
    findings = analyse({"train": (train, labels), "test": (["p q r s"], ["b"])})
    order = [quality.SEVERITIES.index(f.severity) for f in findings]
    assert order == sorted(order)
    for f in findings:
        assert f.severity in quality.SEVERITIES and f.title and f.detail
        assert f.fix is None or f.fix in FIXES
        assert f.fix_text and len(f.samples) <= quality.MAX_SAMPLES
        assert Finding.from_dict(f.to_dict()) == f
    assert Finding.from_dict({**findings[0].to_dict(), "unknown": 1}) == findings[0]


def test_no_findings_on_clean_data():
    assert (
        analyse({"train": (filler(20), ["a", "b"] * 10), "test": (filler(4, 9), list("abab"))})
        == []
    )


# ---------------------------------------------------------------- fixes


def problem_splits():
    edited = TWENTY.replace("farmer", "baker")
    train = [
        "good day",  # 0
        "good day",  # 1 repeats 0
        "bad day",  # 2 conflict neg/pos/pos -> majority pos
        "Bad day",  # 3
        "bad  day",  # 4
        "tie text",  # 5 tie a/b
        "tie text",  # 6
        "",  # 7
        "nan",  # 8
        TWENTY,  # 9 near-leaks into test
        "in validation",  # 10 exact leak
        "rare one",  # 11 rare label
    ]
    labels = ["pos", "pos", "neg", "pos", "pos", "neg", "pos", "neg", "pos", "neg", "pos", "odd"]
    return {
        "train": (train, labels),
        "validation": (["in validation", ""], ["pos", "odd"]),
        "test": ([edited, "fresh"], ["neg", "pos"]),
    }


@pytest.mark.parametrize("fix_id", sorted(FIXES))
def test_fixes_never_mutate_their_input(fix_id):
    splits = problem_splits()
    before = copy.deepcopy(splits)
    options = {"min_count": 2} if fix_id == "merge_rare_labels" else {}
    new, summary = apply_fix(splits, fix_id, **options)
    assert splits == before
    assert new is not splits and new["train"][0] is not splits["train"][0]
    assert summary["fix"] == fix_id and summary["description"] == FIXES[fix_id]
    assert summary["rows_before"] == {"train": 12, "validation": 2, "test": 2}
    assert summary["rows_after"] == {k: len(v[0]) for k, v in new.items()}


def test_drop_exact_duplicates_keeps_the_first_copy_of_text_and_label():
    new, summary = apply_fix(problem_splits(), "drop_exact_duplicates")
    assert summary["removed"] == {"train": 1, "validation": 0, "test": 0}
    assert new["train"][0].count("good day") == 1
    assert new["train"][0].count("tie text") == 2  # different labels: a conflict, kept


def test_resolve_conflicts_majority_relabels_and_drops_ties():
    new, summary = apply_fix(problem_splits(), "resolve_conflicts_majority")
    texts, labels = new["train"]
    assert "tie text" not in texts
    assert [y for t, y in zip(texts, labels, strict=True) if normalise(t) == "bad day"] == [
        "pos"
    ] * 3
    assert summary["relabelled"]["train"] == 1
    assert summary["removed"]["train"] == 2
    assert summary["labels_gone"] == {}


def test_drop_conflicts_drops_every_conflicting_row():
    new, summary = apply_fix(problem_splits(), "drop_conflicts")
    assert summary["removed"]["train"] == 5
    assert not {"bad day", "Bad day", "bad  day", "tie text"} & set(new["train"][0])


def test_drop_empty_from_train_or_any_split():
    new, summary = apply_fix(problem_splits(), "drop_empty")
    assert summary["removed"] == {"train": 2, "validation": 0, "test": 0}
    assert "" not in new["train"][0] and "nan" not in new["train"][0]
    new, summary = apply_fix(problem_splits(), "drop_empty", splits=("train", "validation"))
    assert summary["removed"] == {"train": 2, "validation": 1, "test": 0}
    assert summary["labels_gone"] == {"validation": ["odd"]}


def test_drop_leaked_removes_exact_and_near_copies_from_train():
    new, summary = apply_fix(problem_splits(), "drop_leaked")
    assert summary["removed"] == {"train": 3, "validation": 0, "test": 0}  # "", TWENTY, "in ..."
    assert TWENTY not in new["train"][0] and "in validation" not in new["train"][0]
    assert new["validation"] == problem_splits()["validation"]
    # nothing left to leak
    assert "leakage" not in by_id(analyse(new))


def test_merge_rare_labels_in_every_split():
    new, summary = apply_fix(problem_splits(), "merge_rare_labels", min_count=2)
    assert summary["labels_changed"] == {"odd": "other"}
    assert summary["relabelled"] == {"train": 1, "validation": 1, "test": 0}
    assert "odd" not in new["train"][1] and new["validation"][1] == ["pos", "other"]
    with pytest.raises(ValueError, match="fewer than two labels"):
        apply_fix(problem_splits(), "merge_rare_labels", min_count=100)


def test_unknown_fix():
    with pytest.raises(ValueError, match="unknown fix"):
        apply_fix(problem_splits(), "burn_it")


def test_import_stays_light():
    code = (
        "import sys, tuning_core.quality; "
        "bad = [m for m in ('torch', 'transformers', 'sklearn', 'datasets') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
