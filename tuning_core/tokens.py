"""Token classification (NER) building blocks: reading, checking, encoding and scoring tags.

Owns the word-level side of token classification: reading CoNLL and JSON-lines files into
`{"tokens": [...], "tags": [...]}` sentences, telling the tag scheme (BIO, BIOES, IO, plain),
listing broken tag sequences, extracting entity spans, entity-level scores, aligning word labels
to sub-word tokens and back, and a profile of the sentences.

Standalone on purpose: only the standard library is imported at module level and nothing from
tunesmith, so the file can sit beside (or inside) an exported training script. A tokenizer is
passed in by the caller; nothing here imports torch, transformers or datasets.

Conventions:
- Tags are strings. "O" is outside; a prefixed tag is one letter, a hyphen and the entity type
  ("B-PER"). BILOU's L- and U- are read as BIOES's E- and S-.
- Word ids use -1 (not None) wherever they are stored, so rows fit in a `datasets.Dataset`.
- A word that keeps no sub-word token (cut by truncation, or dropped by the tokenizer) gets the
  prediction -1 from `word_predictions`; the caller decides what it counts as (usually "O").
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

IGNORE_INDEX = -100  # label id the loss skips (special tokens, later sub-words)
OUTSIDE = "O"
SCHEMES = ("BIO", "BIOES", "IO", "plain")
TOKEN_KEYS = ("tokens", "words")
TAG_KEYS = ("tags", "ner_tags", "labels")
NAME_KEYS = ("tag_names", "label_names", "id2label")
DOCSTART = "-DOCSTART-"

_PREFIXED = re.compile(r"([A-Za-z])-(.+)")
_ALIASES = {"L": "E", "U": "S"}  # BILOU -> BIOES
_ALLOWED = {"BIO": {"B", "I"}, "IO": {"I"}, "BIOES": {"B", "I", "E", "S"}}
_COLUMNS = re.compile(r"[ \t]+")
# what a tag column looks like: O, a prefixed tag, a short label (PER, NN, PRP$) or punctuation
_TAG_LIKE = re.compile(r"O|[BIESLU]-\S{1,40}|[A-Za-z][\w$.:-]{0,15}|[^\w\s,;]{1,3}")


# ---------------------------------------------------------------- reading


def _read_text(path: Path, encoding: str | None) -> str:
    data = path.read_bytes()
    try:
        return data.decode(encoding or "utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ValueError(
            f"{path}, line {line}: not valid {encoding or 'UTF-8'} text "
            "(pass the file's encoding, e.g. encoding='latin-1')"
        ) from None
    except LookupError:
        raise ValueError(f"{path}: unknown text encoding {encoding!r}") from None


def read_conll(path: str | Path, encoding: str | None = None) -> list[dict]:
    """Sentences from a CoNLL-style file: token in the first column, tag in the last.

    Columns are separated by spaces or tabs, so 2-column files and 4-column CoNLL-2003 both
    work. Blank lines end sentences; `-DOCSTART-` lines are skipped. `encoding=None` reads
    UTF-8 (with or without a BOM). Raises ValueError naming the file and line for a line with
    a single column, for undecodable text, and for a file without sentences.
    """
    path = Path(path)
    sentences: list[dict] = []
    tokens: list[str] = []
    tags: list[str] = []

    def flush() -> None:
        if tokens:
            sentences.append({"tokens": list(tokens), "tags": list(tags)})
            tokens.clear()
            tags.clear()

    for number, line in enumerate(_read_text(path, encoding).splitlines(), start=1):
        if not line.strip():
            flush()
            continue
        columns = _COLUMNS.split(line.strip(" \t\r\n"))
        if columns[0] == DOCSTART:
            flush()
            continue
        if len(columns) < 2:
            raise ValueError(
                f"{path}, line {number}: expected a token and a tag separated by spaces or a "
                f"tab, found one column {line.strip()!r}"
            )
        tokens.append(columns[0])
        tags.append(columns[-1])
    flush()
    if not sentences:
        raise ValueError(f"{path}: no sentences found (expected one token and its tag a line)")
    return sentences


def _names_from(row: Mapping, path: Path, number: int) -> dict[int, str] | None:
    """The id -> tag name table a JSON object gives (`tag_names`, `label_names`, `id2label`)."""
    key = next((k for k in NAME_KEYS if k in row), None)
    if key is None:
        return None
    raw = row[key]
    where = f"{path}, line {number}"
    if isinstance(raw, list):
        items = list(enumerate(raw))
    elif isinstance(raw, dict):
        items = []
        for k, v in raw.items():
            try:
                items.append((int(k), v))
            except ValueError:
                raise ValueError(f"{where}: '{key}' key {k!r} is not a tag id") from None
    else:
        raise ValueError(f"{where}: '{key}' must be a list of tag names or an id -> name object")
    if not all(isinstance(v, str) and v for _, v in items):
        raise ValueError(f"{where}: '{key}' must hold non-empty tag names (strings)")
    return dict(items)


def read_token_jsonl(path: str | Path) -> list[dict]:
    """Sentences from JSON lines, each with a token list and a tag list of the same length.

    Tokens come from `tokens` or `words`, tags from `tags`, `ner_tags` or `labels`. Tags are
    names ("B-PER"); integer tags are accepted only with names to map them: a `tag_names`
    (or `label_names`, `id2label`) list or id -> name object on the row itself, or on a line of
    its own that holds only the names and applies to the rows after it. Blank lines are
    skipped. Raises ValueError naming the file and line for anything else.
    """
    path = Path(path)
    file_names: dict[int, str] | None = None
    sentences = []
    for number, line in enumerate(_read_text(path, None).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not valid JSON ({err.msg}, column {err.colno})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object, found {type(row).__name__}")
        names = _names_from(row, path, number)
        token_key = next((k for k in TOKEN_KEYS if k in row), None)
        tag_key = next((k for k in TAG_KEYS if k in row), None)
        if token_key is None and tag_key is None and names is not None:
            file_names = names  # a names-only line: applies to the rows that follow
            continue
        if token_key is None:
            raise ValueError(f"{where}: no token list (expected a 'tokens' or 'words' key)")
        if tag_key is None:
            raise ValueError(
                f"{where}: no tag list (expected a 'tags', 'ner_tags' or 'labels' key)"
            )
        tokens, tags = row[token_key], row[tag_key]
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError(f"{where}: '{token_key}' must be a list of strings")
        if not isinstance(tags, list):
            raise ValueError(f"{where}: '{tag_key}' must be a list")
        if len(tokens) != len(tags):
            raise ValueError(
                f"{where}: {len(tokens)} tokens but {len(tags)} tags (they must pair up)"
            )
        names = names if names is not None else file_names
        named = []
        for tag in tags:
            if isinstance(tag, str) and tag:
                named.append(tag)
            elif isinstance(tag, int) and not isinstance(tag, bool):
                if names is None:
                    raise ValueError(
                        f"{where}: tags must be names such as 'B-PER', found the number {tag} "
                        "(or give the names in a 'tag_names' list)"
                    )
                if tag not in names:
                    raise ValueError(f"{where}: tag id {tag} has no name in the tag names given")
                named.append(names[tag])
            else:
                raise ValueError(f"{where}: tags must be names such as 'B-PER', found {tag!r}")
        sentences.append({"tokens": tokens, "tags": named})
    if not sentences:
        raise ValueError(f"{path}: no sentences found (expected one JSON object a line)")
    return sentences


def looks_like_conll(text_sample: str) -> bool:
    """Whether a text sample looks like a CoNLL token-per-line file (a loader heuristic).

    True when at least two groups of lines are separated by blank lines, at least 90% of the
    non-blank lines have 2+ columns whose last column looks like a tag (O, B-X, I-X, E-X,
    S-X, or a short label), 90% of them have the same number of columns (at most 12), and
    the tags repeat (few distinct values). A last line without a newline is ignored, since a
    sample may end mid-line.
    """
    lines = text_sample.splitlines()
    if len(lines) > 1 and not text_sample.endswith(("\n", "\r")):
        lines = lines[:-1]
    rows: list[list[str]] = []
    groups = 0
    in_group = False
    for line in lines:
        if not line.strip():
            in_group = False
            continue
        columns = _COLUMNS.split(line.strip(" \t\r\n"))
        if columns[0] == DOCSTART:
            in_group = False
            continue
        if not in_group:
            groups += 1
            in_group = True
        rows.append(columns)
    if groups < 2 or len(rows) < 3 or rows[0][0].startswith(("{", "[")):
        return False
    tagged = [c[-1] for c in rows if len(c) >= 2 and _TAG_LIKE.fullmatch(c[-1])]
    if len(tagged) < 0.9 * len(rows):
        return False
    width, count = Counter(len(c) for c in rows).most_common(1)[0]
    if width > 12 or count < 0.9 * len(rows):
        return False
    return len(set(tagged)) <= max(20, len(tagged) // 3)


# ---------------------------------------------------------------- schemes and spans


def _split_tag(tag: str) -> tuple[str, str]:
    """(prefix, type): ("O", "") for outside, ("", tag) for a tag without a prefix."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    match = _PREFIXED.fullmatch(tag)
    if match is None:
        return "", tag
    prefix = match.group(1)
    return _ALIASES.get(prefix, prefix), match.group(2)


