"""Tiny random models and small labelled files for fast tests.

`make_tiny_model(dir)` trains a WordPiece tokenizer on the fly and saves a randomly initialised
2-layer BERT encoder beside it, laid out like a hub checkpoint. `write_sentiment_csv` writes a
small, learnable three-class file.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

POSITIVE = ["great", "love", "wonderful", "happy", "excellent", "amazing", "good", "fun"]
NEGATIVE = ["awful", "hate", "terrible", "sad", "broken", "worst", "bad", "boring"]
NEUTRAL = ["the", "train", "leaves", "at", "noon", "meeting", "moved", "tuesday"]
FILLER = ["today", "this", "my", "phone", "coffee", "movie", "weather", "team", "is", "was"]


def sentiment_rows(n_per_label: int = 40, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for label, words in (("positive", POSITIVE), ("negative", NEGATIVE), ("neutral", NEUTRAL)):
        for _ in range(n_per_label):
            k = rng.randint(3, 12)
            text = " ".join(rng.choice(words if rng.random() < 0.5 else FILLER) for _ in range(k))
            rows.append((text, label))
    rng.shuffle(rows)
    return rows


def write_sentiment_csv(path: Path, n_per_label: int = 40, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(sentiment_rows(n_per_label, seed))
    return path


def scored_rows(n: int = 120, seed: int = 0) -> list[tuple[str, str]]:
    """Texts with a learnable score: +1 for each positive word, -1 for each negative one."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        k = rng.randint(3, 10)
        words = [rng.choice(POSITIVE + NEGATIVE + FILLER) for _ in range(k)]
        score = sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)
        rows.append((" ".join(words), f"{score + rng.uniform(-0.2, 0.2):.3f}"))
    return rows


def tagged_rows(n: int = 120, seed: int = 0, style: str = "json") -> list[tuple[str, str]]:
    """Texts with any of three labels, one for each word group present in the text: as JSON
    lists (`style` "json") or joined by `style` (a delimiter, e.g. "|")."""
    rng = random.Random(seed)
    groups = {"upbeat": POSITIVE, "gloomy": NEGATIVE, "travel": NEUTRAL}
    rows = []
    for _ in range(n):
        chosen = [name for name in groups if rng.random() < 0.45]
        words = [rng.choice(groups[name]) for name in chosen for _ in range(rng.randint(1, 2))]
        words += [rng.choice(FILLER) for _ in range(rng.randint(2, 5))]
        rng.shuffle(words)
        cell = json.dumps(sorted(chosen)) if style == "json" else style.join(sorted(chosen))
        rows.append((" ".join(words), cell))
    return rows


def tagged_sentences(n: int = 120, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """Sentences with PER entities (one or two words from POSITIVE) and LOC entities (a word
    from NEUTRAL) among FILLER words, tagged BIO: learnable from the words alone."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        tokens, tags = [], []
        for _ in range(rng.randint(2, 4)):
            kind = rng.choice(["O", "O", "PER", "LOC"])
            if kind == "PER":
                words = [rng.choice(POSITIVE) for _ in range(rng.randint(1, 2))]
                tokens += words
                tags += ["B-PER"] + ["I-PER"] * (len(words) - 1)
            elif kind == "LOC":
                tokens.append(rng.choice(NEUTRAL))
                tags.append("B-LOC")
            else:
                tokens.append(rng.choice(FILLER))
                tags.append("O")
        out.append((tokens, tags))
    return out


def write_conll(path: Path, sentences: list[tuple[list[str], list[str]]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    blocks = ["\n".join(f"{w} {t}" for w, t in zip(*s, strict=True)) for s in sentences]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


def write_rows_csv(path: Path, rows: list[tuple[str, str]], label: str = "label") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", label])
        writer.writerows(rows)
    return path


def write_two_label_csv(path: Path, n_per_label: int = 40, seed: int = 0) -> Path:
    """The sentiment rows with a second label column, `strength`: "strong" when a text holds
    two or more sentiment words, else "mild" (for multi-task training)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label", "strength"])
        for text, label in sentiment_rows(n_per_label, seed):
            hits = sum(w in POSITIVE or w in NEGATIVE for w in text.split())
            writer.writerow([text, label, "strong" if hits >= 2 else "mild"])
    return path


def make_tiny_model(directory: Path, layers: int = 2, hidden: int = 32) -> Path:
    """A random BertModel + trained WordPiece tokenizer saved in `directory`."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    corpus = [text for text, _ in sentiment_rows(60, seed=1)]
    corpus += [" ".join(POSITIVE + NEGATIVE + NEUTRAL + FILLER)] * 5
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(
        corpus, trainers.WordPieceTrainer(vocab_size=200, special_tokens=special)
    )
    fast = BertTokenizerFast(tokenizer_object=tok, model_max_length=128)
    fast.save_pretrained(directory)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=128,
    )
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(directory)
    return directory
