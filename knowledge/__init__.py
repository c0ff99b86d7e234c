"""What the planner knows, as data: the model catalogue and the technique notes.

This package owns two TOML files and the small amount of code that reads them:

* ``models.toml`` -- the model catalogue, one ``[[model]]`` table per pretrained model
  that tunesmith knows how to fine-tune: encoders for classification, and small decoder
  LLMs for later instruction tuning (kind, size, depth, width, longest input, languages,
  domain, licence, architecture, LoRA target modules, and where the facts come from).
* ``notes.toml`` -- the technique notes, one ``[[note]]`` table per rule the recommender
  applies, each with a short explanation and its source (a paper, or a measurement in
  BASELINES.md).

It does loading, validation and plain filtering (``models_by``) only. Which model or
technique to pick for a given data profile is decided by the recommendation rules in
``tuning_core``, not here.

Field conventions in the catalogue:

* ``kind`` is ``"encoder"`` (a bidirectional model fine-tuned with a task head) or
  ``"decoder"`` (a causal LM). Every catalogue entry states it; the dataclass defaults it
  to ``"encoder"`` only so that cards built in code for unknown models keep working.
* ``params_m`` counts the bare model's parameters (embeddings included, no task or LM
  head), in millions. For decoders with tied embeddings that is the whole checkpoint.
* ``max_positions`` is the longest input, in tokens including special tokens, the model
  accepts: for encoders its tokenizer's ``model_max_length`` (for the RoBERTa family two
  less than ``config.max_position_embeddings``, since two position slots are reserved);
  for decoders the context length of the checkpoint (``config.max_position_embeddings``).
* ``architecture`` is the transformers ``model_type``; ``lora_targets`` are the names of
  ``nn.Linear`` modules in that architecture's transformers implementation: the query and
  value projections for encoders, every attention and MLP projection for decoders.

Only the standard library is imported, so importing this package stays cheap and never
pulls in torch, transformers or textual.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "DOMAINS",
    "EMBEDDED_MODEL_ID",
    "KINDS",
    "REQUIRED_NOTE_IDS",
    "KnowledgeError",
    "ModelCard",
    "Note",
    "get_model",
    "get_note",
    "load_catalogue",
    "load_notes",
    "models_by",
    "validate_catalogue",
    "validate_notes",
]

EMBEDDED_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"

DOMAINS = frozenset({"general", "tweets", "biomedical", "legal", "finance", "code"})

# Encoders take a task head (classification, tagging); decoders are causal LMs.
KINDS = frozenset({"encoder", "decoder"})

# The note ids the recommender cites; load_notes() fails if any is missing.
REQUIRED_NOTE_IDS: tuple[str, ...] = (
    "embedded-default-model",
    "max-length-p99",
    "dynamic-padding",
    "full-finetune-default",
    "head-only-small-data",
    "lora-large-model",
    "freeze-bottom-layers",
    "trainer-defaults-lr-batch",
    "weight-decay-zero",
    "dropout-pretrained",
    "label-smoothing-conflicts",
    "early-stopping",
    "metric-macro-f1",
    "metric-accuracy",
    "seed-variance",
    "lora-rank",
)

# Hub organisations that the legacy un-namespaced checkpoints moved to
# ("bert-base-uncased" is now "google-bert/bert-base-uncased"); get_model() treats the
# two spellings as the same model.
_LEGACY_ORGS = frozenset({"google-bert", "facebookai", "distilbert"})

_MODELS_FILE = "models.toml"
_NOTES_FILE = "notes.toml"


@dataclass(frozen=True)
class ModelCard:
    """One pretrained model in the catalogue.

    ``kind`` defaults to ``"encoder"`` so that code building a card for a model outside the
    catalogue (``tuning_core.recommend.model_facts``) need not name it; ``models.toml``
    entries must state it all the same (``validate_catalogue`` rejects an entry without).
    """

    id: str
    params_m: float
    layers: int
    hidden: int
    max_positions: int
    languages: tuple[str, ...]
    domain: str
    licence: str
    architecture: str
    lora_targets: tuple[str, ...]
    embedded: bool
    source: str
    summary: str
    kind: str = "encoder"
    # how the model was trained to pool a text into one vector: "mean" for sentence-embedding
    # models (the mean of the token vectors); "default" for the rest (the architecture's own
    # head, e.g. BERT's [CLS] through its pooler). Optional in models.toml.
    pooling: str = "default"


@dataclass(frozen=True)
class Note:
    """One technique note: a rule the recommender applies, with its source."""

    id: str
    title: str
    text: str
    source: str


class KnowledgeError(ValueError):
    """The knowledge files are malformed. The message lists every problem found."""

    def __init__(self, what: str, problems: list[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{what}: {count} problem{'s' if count != 1 else ''} found"
        super().__init__("\n  - ".join([head, *self.problems]))


# --------------------------------------------------------------------------- validation

_INT_FIELDS = ("layers", "hidden", "max_positions")
_STR_FIELDS = ("id", "kind", "domain", "licence", "architecture", "source", "summary")
_STR_TUPLE_FIELDS = ("languages", "lora_targets")
_MODEL_FIELDS = tuple(f.name for f in fields(ModelCard))
_OPTIONAL_MODEL_FIELDS = {"pooling": "default"}
POOLINGS = frozenset({"default", "mean"})
_NOTE_FIELDS = tuple(f.name for f in fields(Note))


def _entries(raw: Any, key: str, problems: list[str]) -> list[Any]:
    if not isinstance(raw, dict):
        problems.append(f"top level: expected a table, got {type(raw).__name__}")
        return []
    for extra in sorted(set(raw) - {key}):
        problems.append(f"top level: unknown key {extra!r} (expected only [[{key}]] tables)")
    entries = raw.get(key)
    if entries is None:
        problems.append(f"top level: no [[{key}]] entries")
        return []
    if not isinstance(entries, list):
        problems.append(f"top level: {key!r} must be an array of tables")
        return []
    return entries


def _label(kind: str, index: int, entry: Any) -> str:
    """Name an entry in messages: by its id where it has a usable one, else by position."""
    if isinstance(entry, dict) and isinstance(entry.get("id"), str) and entry["id"].strip():
        return f"{kind} {entry['id']!r}"
    return f"{kind} #{index + 1}"


def _check_keys(
    entry: dict, label: str, allowed: tuple[str, ...], problems: list[str], optional=()
) -> None:
    for name in allowed:
        if name not in entry and name not in optional:
            problems.append(f"{label}: missing field {name!r}")
    for name in sorted(set(entry) - set(allowed)):
        problems.append(f"{label}: unknown field {name!r}")


def _check_str(entry: dict, label: str, name: str, problems: list[str]) -> bool:
    if name not in entry:
        return False
    value = entry[name]
    if not isinstance(value, str):
        problems.append(f"{label}: field {name!r} must be a string, got {type(value).__name__}")
        return False
    if not value.strip():
        problems.append(f"{label}: field {name!r} must not be empty")
        return False
    return True


def _check_duplicates(ids: list[str], kind: str, problems: list[str]) -> None:
    seen: set[str] = set()
    for entry_id in ids:
        if entry_id in seen:
            problems.append(f"{kind} {entry_id!r}: duplicate id")
        seen.add(entry_id)


def validate_catalogue(raw: dict) -> dict[str, ModelCard]:
    """Check a parsed ``models.toml`` and build the catalogue, keyed by model id.

    Every problem is collected before raising, so one ``KnowledgeError`` reports them all.
    """
    problems: list[str] = []
    cards: list[ModelCard] = []
    ids: list[str] = []
    entries = _entries(raw, "model", problems)
    for index, entry in enumerate(entries):
        label = _label("model", index, entry)
        if not isinstance(entry, dict):
            problems.append(f"{label}: expected a table, got {type(entry).__name__}")
            continue
        before = len(problems)
        _check_keys(entry, label, _MODEL_FIELDS, problems, optional=_OPTIONAL_MODEL_FIELDS)
        if entry.get("pooling", "default") not in POOLINGS:
            problems.append(
                f"{label}: field 'pooling' is {entry.get('pooling')!r}, "
                f"expected one of {', '.join(sorted(POOLINGS))}"
            )
        for name in _STR_FIELDS:
            _check_str(entry, label, name, problems)
        if isinstance(entry.get("id"), str) and entry["id"].strip():
            ids.append(entry["id"])
        if "params_m" in entry:
            value = entry["params_m"]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(
                    f"{label}: field 'params_m' must be a number, got {type(value).__name__}"
                )
            elif not value > 0:
                problems.append(f"{label}: field 'params_m' must be positive, got {value}")
        for name in _INT_FIELDS:
            if name not in entry:
                continue
            value = entry[name]
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(
                    f"{label}: field {name!r} must be an integer, got {type(value).__name__}"
                )
            elif value <= 0:
                problems.append(f"{label}: field {name!r} must be positive, got {value}")
        for name in _STR_TUPLE_FIELDS:
            if name not in entry:
                continue
            value = entry[name]
            if not isinstance(value, list) or not all(
                isinstance(item, str) and item.strip() for item in value
            ):
                problems.append(f"{label}: field {name!r} must be a list of non-empty strings")
            elif not value:
                problems.append(f"{label}: field {name!r} must not be empty")
        if "embedded" in entry and not isinstance(entry["embedded"], bool):
            problems.append(
                f"{label}: field 'embedded' must be true or false, "
                f"got {type(entry['embedded']).__name__}"
            )
        for name, allowed in (("kind", KINDS), ("domain", DOMAINS)):
            value = entry.get(name)
            if isinstance(value, str) and value.strip() and value not in allowed:
                problems.append(
                    f"{label}: field {name!r} is {value!r}, "
                    f"expected one of {', '.join(sorted(allowed))}"
                )
        if len(problems) == before:
            cards.append(
                ModelCard(
                    id=entry["id"],
                    kind=entry["kind"],
                    params_m=float(entry["params_m"]),
                    layers=entry["layers"],
                    hidden=entry["hidden"],
                    max_positions=entry["max_positions"],
                    languages=tuple(entry["languages"]),
                    domain=entry["domain"],
                    licence=entry["licence"],
                    architecture=entry["architecture"],
                    lora_targets=tuple(entry["lora_targets"]),
                    embedded=entry["embedded"],
                    source=entry["source"],
                    summary=entry["summary"],
                    pooling=entry.get("pooling", "default"),
                )
            )
    _check_duplicates(ids, "model", problems)

    embedded = [
        _label("model", index, entry).removeprefix("model ")
        for index, entry in enumerate(entries)
        if isinstance(entry, dict) and entry.get("embedded") is True
    ]
    want = repr(EMBEDDED_MODEL_ID)
    if not embedded:
        problems.append(f"catalogue: no model has embedded = true (expected exactly {want})")
    elif len(embedded) > 1:
        problems.append(
            f"catalogue: {len(embedded)} models have embedded = true "
            f"({', '.join(embedded)}); only {want} may"
        )
    elif embedded[0] != want:
        problems.append(f"catalogue: the embedded model must be {want}, got {embedded[0]}")
    if problems:
        raise KnowledgeError("model catalogue", problems)
    return {card.id: card for card in cards}


def validate_notes(raw: dict, *, required: tuple[str, ...] = ()) -> dict[str, Note]:
    """Check a parsed ``notes.toml`` and build the notes, keyed by note id.

    ``required`` names note ids that must be present (``load_notes`` passes
    ``REQUIRED_NOTE_IDS``). Every problem is collected before raising.
    """
    problems: list[str] = []
    notes: list[Note] = []
    ids: list[str] = []
    for index, entry in enumerate(_entries(raw, "note", problems)):
        label = _label("note", index, entry)
        if not isinstance(entry, dict):
            problems.append(f"{label}: expected a table, got {type(entry).__name__}")
            continue
        before = len(problems)
        _check_keys(entry, label, _NOTE_FIELDS, problems)
        for name in _NOTE_FIELDS:
            _check_str(entry, label, name, problems)
        if isinstance(entry.get("id"), str) and entry["id"].strip():
            ids.append(entry["id"])
        if len(problems) == before:
            notes.append(Note(**{name: entry[name] for name in _NOTE_FIELDS}))
    _check_duplicates(ids, "note", problems)
    for note_id in required:
        if note_id not in ids:
            problems.append(f"note {note_id!r}: required by the recommender but missing")
    if problems:
        raise KnowledgeError("technique notes", problems)
    return {note.id: note for note in notes}


# ------------------------------------------------------------------------------ loading


def _read_toml(filename: str) -> dict:
    resource = resources.files("knowledge").joinpath(filename)
    try:
        return tomllib.loads(resource.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise KnowledgeError(str(Path("knowledge") / filename), [f"not valid TOML: {exc}"]) from exc


@functools.lru_cache(maxsize=1)
def load_catalogue() -> dict[str, ModelCard]:
    """The shipped model catalogue, keyed by hub id. Cached: treat it as read-only."""
    return validate_catalogue(_read_toml(_MODELS_FILE))


@functools.lru_cache(maxsize=1)
def load_notes() -> dict[str, Note]:
    """The shipped technique notes, keyed by id. Cached: treat it as read-only."""
    return validate_notes(_read_toml(_NOTES_FILE), required=REQUIRED_NOTE_IDS)


def _bare(name: str) -> str:
    """Drop a legacy organisation prefix: 'google-bert/bert-base-uncased' -> 'bert-base-uncased'."""
    org, sep, rest = name.partition("/")
    return rest if sep and org in _LEGACY_ORGS else name


def get_model(name: str) -> ModelCard | None:
    """The catalogue entry for a hub name, or None when the model is not catalogued.

    Matching ignores case and treats a legacy checkpoint's old and new names
    ("roberta-base" and "FacebookAI/roberta-base") as the same model. A local path or an
    unknown hub name gives None.
    """
    catalogue = load_catalogue()
    if name in catalogue:
        return catalogue[name]
    wanted = _bare(name.strip().casefold())
    for model_id, card in catalogue.items():
        if _bare(model_id.casefold()) == wanted:
            return card
    return None


def models_by(
    kind: str | None = None,
    domain: str | None = None,
    language: str | None = None,
    max_params_m: float | None = None,
    licence_ok: Callable[[str], bool] | None = None,
) -> list[ModelCard]:
    """The catalogue entries that pass every given filter, smallest first (then by id).

    A plain filter, no ranking: ``kind`` and ``domain`` must equal the card's; ``language``
    (an ISO code, case ignored) matches a card that lists it or is ``"multi"`` -- pass
    ``"multi"`` itself for the multilingual models only; ``max_params_m`` keeps cards of at
    most that size; ``licence_ok`` is called with each card's licence string and keeps the
    card when it returns true. ``None`` skips a filter. An unknown ``kind`` or ``domain``
    raises ``ValueError`` rather than silently matching nothing.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}, expected one of {', '.join(sorted(KINDS))}")
    if domain is not None and domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}, expected one of {', '.join(sorted(DOMAINS))}")
    wanted = language.strip().casefold() if language is not None else None

    def keep(card: ModelCard) -> bool:
        if kind is not None and card.kind != kind:
            return False
        if domain is not None and card.domain != domain:
            return False
        if wanted is not None:
            languages = {lang.casefold() for lang in card.languages}
            if wanted not in languages and "multi" not in languages:
                return False
        if max_params_m is not None and card.params_m > max_params_m:
            return False
        return licence_ok is None or bool(licence_ok(card.licence))

    cards = [card for card in load_catalogue().values() if keep(card)]
    return sorted(cards, key=lambda card: (card.params_m, card.id))