def _flat(tags_iterable: Iterable) -> Iterable[str]:
    for item in tags_iterable:
        if isinstance(item, str):
            yield item
        else:
            yield from item


def tag_scheme(tags_iterable: Iterable) -> str:
    """BIOES if any E-/S- (or L-/U-) tags, BIO if B-/I-, IO if only I- and O, else plain.

    Takes tags, or tag lists (one per sentence). "plain" means tags without prefixes, each
    token its own class; all-"O" data is "plain" too.
    """
    prefixes = {_split_tag(tag)[0] for tag in _flat(tags_iterable)}
    if prefixes & {"E", "S"}:
        return "BIOES"
    if "B" in prefixes:
        return "BIO"
    if "I" in prefixes:
        return "IO"
    return "plain"


def _check_scheme(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r} (expected one of {', '.join(SCHEMES)})")
    return scheme


def _tags_of(sentence: Any) -> Sequence[str]:
    return sentence["tags"] if isinstance(sentence, Mapping) else sentence


def entity_spans(tags: Sequence[str], scheme: str | None = None) -> list[tuple[str, int, int]]:
    """Entities in one tag sequence as (type, start, end_exclusive), read strictly.

    BIO and IO: B-X starts an entity, I-X continues an entity of type X and otherwise starts a
    new one (a lone I-X is an entity, as conlleval reads it). BIOES: only well-formed
    B-X (I-X)* E-X and S-X count; broken pieces give no entity. plain: every non-"O" token is
    an entity of its own. Tags that do not fit the scheme end an entity like "O". Pass the
    scheme of the whole data set: `scheme=None` detects it from this one sequence.
    """
    scheme = _check_scheme(scheme or tag_scheme(tags))
    spans: list[tuple[str, int, int]] = []
    if scheme == "plain":
        return [(tag, j, j + 1) for j, tag in enumerate(tags) if tag != OUTSIDE]
    allowed = _ALLOWED[scheme] | ({"B"} if scheme == "IO" else set())
    open_type: str | None = None
    start = 0
    for j, tag in enumerate(tags):
        prefix, kind = _split_tag(tag)
        if prefix not in allowed:
            prefix = OUTSIDE
        if scheme == "BIOES":
            if prefix == "S":
                spans.append((kind, j, j + 1))
                open_type = None
            elif prefix == "B":
                open_type, start = kind, j
            elif prefix == "E" and open_type == kind:
                spans.append((kind, start, j + 1))
                open_type = None
            elif not (prefix == "I" and open_type == kind):
                open_type = None  # O, or a piece that breaks the entity: nothing counts
            continue
        if prefix == "I" and open_type == kind:
            continue
        if open_type is not None:
            spans.append((open_type, start, j))
            open_type = None
        if prefix in ("B", "I"):
            open_type, start = kind, j
    if scheme != "BIOES" and open_type is not None:
        spans.append((open_type, start, len(tags)))
    return spans


