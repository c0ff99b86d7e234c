"""Token classification building blocks: reading tagged files, schemes, broken sequences,
strict spans and entity scores, sub-word alignment with a real fast tokenizer, and a tiny BERT
that learns to tag names and places."""

from __future__ import annotations

import ast
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tuning_core import tokens as tk

MODULE = Path(tk.__file__)

CONLL_2003 = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O

BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O
"""


# ---------------------------------------------------------------- the module stays standalone


def test_module_imports_only_the_standard_library_at_top_level():
    tree = ast.parse(MODULE.read_text(encoding="utf-8"))
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            top.add(node.module.split(".")[0])
    assert top <= set(sys.stdlib_module_names) | {"__future__"}, top
    assert "tuning_core" not in MODULE.read_text(encoding="utf-8").split('"""', 2)[2]


def test_import_loads_no_heavy_library():
    code = (
        "import sys, tuning_core.tokens; "
        "print(','.join(m for m in ('torch', 'transformers', 'datasets', 'numpy') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.strip() == ""


# ---------------------------------------------------------------- reading


def test_read_conll_four_columns_with_docstart(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(CONLL_2003, encoding="utf-8")
    assert tk.read_conll(path) == [
        {
            "tokens": ["EU", "rejects", "German", "call", "."],
            "tags": ["B-ORG", "O", "B-MISC", "O", "O"],
        },
        {"tokens": ["Peter", "Blackburn"], "tags": ["B-PER", "I-PER"]},
        {"tokens": ["BRUSSELS", "1996-08-22"], "tags": ["B-LOC", "O"]},
    ]


def test_read_conll_two_tab_columns_crlf_and_no_final_blank_line(tmp_path):
    path = tmp_path / "ner.tsv"
    text = "Anna\tB-PER\r\nlives\tO\r\n\r\n\r\n\r\nin \t O\r\nOslo\tB-LOC"
    path.write_bytes(text.encode("utf-8-sig"))  # with a BOM
    assert tk.read_conll(path) == [
        {"tokens": ["Anna", "lives"], "tags": ["B-PER", "O"]},
        {"tokens": ["in", "Oslo"], "tags": ["O", "B-LOC"]},
    ]


def test_read_conll_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("Anna B-PER\n\nlives\nin O\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.conll, line 3: .*one column 'lives'"):
        tk.read_conll(path)

    latin = tmp_path / "latin.conll"
    latin.write_bytes("Anna B-PER\n\nM\u00e1laga B-LOC\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.conll, line 3: not valid UTF-8"):
        tk.read_conll(latin)
    assert tk.read_conll(latin, encoding="latin-1")[1]["tokens"] == ["M\u00e1laga"]

    empty = tmp_path / "empty.conll"
    empty.write_text("-DOCSTART- O\n\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"empty\.conll: no sentences"):
        tk.read_conll(empty)


def write_lines(path: Path, rows: list) -> Path:
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n",
        encoding="utf-8",
    )
    return path


def test_read_token_jsonl_keys_and_named_integer_tags(tmp_path):
    path = write_lines(
        tmp_path / "ner.jsonl",
        [
            {"tokens": ["Anna", "sings"], "tags": ["B-PER", "O"]},
            "",
            {"words": ["in", "Oslo"], "ner_tags": ["O", "B-LOC"]},
            {"tokens": ["Bo"], "labels": [1], "tag_names": ["O", "B-PER"]},
            {"tag_names": ["O", "B-PER", "I-PER", "B-LOC"]},  # applies to the rows after it
            {"tokens": ["Anna", "Berg", "in", "Rome"], "ner_tags": [1, 2, 0, 3]},
            {"tokens": ["Rome"], "ner_tags": [0], "id2label": {"0": "B-LOC"}},
        ],
    )
    assert tk.read_token_jsonl(path) == [
        {"tokens": ["Anna", "sings"], "tags": ["B-PER", "O"]},
        {"tokens": ["in", "Oslo"], "tags": ["O", "B-LOC"]},
        {"tokens": ["Bo"], "tags": ["B-PER"]},
        {"tokens": ["Anna", "Berg", "in", "Rome"], "tags": ["B-PER", "I-PER", "O", "B-LOC"]},
        {"tokens": ["Rome"], "tags": ["B-LOC"]},
    ]


@pytest.mark.parametrize(
    "bad_row,message",
    [
        ({"tokens": ["a", "b", "c"], "tags": ["O", "O"]}, r"line 2: 3 tokens but 2 tags"),
        ({"tokens": ["a"], "ner_tags": [0]}, r"line 2: tags must be names such as 'B-PER'"),
        ({"tokens": ["a"], "ner_tags": [3], "tag_names": ["O"]}, r"line 2: tag id 3 has no name"),
        ({"text": "a b", "tags": ["O", "O"]}, r"line 2: no token list"),
        ({"tokens": ["a"]}, r"line 2: no tag list"),
        ({"tokens": "a b", "tags": ["O"]}, r"line 2: 'tokens' must be a list of strings"),
        ({"tokens": ["a"], "tags": [None]}, r"line 2: tags must be names .* found None"),
        ('{"tokens": ["a"], "tags": ["O"]', r"line 2: not valid JSON"),
        ('["a", "O"]', r"line 2: expected a JSON object, found list"),
    ],
)
def test_read_token_jsonl_errors_name_the_line(tmp_path, bad_row, message):
    path = write_lines(tmp_path / "rows.jsonl", [{"tokens": ["ok"], "tags": ["O"]}, bad_row])
    with pytest.raises(ValueError, match=r"rows\.jsonl, " + message):
        tk.read_token_jsonl(path)


def test_looks_like_conll():
    two_columns = "Anna\tB-PER\nlives\tO\n\nin\tO\nOslo\tB-LOC\n.\tO\n\nBo\tB-PER\nsings\tO\n"
    pos_tags = "The DT\ndog NN\nbarks VBZ\n. .\n\nCats NNS\nsleep VBP\n"
    assert tk.looks_like_conll(CONLL_2003)
    assert tk.looks_like_conll(two_columns)
    assert tk.looks_like_conll(pos_tags)
    assert tk.looks_like_conll(CONLL_2003 + "Germany NNP B-NP B-L")  # a sample cut mid-line

    csv_text = "text,label\nI love it,positive\nawful film,negative\n\nok then,neutral\n"
    tsv_text = "I love it\tpositive\nawful film\tnegative\nok then\tneutral\nmeh\tneutral\n"
    prose = "The dog barks at night.\nIt is loud.\n\nCats sleep all day long.\nThey purr.\n"
    jsonl = '{"tokens": ["a"], "tags": ["O"]}\n\n{"tokens": ["b"], "tags": ["O"]}\n'
    vocabulary = "".join(f"word{i} translation{i}\n\n" for i in range(60))  # no repeating tags
    no_blank_lines = "Anna\tB-PER\nlives\tO\nin\tO\nOslo\tB-LOC\n"
    for text in (csv_text, tsv_text, prose, jsonl, vocabulary, no_blank_lines, "", "O\n\nO\n"):
        assert not tk.looks_like_conll(text), text


# ---------------------------------------------------------------- schemes, problems, spans


def test_tag_scheme():
    assert tk.tag_scheme(["O", "B-PER", "I-PER"]) == "BIO"
    assert tk.tag_scheme([["O", "B-PER"], ["S-LOC"]]) == "BIOES"  # lists per sentence too
    assert tk.tag_scheme(["B-PER", "I-PER", "E-PER", "O"]) == "BIOES"
    assert tk.tag_scheme(["U-PER", "O"]) == "BIOES"  # BILOU reads as BIOES
    assert tk.tag_scheme(["I-PER", "O", "I-LOC"]) == "IO"
    assert tk.tag_scheme(["PER", "O", "LOC"]) == "plain"
    assert tk.tag_scheme(["O", "O"]) == "plain"
    assert tk.tag_scheme([]) == "plain"


def test_broken_sequences_bio():
    sentences = [
        {"tokens": ["Anna", "Berg", "sings"], "tags": ["B-PER", "I-PER", "O"]},
        {"tokens": ["in", "Oslo", "city"], "tags": ["O", "I-LOC", "I-LOC"]},
        {"tokens": ["Bo", "Oslo"], "tags": ["B-PER", "I-LOC"]},
        ["I-ORG", "MISC", "X-PER"],
    ]
    assert tk.broken_sequences(sentences) == [
        {"sentence": 1, "token": 1, "tag": "I-LOC", "word": "Oslo", "problem": "I-LOC follows O"},
        {
            "sentence": 2,
            "token": 1,
            "tag": "I-LOC",
            "word": "Oslo",
            "problem": "I-LOC follows B-PER",
        },
        {
            "sentence": 3,
            "token": 0,
            "tag": "I-ORG",
            "word": None,
            "problem": "I-ORG starts the sentence",
        },
        {
            "sentence": 3,
            "token": 1,
            "tag": "MISC",
            "word": None,
            "problem": "MISC has no B/I- prefix",
        },
        {
            "sentence": 3,
            "token": 2,
            "tag": "X-PER",
            "word": None,
            "problem": "X-PER has the prefix X-, which BIO does not use",
        },
    ]
    assert len(tk.broken_sequences(sentences, most=2)) == 2
    assert tk.broken_sequences(sentences, scheme="IO", most=None)[0]["problem"] == (
        "B-PER has the prefix B-, which IO does not use"
    )


def test_broken_sequences_bioes():
    tags = [
        ["B-PER", "I-PER", "E-PER", "S-LOC", "O"],  # fine
        ["B-PER", "I-PER", "O"],  # not closed
        ["O", "E-LOC"],  # E- without B-
        ["I-PER", "E-PER", "B-LOC"],  # lone I- (then closed), B-LOC open at the end
        ["B-PER", "S-LOC", "I-ORG"],  # B-PER cut by S-LOC, I-ORG after S-LOC
    ]
    found = [(p["sentence"], p["token"], p["problem"]) for p in tk.broken_sequences(tags)]
    assert found == [
        (1, 0, "B-PER is not closed by E-PER"),
        (2, 1, "E-LOC follows O without an open B-LOC"),
        (3, 0, "I-PER starts the sentence without an open B-PER"),
        (3, 2, "B-LOC is not closed by E-LOC"),
        (4, 0, "B-PER is not closed by E-PER"),
        (4, 2, "I-ORG follows S-LOC without an open B-ORG"),
    ]
    with pytest.raises(ValueError, match="unknown tag scheme 'IOB2'"):
        tk.broken_sequences(tags, scheme="IOB2")


def test_entity_spans_by_scheme():
    bio = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "B-PER", "I-ORG"]
    # a lone I- starts an entity (conlleval); a type change starts a new one
    assert tk.entity_spans(bio, "BIO") == [
        ("PER", 0, 2),
        ("LOC", 3, 4),
        ("LOC", 4, 6),
        ("PER", 6, 7),
        ("ORG", 7, 8),
    ]
    bioes = ["B-PER", "I-PER", "E-PER", "S-LOC", "B-ORG", "O", "I-PER", "E-PER", "B-X", "E-Y"]
    # strict: only B (I)* E and S count
    assert tk.entity_spans(bioes) == [("PER", 0, 3), ("LOC", 3, 4)]
    assert tk.entity_spans(["B-PER", "L-PER", "U-LOC"]) == [("PER", 0, 2), ("LOC", 2, 3)]
    assert tk.entity_spans(["I-PER", "I-PER", "I-LOC", "O", "I-PER"]) == [
        ("PER", 0, 2),
        ("LOC", 2, 3),
        ("PER", 4, 5),
    ]
    assert tk.entity_spans(["PER", "PER", "O", "LOC"]) == [
        ("PER", 0, 1),
        ("PER", 1, 2),
        ("LOC", 3, 4),
    ]
    assert tk.entity_spans(["B-PER", "MISC", "I-PER"], "BIO") == [("PER", 0, 1), ("PER", 2, 3)]
    assert tk.entity_spans([]) == []


def test_entity_scores_hand_computed():
    true = [
        ["B-PER", "I-PER", "O", "B-LOC", "O"],
        ["B-ORG", "O", "B-PER", "I-PER", "O"],
        ["B-LOC", "O"],
    ]
    pred = [
        ["B-PER", "I-PER", "O", "O", "O"],  # PER right, LOC missed
        ["B-LOC", "O", "B-PER", "O", "O"],  # ORG given the wrong type, PER cut short
        ["B-LOC", "O"],  # right
    ]
    scores = tk.entity_scores(true, pred)
    # 5 true entities, 4 predicted, 2 exactly right
    assert (scores["true_entities"], scores["pred_entities"], scores["correct"]) == (5, 4, 2)
    assert scores["precision"] == pytest.approx(2 / 4)
    assert scores["recall"] == pytest.approx(2 / 5)
    assert scores["f1"] == pytest.approx(2 * 0.5 * 0.4 / 0.9)  # 4/9
    assert scores["per_type"] == {
        "LOC": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2},
        "ORG": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "PER": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2},
    }
    assert scores["macro_f1"] == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    assert scores["accuracy"] == pytest.approx(9 / 12)
    assert (scores["tokens"], scores["scheme"]) == (12, "BIO")