def get_note(note_id: str) -> Note:
    """The note with this id; a KeyError suggests the closest ids when there is none."""
    notes = load_notes()
    try:
        return notes[note_id]
    except KeyError:
        close = difflib.get_close_matches(note_id, list(notes), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(f"no technique note {note_id!r}{hint}") from None


# ---------------------------------------------------------------- retrieval

# words that say nothing about which note is meant
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "should",
        "so",
        "than",
        "that",
        "the",
        "this",
        "to",
        "use",
        "used",
        "using",
        "was",
        "we",
        "what",
        "when",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "tunesmith",
        "explain",
        "tell",
        "about",
        "mean",
        "means",
        "can",
        "could",
    ]
)
BM25_K1, BM25_B = 1.5, 0.75


def _terms(text: str) -> list[str]:
    """Lower-case word stems: letters and digits, a plural or -ing/-ed ending cut off."""
    out = []
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if word in STOPWORDS:
            continue
        for ending in ("ing", "ed", "es", "s"):
            if len(word) > len(ending) + 3 and word.endswith(ending):
                word = word[: -len(ending)]
                break
        out.append(word)
    return out


@functools.lru_cache(maxsize=1)
def _note_index() -> tuple[list[Note], list[Counter], dict[str, int], float]:
    notes = list(load_notes().values())
    # the title counts twice: it names what the note is about
    docs = [
        Counter(_terms(f"{n.title} {n.title} {n.id.replace('-', ' ')} {n.text}")) for n in notes
    ]
    frequency: dict[str, int] = {}
    for doc in docs:
        for term in doc:
            frequency[term] = frequency.get(term, 0) + 1
    average = sum(sum(d.values()) for d in docs) / max(len(docs), 1)
    return notes, docs, frequency, average


def search_notes(query: str, k: int = 3, min_score: float = 2.0) -> list[tuple[Note, float]]:
    """The notes most relevant to `query`, best first, ranked by BM25 over their titles, ids and
    texts; only those scoring at least `min_score` and holding at least two thirds of the
    question's words (a question about something no note covers gets an empty list, not the
    least bad note)."""
    notes, docs, frequency, average = _note_index()
    terms = set(_terms(query))
    needed = math.ceil(2 * len(terms) / 3)
    scored = []
    for note, doc in zip(notes, docs, strict=True):
        if sum(term in doc for term in terms) < needed:
            continue
        length = sum(doc.values())
        score = 0.0
        for term in terms:
            tf = doc.get(term, 0)
            if not tf:
                continue
            n = frequency[term]
            idf = math.log(1 + (len(notes) - n + 0.5) / (n + 0.5))
            score += (
                idf * tf * (BM25_K1 + 1) / (tf + BM25_K1 * (1 - BM25_B + BM25_B * length / average))
            )
        if score >= min_score:
            scored.append((note, round(score, 3)))
    scored.sort(key=lambda pair: -pair[1])
    return scored[:k]