# ---------------------------------------------------------------- broken sequences


def _sentence_problems(tags: Sequence[str], scheme: str) -> list[tuple[int, str]]:
    """(token index, problem) for each broken spot in one sentence."""
    if scheme == "plain":
        return []
    allowed = _ALLOWED[scheme]
    letters = "/".join(sorted(allowed))
    problems: list[tuple[int, str]] = []
    open_type: str | None = None  # the entity running up to the previous token
    start = 0
    open_reported = False  # the open entity started with an already reported lone I-

    def follows(j: int, tag: str, kind: str) -> str:
        text = f"{tag} follows {tags[j - 1]}" if j else f"{tag} starts the sentence"
        return f"{text} without an open B-{kind}" if scheme == "BIOES" else text

    for j, tag in enumerate(tags):
        prefix, kind = _split_tag(tag)
        if prefix == OUTSIDE:
            unfit = None
        elif prefix == "":
            unfit = f"{tag} has no {letters}- prefix"
        elif prefix not in allowed:
            unfit = f"{tag} has the prefix {tag[0]}-, which {scheme} does not use"
        else:
            unfit = None
        continues = prefix in ("I", "E") and open_type == kind and unfit is None
        if scheme == "BIOES" and open_type is not None and not continues:
            if not open_reported:
                problems.append((start, f"{tags[start]} is not closed by E-{open_type}"))
            open_type = None
        if unfit:
            problems.append((j, unfit))
            open_type = None
        elif prefix == OUTSIDE:
            open_type = None
        elif scheme == "IO":
            continue
        elif prefix == "B":
            open_type, start, open_reported = kind, j, False
        elif prefix == "S":
            open_type = None
        elif prefix == "I" and not continues:
            problems.append((j, follows(j, tag, kind)))
            open_type, start, open_reported = kind, j, True
        elif prefix == "E":
            if not continues:
                problems.append((j, follows(j, tag, kind)))
            open_type = None
    if scheme == "BIOES" and open_type is not None and not open_reported:
        problems.append((start, f"{tags[start]} is not closed by E-{open_type}"))
    return sorted(problems, key=lambda p: p[0])


