"""Profile labelled rows: sizes, label balance, token lengths, duplicates, empty rows, leakage.

Owns `DataProfile` and `profile_rows`. Token lengths are counted with the candidate model's own
tokenizer (read from its `tokenizer.json` with `tokenizers`, which does not load torch); on more
than `LENGTH_SAMPLE` training rows they are counted on a fixed-seed sample of that many (plus
the `LONGEST_EXTRA` longest texts by characters, for the maximum), which keeps a million rows
to a few seconds. The data-quality findings (duplicates, near duplicates, conflicts, leakage,
rare labels, ...) come from `tuning_core.quality.analyse` and are stored as dicts. What to do
about them is the recommender's and the conversation's business.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from tuning_core import quality, recipe
from tuning_core.errors import ModelError

LENGTH_THRESHOLDS = (*range(8, 513, 8), 1024, 2048, 4096, 8192)
LENGTH_SAMPLE = 200_000  # training rows whose tokens are counted (a fixed-seed sample beyond)
LONGEST_EXTRA = 1_000  # ... plus this many longest texts (by characters), for the maximum
LENGTH_SEED = 0
TOP_FINDINGS = 5  # findings shown first in summary_lines


@dataclass
class DataProfile:
    rows: dict[str, int]
    label_counts: dict[str, int]
    imbalance_ratio: float
    token_lengths: dict[str, int]  # p50, p90, p99, max (with special tokens)
    share_longer_than: dict[str, float]  # threshold -> share of training rows longer
    exact_duplicates: int  # training rows whose text already appeared earlier in training
    conflicting_texts: int  # distinct (normalised) texts that carry more than one label
    empty_texts: int  # training texts empty, whitespace-only or a placeholder ("nan", "null")
    leaked_texts: dict[str, int]  # split -> its texts that also appear in training
    tokenizer: str = ""
    notes: list[str] = field(default_factory=list)
    # added with the data-quality findings (defaults keep older saved profiles loadable)
    near_duplicates: int = 0  # distinct training texts near-duplicating another training text
    leaked_near: dict[str, int] = field(default_factory=dict)  # split -> near (not exact) leaks
    findings: list[dict] = field(default_factory=list)  # quality.Finding.to_dict(), worst first
    length_rows: int = 0  # training rows whose tokens were counted (a sample on big data)
    # shares of the sampled training texts with @mentions, #hashtags, links, and of letters
    # outside ASCII: hints at the domain (tweets) and the language for the model choice
    text_traits: dict[str, float] = field(default_factory=dict)
    # what the labels are (recipe.TASKS); multi-label: label_counts counts rows per label and
    # label_stats has labels per row and the most frequent pairs; regression: label_counts is
    # empty and label_stats describes the targets (min, quartiles, max, mean, std)
    task: str = "single_label_classification"
    label_stats: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DataProfile:
        """Accepts profiles saved by older versions (missing fields take their defaults) and
        ignores fields it does not know."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def finding_objects(self) -> list[quality.Finding]:
        return [quality.Finding.from_dict(f) for f in self.findings]

    def truncated_share(self, max_length: int) -> float:
        """Share of training rows longer than `max_length` (exact at the stored thresholds)."""
        known = {int(k): v for k, v in self.share_longer_than.items()}
        if max_length in known:
            return known[max_length]
        below = [t for t in known if t <= max_length]
        return known[max(below)] if below else 1.0

    def labels_line(self) -> str:
        """The training labels in one line, as the task has them."""
        stats = self.label_stats
        if self.task == "regression":
            return (
                f"Targets (train): min {stats['min']:g}, quartiles {stats['p25']:g} / "
                f"{stats['median']:g} / {stats['p75']:g}, max {stats['max']:g}; mean "
                f"{stats['mean']:g}, standard deviation {stats['std']:g}"
            )
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.label_counts.items()))
        if self.task == recipe.INSTRUCT_TASK:
            if not stats:
                return "Conversations: counted as plain text (no chat template to count with)"
            example = stats["tokens_per_example"]
            replies = stats["tokens_per_turn"].get("assistant", {})
            return (
                f"Conversations (train): {stats['rows']:,}; tokens per example median "
                f"{example['median']:g}, p95 {example['p95']:g}, max {example['max']:g}; reply "
                f"tokens median {replies.get('median', 0):g}; replies cut at "
                f"{stats['max_length']} tokens: {stats['truncated']} "
                f"({stats['truncated_share']:.1%}); exact duplicates: {stats['duplicates']}"
            )
        if self.task == recipe.TOKEN_TASK:
            per = stats.get("tokens_per_sentence", {})
            return (
                f"Entities (train): {counts or 'none'}; {stats.get('scheme')} tags, "
                f"{stats.get('tokens', 0):,} tokens in {stats.get('sentences', 0):,} sentences "
                f"(median {per.get('median', 0)} a sentence); broken tag sequences: "
                f"{stats.get('broken_sequences', 0)}"
            )
        if self.task == "multi_label_classification":
            pairs = ", ".join(f"{a}+{b} {n}" for a, b, n in stats.get("top_pairs", [])[:5])
            return (
                f"Labels (train, rows per label): {counts}; {stats['labels_per_row']:.2f} labels "
                f"per row (most {stats['max_per_row']}), {stats['rows_without']} rows with none"
                + (f"; most frequent together: {pairs}" if pairs else "")
            )
        return f"Labels (train): {counts}; imbalance {self.imbalance_ratio:.1f}x"

    def summary_lines(self) -> list[str]:
        """The top findings first ("[severity] title"), then the profile's figures."""
        lines = [f"[{f['severity']}] {f['title']}" for f in self.findings[:TOP_FINDINGS]]
        more = len(self.findings) - TOP_FINDINGS
        if more > 0:
            lines.append(f"(and {more} more finding{'s' if more > 1 else ''})")
        lengths = self.token_lengths
        counted = ""
        if self.length_rows and self.length_rows < self.rows.get("train", 0):
            counted = f" (counted on {self.length_rows:,} sampled rows)"
        lines += [
            "Rows: " + ", ".join(f"{k} {v}" for k, v in self.rows.items()),
            self.labels_line(),
            f"Tokens per text: median {lengths['p50']}, p90 {lengths['p90']}, "
            f"p99 {lengths['p99']}, max {lengths['max']}{counted}",
            f"Exact duplicates in train: {self.exact_duplicates}; near duplicates: "
            f"{self.near_duplicates}; texts with conflicting labels: {self.conflicting_texts}; "
            f"empty texts: {self.empty_texts}",
        ]
        leaks = {
            k: (v, self.leaked_near.get(k, 0))
            for k, v in self.leaked_texts.items()
            if v or self.leaked_near.get(k, 0)
        }
        for k, v in self.leaked_near.items():
            if v and k not in leaks:
                leaks[k] = (0, v)
        if leaks:
            lines.append(
                "Leakage: "
                + ", ".join(
                    f"{v} {k} texts also in train" + (f" (+{near} near duplicates)" if near else "")
                    for k, (v, near) in leaks.items()
                )
            )
        return lines + self.notes