def test_entity_scores_edges():
    # a lone I- run matches a B- I- entity (conlleval's reading)
    assert tk.entity_scores([["B-PER", "I-PER"]], [["I-PER", "I-PER"]])["f1"] == 1.0
    nothing = tk.entity_scores([["O", "O"]], [["O", "O"]])
    assert (nothing["precision"], nothing["recall"], nothing["f1"], nothing["macro_f1"]) == (
        0.0,
        0.0,
        0.0,
        0.0,
    )
    assert nothing["accuracy"] == 1.0
    only_false = tk.entity_scores([["O"]], [["B-LOC"]])
    assert only_false["per_type"]["LOC"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 0,
    }
    assert tk.entity_scores([], [])["accuracy"] == 0.0
    with pytest.raises(ValueError, match="sentence 1: 2 true tags but 1 predicted"):
        tk.entity_scores([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="2 true tag sequences but 1 predicted"):
        tk.entity_scores([["O"], ["O"]], [["O"]])


# ---------------------------------------------------------------- alignment with a real tokenizer

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
LABEL_IDS = {tag: i for i, tag in enumerate(LABELS)}


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def test_align_labels_plain():
    word_ids = [None, 0, 0, 1, 2, 2, 2, None, -1]
    assert tk.align_labels(word_ids, [1, 2, 0]) == [-100, 1, -100, 2, 0, -100, -100, -100, -100]
    assert tk.align_labels(word_ids, [1, 2, 0], label_all_subwords=True, continuation={1: 2}) == [
        -100,
        1,
        2,
        2,
        0,
        0,
        0,
        -100,
        -100,
    ]
    with pytest.raises(ValueError, match="word id 2 but only 2 word labels"):
        tk.align_labels(word_ids, [1, 2])


def test_encode_sentences_aligns_first_subwords_and_counts_cut_words(tokenizer):
    words = ["anna", "smith", "visited", "paris"]
    tags = ["B-PER", "I-PER", "O", "B-LOC"]
    pieces = [len(tokenizer.tokenize(w)) for w in words]
    assert min(pieces) > 1  # every word splits into several sub-words with the tiny vocabulary
    sentences = [{"tokens": words, "tags": tags}, {"tokens": ["coffee"], "tags": ["O"]}]

    out = tk.encode_sentences(tokenizer, sentences, LABEL_IDS, max_length=64)
    assert set(out) == {"input_ids", "attention_mask", "labels", "word_ids", "truncated_words"}
    expected_labels, expected_words = [-100], [-1]
    for w, (n, tag) in enumerate(zip(pieces, tags, strict=True)):
        expected_labels += [LABEL_IDS[tag]] + [-100] * (n - 1)
        expected_words += [w] * n
    assert out["labels"][0] == expected_labels + [-100]
    assert out["word_ids"][0] == expected_words + [-1]
    assert out["input_ids"][0][0] == tokenizer.cls_token_id
    assert out["input_ids"][0][-1] == tokenizer.sep_token_id
    assert out["truncated_words"] == [0, 0]
    assert out["labels"][1] == [-100, 0, -100]

    # anna, smith and visited take 4 + 5 + 5 sub-words; max_length 12 leaves 10 beside [CLS]
    # and [SEP]: anna, smith and the first sub-word of visited; paris loses every token
    assert pieces[:3] == [4, 5, 5]
    cut = tk.encode_sentences(tokenizer, sentences, LABEL_IDS, max_length=12)
    assert [len(ids) for ids in cut["input_ids"]] == [12, 3]
    assert cut["truncated_words"] == [1, 0]  # visited keeps one sub-word, so it is not cut
    assert cut["labels"][0] == [-100, 1, -100, -100, -100, 2, -100, -100, -100, -100, 0, -100]
    assert cut["word_ids"][0][-3:] == [1, 2, -1]
    cut = tk.encode_sentences(tokenizer, sentences, LABEL_IDS, max_length=10)
    assert cut["truncated_words"] == [2, 0]  # 8 left: anna and most of smith
    cut = tk.encode_sentences(tokenizer, sentences, LABEL_IDS, max_length=6)
    assert cut["truncated_words"] == [3, 0]

    every = tk.encode_sentences(tokenizer, sentences, LABEL_IDS, 64, label_all_subwords=True)
    assert every["labels"][0][1:5] == [1, 2, 2, 2]  # B-PER continues as I-PER
    assert every["labels"][0][5:10] == [2] * 5


def test_encode_sentences_odd_inputs(tokenizer):
    batch = {"tokens": [["anna", "\u200b", "sings"], []], "tags": [["B-PER", "O", "O"], []]}
    out = tk.encode_sentences(tokenizer, batch, LABEL_IDS, max_length=32)
    assert 1 not in out["word_ids"][0]  # a word the tokenizer drops entirely
    assert out["truncated_words"] == [0, 0]
    assert out["labels"][1] == [-100, -100]
    preds = tk.word_predictions(out["word_ids"][0], out["labels"][0], 3)
    assert preds[:2] == [1, -1]

    from datasets import Dataset

    stored = Dataset.from_dict(out)  # every column is a plain int list (no None word ids)
    assert stored[0]["word_ids"] == out["word_ids"][0]
    with pytest.raises(ValueError, match="batch columns tokens, tags differ in length"):
        tk.encode_sentences(tokenizer, {"tokens": [["a"]], "tags": []}, LABEL_IDS, 16)

    unlabelled = tk.encode_sentences(tokenizer, [{"tokens": ["anna"]}], LABEL_IDS, 16)
    assert set(unlabelled["labels"][0]) == {-100}
    assert tk.encode_sentences(tokenizer, [], LABEL_IDS, 16)["input_ids"] == []

    with pytest.raises(ValueError, match="sentence 0: tag 'B-ORG' is not one of the labels"):
        tk.encode_sentences(tokenizer, [{"tokens": ["a"], "tags": ["B-ORG"]}], LABEL_IDS, 16)
    with pytest.raises(ValueError, match="sentence 1: 1 tokens but 2 tags"):
        tk.encode_sentences(
            tokenizer,
            [{"tokens": ["a"], "tags": ["O"]}, {"tokens": ["a"], "tags": ["O", "O"]}],
            LABEL_IDS,
            16,
        )
    with pytest.raises(ValueError, match="max_length must be an integer above 2"):
        tk.encode_sentences(tokenizer, [{"tokens": ["a"], "tags": ["O"]}], LABEL_IDS, 2)

    class SlowTokenizer:
        is_fast = False

    with pytest.raises(ValueError, match=r"slow .*tokenizer.*needs a fast one"):
        tk.encode_sentences(SlowTokenizer(), [{"tokens": ["a"], "tags": ["O"]}], LABEL_IDS, 16)


def test_word_predictions_round_trip(tokenizer):
    rng = random.Random(3)
    sentences = [
        {"tokens": s.split(), "tags": [rng.choice(LABELS) for _ in s.split()]}
        for s in ("anna smith visited paris today", "coffee", "the train leaves at noon")
    ]
    out = tk.encode_sentences(tokenizer, sentences, LABEL_IDS, max_length=12)
    for i, sentence in enumerate(sentences):
        # the "model" predicts the true label on first sub-words and junk elsewhere, plus padding
        token_preds = [7 if label == -100 else label for label in out["labels"][i]] + [7, 7]
        n = len(sentence["tokens"])
        words = tk.word_predictions(out["word_ids"][i], token_preds, n)
        kept = n - out["truncated_words"][i]
        assert words[:kept] == [LABEL_IDS[t] for t in sentence["tags"][:kept]]
        assert words[kept:] == [-1] * out["truncated_words"][i]
    assert out["truncated_words"] == [2, 0, 0]
    assert tk.word_predictions([None, 1, 0, 0, -1], [9, 4, 3, 8, 9], 3) == [3, 4, -1]
    with pytest.raises(ValueError, match="word id 3 at position 1 but only 3 words"):
        tk.word_predictions([None, 3], [0, 0], 3)
    with pytest.raises(ValueError, match="3 word ids but only 2 predictions"):
        tk.word_predictions([None, 0, 1], [0, 0], 2)


# ---------------------------------------------------------------- profile


def test_token_profile_numbers():
    sentences = [
        {"tokens": ["a", "b", "c"], "tags": ["B-PER", "I-PER", "O"]},
        {"tokens": ["x"], "tags": ["I-LOC"]},  # broken: I- after nothing
        {"tokens": [], "tags": []},
        {"tokens": ["a", "b", "c"], "tags": ["B-PER", "I-PER", "O"]},  # duplicate
        {"tokens": ["a", "b", "c"], "tags": ["O", "O", "O"]},  # duplicate, tagged differently
        {"tokens": ["d", "e", "f", "g", "h"], "tags": ["B-LOC", "I-LOC", "O", "B-PER", "O"]},
    ]
    assert tk.token_profile(sentences) == {
        "sentences": 6,
        "tokens": 15,
        "tokens_per_sentence": {"min": 0, "median": 3, "p95": 5, "max": 5},
        "tag_counts": {"O": 7, "B-PER": 3, "I-PER": 2, "I-LOC": 2, "B-LOC": 1},
        "entity_counts": {"PER": 3, "LOC": 2},
        "scheme": "BIO",
        "broken_sequences": 1,
        "empty_sentences": 1,
        "duplicate_sentences": 2,
        "conflicting_duplicates": 1,
    }
    lengths = [{"tokens": ["w"] * n, "tags": ["O"] * n} for n in range(1, 41)]
    assert tk.token_profile(lengths)["tokens_per_sentence"] == {
        "min": 1,
        "median": 20.5,
        "p95": 38,
        "max": 40,
    }
    assert tk.token_profile([])["tokens_per_sentence"]["max"] == 0


# ---------------------------------------------------------------- a tiny model learns to tag

FIRST = ["anna", "mark", "lisa", "tom", "sara"]
LAST = ["smith", "brown", "green"]
PLACES = [["paris"], ["berlin"], ["rome"], ["oslo"], ["new", "york"], ["hong", "kong"]]
TEMPLATES = [
    "{per} moved to {loc} today",
    "the meeting with {per} is in {loc}",
    "{loc} weather was fun",
    "my team met {per} at noon",
    "{per} was happy",
]


def synthetic_sentences(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        words, tags = [], []
        for part in rng.choice(TEMPLATES).split():
            if part == "{per}":
                name = [rng.choice(FIRST)] + ([rng.choice(LAST)] if rng.random() < 0.5 else [])
                words += name
                tags += ["B-PER"] + ["I-PER"] * (len(name) - 1)
            elif part == "{loc}":
                place = rng.choice(PLACES)
                words += place
                tags += ["B-LOC"] + ["I-LOC"] * (len(place) - 1)
            else:
                words.append(part)
                tags.append("O")
        sentences.append({"tokens": words, "tags": tags})
    return sentences


def test_tiny_bert_learns_to_tag_names_and_places(tiny_model, tokenizer):
    import torch
    from transformers import AutoModelForTokenClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    sentences = synthetic_sentences(40)
    assert tk.broken_sequences(sentences) == []
    assert tk.token_profile(sentences)["entity_counts"]["PER"] >= 20

    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(
        tiny_model,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id=LABEL_IDS,
    )
    enc = tk.encode_sentences(tokenizer, sentences, LABEL_IDS, max_length=48)
    assert sum(enc["truncated_words"]) == 0
    width = max(len(ids) for ids in enc["input_ids"])

    def padded(key: str, fill: int) -> torch.Tensor:
        return torch.tensor([row + [fill] * (width - len(row)) for row in enc[key]])

    batch = {
        "input_ids": padded("input_ids", tokenizer.pad_token_id),
        "attention_mask": padded("attention_mask", 0),
        "labels": padded("labels", -100),
    }

    def entity_f1() -> float:
        model.eval()
        with torch.no_grad():
            token_preds = model(**batch).logits.argmax(-1).tolist()
        model.train()
        predicted = []
        for i, sentence in enumerate(sentences):
            ids = tk.word_predictions(enc["word_ids"][i], token_preds[i], len(sentence["tokens"]))
            predicted.append([LABELS[p] if p >= 0 else "O" for p in ids])
        return tk.entity_scores([s["tags"] for s in sentences], predicted)["f1"]

    f1_before = entity_f1()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    model.train()
    for _ in range(40):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    f1_after = entity_f1()

    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses
    assert f1_after > f1_before + 0.3, (f1_before, f1_after)