def broken_sequences(
    sentences: Sequence, scheme: str | None = None, most: int | None = 50
) -> list[dict]:
    """Broken spots in the tag sequences, at most `most` of them (None: all).

    Each is `{"sentence": i, "token": j, "tag": tag, "word": token or None, "problem": text}`.
    BIO: an I-X that does not follow B-X or I-X ("I-PER follows O"). BIOES: also I-X or E-X
    without an open B-X, and a B-X (or I-X run) not closed by E-X (reported at its start).
    Any scheme: tags with a prefix the scheme does not use, or none. `sentences` are dicts
    with "tags" (and "tokens") or plain tag lists; `scheme=None` detects it from all of them.
    """
    scheme = _check_scheme(scheme or tag_scheme(_tags_of(s) for s in sentences))
    found: list[dict] = []
    for i, sentence in enumerate(sentences):
        tags = _tags_of(sentence)
        words = sentence.get("tokens") if isinstance(sentence, Mapping) else None
        for j, problem in _sentence_problems(tags, scheme):
            if most is not None and len(found) >= most:
                return found
            word = words[j] if words is not None and j < len(words) else None
            found.append(
                {"sentence": i, "token": j, "tag": tags[j], "word": word, "problem": problem}
            )
    return found


# ---------------------------------------------------------------- scores


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def _prf(correct: int, predicted: int, true: int) -> tuple[float, float, float]:
    precision, recall = _ratio(correct, predicted), _ratio(correct, true)
    return precision, recall, _ratio(2 * precision * recall, precision + recall)


def entity_scores(
    true_tag_seqs: Sequence[Sequence[str]],
    pred_tag_seqs: Sequence[Sequence[str]],
    scheme: str | None = None,
) -> dict:
    """Entity-level scores: an entity counts only with its exact type and boundaries.

    Returns micro `precision`, `recall`, `f1`; `macro_f1` over the types seen in the true or
    the predicted tags; `per_type` {type: {precision, recall, f1, support}} (support: true
    entities); token `accuracy`; the counts `true_entities`, `pred_entities`, `correct`,
    `tokens`; and the `scheme` used (detected from both sides when None). A zero division
    gives 0.0; nothing is rounded.
    """
    if len(true_tag_seqs) != len(pred_tag_seqs):
        raise ValueError(
            f"{len(true_tag_seqs)} true tag sequences but {len(pred_tag_seqs)} predicted ones"
        )
    for i, (true, pred) in enumerate(zip(true_tag_seqs, pred_tag_seqs, strict=True)):
        if len(true) != len(pred):
            raise ValueError(f"sentence {i}: {len(true)} true tags but {len(pred)} predicted")
    scheme = _check_scheme(scheme or tag_scheme([*true_tag_seqs, *pred_tag_seqs]))
    true_spans, pred_spans = set(), set()
    tokens = same = 0
    for i, (true, pred) in enumerate(zip(true_tag_seqs, pred_tag_seqs, strict=True)):
        true_spans.update((i, *span) for span in entity_spans(true, scheme))
        pred_spans.update((i, *span) for span in entity_spans(pred, scheme))
        tokens += len(true)
        same += sum(t == p for t, p in zip(true, pred, strict=True))
    correct = true_spans & pred_spans
    by_type: dict[str, list[int]] = {}  # type -> [correct, predicted, true]
    for index, spans in enumerate((correct, pred_spans, true_spans)):
        for span in spans:
            by_type.setdefault(span[1], [0, 0, 0])[index] += 1
    per_type = {}
    for kind in sorted(by_type):
        hit, predicted, true = by_type[kind]
        precision, recall, f1 = _prf(hit, predicted, true)
        per_type[kind] = {"precision": precision, "recall": recall, "f1": f1, "support": true}
    precision, recall, f1 = _prf(len(correct), len(pred_spans), len(true_spans))
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "macro_f1": _ratio(sum(s["f1"] for s in per_type.values()), len(per_type)),
        "accuracy": _ratio(same, tokens),
        "per_type": per_type,
        "true_entities": len(true_spans),
        "pred_entities": len(pred_spans),
        "correct": len(correct),
        "tokens": tokens,
        "scheme": scheme,
    }