INSTRUCTION_SAMPLE = 2_000  # conversations whose turns are counted for the profile


def rough_counter(texts: list[str]) -> list[int]:
    """Token counts estimated from words (4 tokens per 3 words), for a model not on hand."""
    return [math.ceil(len(t.split()) * 4 / 3) + 2 for t in texts]


def conversation_renderer(model_name: str):
    """(render: conversation -> text, tokenizer or None, note): the model's chat template (its
    own, or tunesmith's default when it has none); a plain "role: text" rendering, with a
    note saying so, when the model's tokenizer is not here or cannot end a turn."""
    try:
        recipe.quiet_libraries()
        from transformers import AutoTokenizer

        # no model code runs while profiling (a consent is for training, given in the chat)
        tokenizer = AutoTokenizer.from_pretrained(
            recipe.resolve_model(model_name), trust_remote_code=False
        )
        recipe.instruct_tools().ensure_chat_template(tokenizer)

        def render(messages: list[dict]) -> str:
            return tokenizer.apply_chat_template(messages, tokenize=False)

        return render, tokenizer, ""
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        note = (
            f"Token lengths estimated from words: {model_name}'s tokenizer with a chat "
            f"template is not available ({reason}); name a local decoder model to count them"
        )

        def plain(messages: list[dict]) -> str:
            return "\n".join(f"{m['role']}: {m['content']}" for m in messages)

        return plain, None, note


def token_counter(model_name: str):
    """A function texts -> token counts for `model_name`, plus a name for the tokenizer."""
    path = Path(recipe.resolve_model(model_name))
    tokenizer_file = path / "tokenizer.json"
    if tokenizer_file.exists():
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tokenizer_file))
        tok.no_truncation()
        tok.no_padding()

        encode = getattr(tok, "encode_batch_fast", tok.encode_batch)  # no offsets: faster

        def count(texts: list[str]) -> list[int]:
            # in batches: an Encoding holds far more than its length (tokens, offsets, masks)
            lengths: list[int] = []
            for start in range(0, len(texts), 10_000):
                lengths += [len(e.ids) for e in encode(texts[start : start + 10_000])]
            return lengths

        return count
    if not path.exists():
        raise ModelError(
            f"Model {model_name!r} is not a local folder and the hub is offline; "
            "give a local path or use the embedded default"
        )
    recipe.quiet_libraries()
    from transformers import AutoTokenizer

    slow = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)  # no model code

    def count_slow(texts: list[str]) -> list[int]:
        return [len(ids) for ids in slow(texts)["input_ids"]]

    return count_slow


def _percentile(sorted_values, q: float) -> int:
    """The nearest-rank percentile of ascending values (a list or an array)."""
    if not len(sorted_values):
        return 0
    k = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return int(sorted_values[k])


def _length_rows(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(sample, longest): rows whose tokens to count. All rows up to LENGTH_SAMPLE; beyond, a
    fixed-seed random sample of LENGTH_SAMPLE rows (unbiased percentiles and shares) and the
    LONGEST_EXTRA longest texts by characters (so the maximum is not missed)."""
    n = len(texts)
    if n <= LENGTH_SAMPLE:
        return np.arange(n), np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(LENGTH_SEED)
    sample = np.sort(rng.choice(n, LENGTH_SAMPLE, replace=False))
    chars = np.fromiter((len(t) for t in texts), dtype=np.int64, count=n)
    longest = np.argpartition(chars, n - LONGEST_EXTRA)[n - LONGEST_EXTRA :]
    return sample, np.setdiff1d(longest, sample)


def profile_rows(
    splits: dict[str, tuple[list[str], list[str]]],
    model_name: str,
    max_length: int | None = None,
    task: str = "single_label_classification",
    label_format: str | None = None,
) -> DataProfile:
    """Profile rows already split (as `tuning_core.data.load_split_rows` returns them).

    Counts tokens once (on a sample beyond LENGTH_SAMPLE training rows) and runs the quality
    analysis; `max_length`, when given, adds the share of training texts it would truncate.
    `task` and `label_format` say how to read the label cells (as the data spec has them).
    """
    texts, labels = splits["train"]
    label_stats: dict[str, Any] = {}
    extra_notes: list[str] = []
    if task == recipe.INSTRUCT_TASK:
        # whole conversations as the chat template writes them: what the model reads, what
        # duplicates and leaks are judged on
        render, tokenizer, why = conversation_renderer(model_name)
        if why:
            extra_notes.append(why)
        splits = {
            name: (
                [render(recipe.conversation(t, y)) for t, y in zip(*rows, strict=True)],
                [""] * len(rows[0]),
            )
            for name, rows in splits.items()
        }
        if tokenizer is not None:
            conversations = [recipe.conversation(t, y) for t, y in zip(texts, labels, strict=True)][
                :INSTRUCTION_SAMPLE
            ]
            tools = recipe.instruct_tools()
            label_stats = tools.instruction_profile(
                tokenizer, conversations, int(max_length or 1024)
            )
            if conversations:  # the first example as the model will be trained on it
                encoded = tools.encode_conversation(
                    tokenizer, conversations[0], int(max_length or 1024)
                )
                label_stats["masked_example"] = tools.masked_view(tokenizer, encoded, width=96)
        texts, labels = splits["train"]
        counts: Counter = Counter()
    elif task == "multi_label_classification":
        sets = [recipe.parse_label_list(y, label_format) for y in labels]
        counts = Counter(x for row in sets for x in row)
        pairs = Counter((a, b) for row in sets for i, a in enumerate(row) for b in row[i + 1 :])
        label_stats = {
            "labels_per_row": round(sum(map(len, sets)) / max(1, len(sets)), 4),
            "max_per_row": max(map(len, sets), default=0),
            "rows_without": sum(1 for row in sets if not row),
            "top_pairs": [[a, b, n] for (a, b), n in pairs.most_common(10)],
        }
        # one canonical string per row, so that the quality checks compare label sets
        splits = {
            name: (rows[0], ["|".join(recipe.parse_label_list(y, label_format)) for y in rows[1]])
            for name, rows in splits.items()
        }
    elif task == recipe.TOKEN_TASK:
        sentences = [
            {"tokens": t.split(" "), "tags": y.split(" ")}
            for t, y in zip(texts, labels, strict=True)
        ]
        label_stats = recipe.token_tools().token_profile(sentences)
        counts = Counter(label_stats["entity_counts"])
    elif task == "regression":
        counts = Counter()
        values = np.sort(np.array([recipe.parse_target(y) for y in labels], dtype=np.float64))
        label_stats = {
            "min": round(float(values[0]), 4),
            "p25": round(float(np.quantile(values, 0.25)), 4),
            "median": round(float(np.quantile(values, 0.5)), 4),
            "p75": round(float(np.quantile(values, 0.75)), 4),
            "max": round(float(values[-1]), 4),
            "mean": round(float(values.mean()), 4),
            "std": round(float(values.std()), 4),
        }
    else:
        counts = Counter(labels)
    imbalance = max(counts.values()) / max(1, min(counts.values())) if counts else 0.0
    sample, longest = _length_rows(texts)
    if task == recipe.INSTRUCT_TASK and label_stats == {}:
        counter = rough_counter  # no tokenizer for this model here
    else:
        counter = token_counter(model_name) if texts else None
    sample_lengths = np.array(
        counter([texts[i] for i in sample.tolist()]) if len(sample) else [], dtype=np.int64
    )
    extra_max = max(counter([texts[i] for i in longest.tolist()])) if len(longest) else 0
    lengths = np.sort(sample_lengths)
    share = {
        str(t): round(
            float(len(lengths) - np.searchsorted(lengths, t, side="right")) / max(1, len(lengths)),
            4,
        )
        for t in LENGTH_THRESHOLDS
    }
    findings, found = quality.analyse_with_counts(
        splits,
        token_lengths={"train": sample_lengths.tolist()},
        max_length=max_length,
        token_rows={"train": sample.tolist()},
        task=task,
    )
    notes = list(extra_notes)
    if len(texts) < 500:
        notes.append(f"Small training set ({len(texts)} rows): expect a few points of seed noise.")
    if len(sample) < len(texts):
        notes.append(
            f"Token lengths counted on a random sample of {len(sample):,} of {len(texts):,} "
            f"training rows (seed {LENGTH_SEED}) plus the {LONGEST_EXTRA:,} longest texts."
        )
    search = found["near_search"]
    if search["sampled"]:
        notes.append(
            f"Near-duplicate (Jaccard) search on a sample of {search['searched']:,} of "
            f"{search['texts']:,} distinct texts."
        )
    return DataProfile(
        rows={name: len(rows[0]) for name, rows in splits.items()},
        label_counts=dict(sorted(counts.items())),
        imbalance_ratio=round(imbalance, 2),
        token_lengths={
            "p50": _percentile(lengths, 0.50),
            "p90": _percentile(lengths, 0.90),
            "p95": _percentile(lengths, 0.95),
            "p99": _percentile(lengths, 0.99),
            "max": int(max(int(lengths[-1]) if len(lengths) else 0, extra_max)),
        },
        share_longer_than=share,
        exact_duplicates=found["exact_duplicates"],
        conflicting_texts=found["conflicting_texts"],
        empty_texts=found["empty_texts"],
        leaked_texts=found["leaked_exact"],
        tokenizer=model_name,
        notes=notes,
        near_duplicates=found["near_duplicates"],
        leaked_near=found["leaked_near"],
        findings=[f.to_dict() for f in findings],
        length_rows=len(sample),
        text_traits={
            **text_traits([texts[i] for i in sample[:TRAIT_SAMPLE].tolist()]),
            **vocabulary_fit(model_name, [texts[i] for i in sample[:TRAIT_SAMPLE].tolist()]),
        },
        task=task,
        label_stats=label_stats,
    )


TRAIT_SAMPLE = 5_000
_MENTION = re.compile(r"(?:^|\s)@\w+")
_HASHTAG = re.compile(r"(?:^|\s)#\w+")
_LINK = re.compile(r"https?://|www\.")


def vocabulary_fit(model_name: str, texts: list[str]) -> dict[str, float]:
    """How far the texts' words are from the model's vocabulary: the share of words its
    tokenizer splits into several pieces ("split_words") and the share of tokens it cannot
    represent at all ("unknown_tokens"). Empty when the model's tokenizer.json is not here."""
    path = Path(recipe.resolve_model(model_name)) / "tokenizer.json"
    if not texts or not path.exists():
        return {}
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.no_truncation()
    tok.no_padding()
    unknown = tok.token_to_id("[UNK]") if tok.token_to_id("[UNK]") is not None else None
    words = split = tokens = unknowns = 0
    for encoding in tok.encode_batch(texts):
        pieces = Counter(w for w in encoding.word_ids if w is not None)
        words += len(pieces)
        split += sum(1 for n in pieces.values() if n > 1)
        tokens += len(encoding.ids)
        if unknown is not None:
            unknowns += sum(1 for i in encoding.ids if i == unknown)
    return {
        "split_words": round(split / words, 4) if words else 0.0,
        "unknown_tokens": round(unknowns / tokens, 4) if tokens else 0.0,
    }


def text_traits(texts: list[str]) -> dict[str, float]:
    """Shares of `texts` with a mention, a hashtag, a link; share of letters outside ASCII."""
    if not texts:
        return {}
    n = len(texts)
    letters = sum(ch.isalpha() for t in texts for ch in t)
    foreign = sum(ch.isalpha() and not ch.isascii() for t in texts for ch in t)
    return {
        "mentions": round(sum(bool(_MENTION.search(t)) for t in texts) / n, 4),
        "hashtags": round(sum(bool(_HASHTAG.search(t)) for t in texts) / n, 4),
        "links": round(sum(bool(_LINK.search(t)) for t in texts) / n, 4),
        "non_ascii_letters": round(foreign / letters, 4) if letters else 0.0,
    }