# ---------------------------------------------------------------- sub-word alignment


def align_labels(
    word_ids: Sequence[int | None],
    word_label_ids: Sequence[int],
    label_all_subwords: bool = False,
    continuation: Mapping[int, int] | None = None,
) -> list[int]:
    """One label id per sub-word token from one label id per word.

    Special tokens (word id None or -1) get -100, as do a word's sub-words after its first
    unless `label_all_subwords`; then they get the word's label, mapped through
    `continuation` when given (e.g. the id of B-PER -> the id of I-PER).
    """
    labels = []
    previous = None
    for word in word_ids:
        if word is None or word < 0:
            labels.append(IGNORE_INDEX)
            previous = None
            continue
        if word >= len(word_label_ids):
            raise ValueError(f"word id {word} but only {len(word_label_ids)} word labels given")
        label = word_label_ids[word]
        if word == previous:
            if not label_all_subwords:
                label = IGNORE_INDEX
            elif continuation:
                label = continuation.get(label, label)
        labels.append(label)
        previous = word
    return labels


def _sentence_rows(sentences: Any) -> list[Mapping]:
    if isinstance(sentences, Mapping):  # a datasets batch: {"tokens": [...], "tags": [...]}
        keys = list(sentences)
        columns = [list(sentences[k]) for k in keys]
        if len({len(c) for c in columns}) > 1:
            raise ValueError(f"the batch columns {', '.join(keys)} differ in length")
        return [dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)]
    return list(sentences)


def encode_sentences(
    tokenizer: Any,
    sentences: Any,
    label_ids: Mapping[str, int],
    max_length: int,
    label_all_subwords: bool = False,
) -> dict[str, list]:
    """Tokenise word-split sentences and align their tags to the sub-word tokens.

    `sentences`: dicts with "tokens" and "tags" (a sentence without "tags" gets all -100
    labels), or a datasets batch of those columns. Returns lists, one entry per sentence:
    `input_ids`, `attention_mask`, `labels` (label ids on each word's first sub-word, -100
    elsewhere), `word_ids` (-1 for special tokens) and `truncated_words` (words left without
    any token because the row hit `max_length`). Needs a fast tokenizer, for its word ids.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"{type(tokenizer).__name__} is a slow (Python) tokenizer; token classification "
            "needs a fast one (tokenizer.json), which maps sub-words back to words"
        )
    specials = tokenizer.num_special_tokens_to_add()
    if not isinstance(max_length, int) or max_length <= specials:
        raise ValueError(f"max_length must be an integer above {specials}, got {max_length!r}")
    rows = _sentence_rows(sentences)
    out: dict[str, list] = {
        "input_ids": [],
        "attention_mask": [],
        "labels": [],
        "word_ids": [],
        "truncated_words": [],
    }
    if not rows:
        return out
    words, word_labels = [], []
    for i, row in enumerate(rows):
        tokens = row.get("tokens")
        if not isinstance(tokens, list | tuple) or not all(isinstance(t, str) for t in tokens):
            raise ValueError(f"sentence {i}: 'tokens' must be a list of strings")
        tags = row.get("tags")
        if tags is None:
            word_labels.append([IGNORE_INDEX] * len(tokens))
        elif len(tags) != len(tokens):
            raise ValueError(f"sentence {i}: {len(tokens)} tokens but {len(tags)} tags")
        else:
            unknown = [tag for tag in tags if tag not in label_ids]
            if unknown:
                known = ", ".join(list(label_ids)[:12])
                raise ValueError(
                    f"sentence {i}: tag {unknown[0]!r} is not one of the labels ({known})"
                )
            word_labels.append([label_ids[tag] for tag in tags])
        words.append(list(tokens))
    continuation = {}
    for tag, index in label_ids.items():
        prefix, kind = _split_tag(tag)
        if prefix == "B" and f"I-{kind}" in label_ids:
            continuation[index] = label_ids[f"I-{kind}"]
    encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
    for i in range(len(words)):
        ids = [-1 if w is None else w for w in encoded.word_ids(i)]
        last = max(ids, default=-1)
        cut = len(words[i]) - (last + 1) if len(ids) >= max_length else 0
        out["input_ids"].append(list(encoded["input_ids"][i]))
        out["attention_mask"].append(list(encoded["attention_mask"][i]))
        out["labels"].append(
            align_labels(ids, word_labels[i], label_all_subwords, continuation=continuation)
        )
        out["word_ids"].append(ids)
        out["truncated_words"].append(cut)
    return out


def word_predictions(
    word_ids_row: Sequence[int | None], token_pred_ids_row: Sequence[int], n_words: int
) -> list[int]:
    """One predicted label id per word: the prediction on the word's first sub-word.

    A word without any sub-word (cut by truncation, or dropped by the tokenizer) gets -1; the
    caller decides what it counts as (usually the id of "O"). `token_pred_ids_row` may be
    longer than the word ids (padding); word ids None or -1 are special tokens or padding.
    """
    predictions = [-1] * n_words
    for position, word in enumerate(word_ids_row):
        if word is None or word < 0:
            continue
        if word >= n_words:
            raise ValueError(f"word id {word} at position {position} but only {n_words} words")
        if position >= len(token_pred_ids_row):
            raise ValueError(
                f"{len(word_ids_row)} word ids but only {len(token_pred_ids_row)} predictions"
            )
        if predictions[word] == -1:
            predictions[word] = int(token_pred_ids_row[position])
    return predictions


# ---------------------------------------------------------------- profile


def token_profile(sentences: Sequence[Mapping]) -> dict:
    """Numbers about tagged sentences (dicts with "tokens" and "tags").

    `sentences`, `tokens`, `tokens_per_sentence` {min, median, p95 (nearest rank), max},
    `tag_counts` and `entity_counts` (entities per type, from the spans), most frequent first,
    the `scheme`, `broken_sequences` (all of them), `empty_sentences`, `duplicate_sentences`
    (non-empty sentences whose tokens repeat an earlier one) and `conflicting_duplicates`
    (those of them tagged differently from the first).
    """
    sentences = list(sentences)
    lengths = sorted(len(s["tokens"]) for s in sentences)
    scheme = tag_scheme(s["tags"] for s in sentences)
    tag_counts: Counter[str] = Counter()
    entity_counts: Counter[str] = Counter()
    first_tags: dict[tuple[str, ...], tuple[str, ...]] = {}
    duplicates = conflicting = broken = 0
    for s in sentences:
        tag_counts.update(s["tags"])
        entity_counts.update(kind for kind, _, _ in entity_spans(s["tags"], scheme))
        broken += len(_sentence_problems(s["tags"], scheme))
        key = tuple(s["tokens"])
        if not key:
            continue
        if key in first_tags:
            duplicates += 1
            conflicting += first_tags[key] != tuple(s["tags"])
        else:
            first_tags[key] = tuple(s["tags"])
    if lengths:
        rank = max(1, math.ceil(0.95 * len(lengths)))
        per_sentence = {
            "min": lengths[0],
            "median": statistics.median(lengths),
            "p95": lengths[rank - 1],
            "max": lengths[-1],
        }
    else:
        per_sentence = {"min": 0, "median": 0, "p95": 0, "max": 0}
    return {
        "sentences": len(sentences),
        "tokens": sum(lengths),
        "tokens_per_sentence": per_sentence,
        "tag_counts": dict(tag_counts.most_common()),
        "entity_counts": dict(entity_counts.most_common()),
        "scheme": scheme,
        "broken_sequences": broken,
        "empty_sentences": sum(1 for n in lengths if n == 0),
        "duplicate_sentences": duplicates,
        "conflicting_duplicates": conflicting,
    }
