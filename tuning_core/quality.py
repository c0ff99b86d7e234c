"""Data quality: what is wrong with labelled rows, how bad it is, and pure fixes for it.

`analyse(splits)` returns `Finding`s (duplicates, near duplicates, conflicting labels, empty
texts, length outliers, rare labels, class imbalance, train/validation/test leakage), each with
a severity, the numbers, up to five example rows and a suggested fix. `apply_fix(splits, id)`
applies one fix to the rows in memory and says what it changed; it never touches files and
never mutates its input.

Definitions used throughout:
- exact duplicates: texts identical after `str.strip()`;
- normalised text (`normalise`): lowercased, URLs -> "<url>", @mentions -> "@user",
  whitespace collapsed and stripped;
- near duplicates: distinct texts whose normalised forms are identical, or whose character
  5-gram sets (of the normalised text) have Jaccard similarity >= `NEAR_THRESHOLD`. Candidates
  come from MinHash signatures (`NUM_PERM` values, one-permutation hashing with densification)
  with LSH banding (`BANDS` bands of `ROWS_PER_BAND`), all in numpy, so the search is roughly
  linear in the number of texts; each candidate pair is then checked with the exact Jaccard
  similarity. At most `NEAR_MAX_TEXTS` distinct texts (and `NEAR_MAX_CHARS` characters) take
  part in the Jaccard search, a fixed-seed sample beyond that (the finding says so); identical
  normalised forms are always found, on all rows.

Rows are passed as `splits: dict[str, tuple[list[str], list[str]]]` (split name -> (texts,
labels)) with the names "train", "validation" and "test". Imports numpy only.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

# ---------------------------------------------------------------- settings

NEAR_THRESHOLD = 0.8  # char 5-gram Jaccard; a one-word edit of a 20-word text scores ~0.85
SHINGLE = 5
BANDS = 16
ROWS_PER_BAND = 5
# P(candidate pair) = 1 - (1 - J^5)^16: 0.998 at J = 0.8, 0.40 at 0.5, 5e-6 at 0.05
NUM_PERM = BANDS * ROWS_PER_BAND
# The Jaccard search takes at most this many distinct normalised texts and characters (about
# 12 s for 1M tweets on 2 cores); beyond, a fixed-seed sample (the finding says so).
NEAR_MAX_TEXTS = 1_000_000
NEAR_MAX_CHARS = 150_000_000
SEED = 0
NAN_LIKE = frozenset({"nan", "none", "null", "n/a", "na", "-"})
SHORT_WORDS = 2  # texts of at most this many words are short outliers ...
SHORT_WHEN_MEDIAN_WORDS = 5  # ... when the median training text has at least this many
LONG_FACTOR = 3  # texts longer than LONG_FACTOR x p99 tokens are long outliers
SPLIT_MIN = 3  # fewer training rows than this: the label cannot be split stratified
LEARN_MIN = 10  # fewer than max(LEARN_MIN, min(LEARN_CAP, 1% of rows)): too few to learn
LEARN_CAP = 100
IMBALANCE_INFO = 3.0
IMBALANCE_MEDIUM = 10.0
MAX_SAMPLES = 5
SEVERITIES = ("high", "medium", "low", "info")

FIXES: dict[str, str] = {
    "drop_exact_duplicates": "drop training rows that repeat an earlier row's text and label "
    "(the first copy stays; copies with another label are left to the conflict fixes)",
    "resolve_conflicts_majority": "relabel each group of identical (normalised) training texts "
    "to its majority label; drop the group on a tie",
    "drop_conflicts": "drop every training row whose (normalised) text also carries another label",
    "drop_empty": "drop empty, whitespace-only and placeholder ('nan', 'null', ...) texts from "
    "training (option splits=[...] for others)",
    "drop_leaked": "drop training rows whose exact or near duplicate is in validation or test",
    "merge_rare_labels": "merge labels with fewer than min_count (default 10) training rows into "
    "'other', in every split",
}

_URL_RE = re.compile(r"(?:https?://|www\.)\S+")
_MENTION_RE = re.compile(r"(?<!\w)@\w+")


def normalise(text: str) -> str:
    """Lowercase, URLs -> "<url>", @mentions -> "@user", whitespace collapsed, stripped.

    URLs are "http://...", "https://..." or "www...." up to the next whitespace; a mention is
    "@" followed by word characters, not preceded by one (so e-mail addresses keep their
    domain part as text).
    """
    t = str(text).lower()
    if "http" in t or "www." in t:
        t = _URL_RE.sub("<url>", t)
    if "@" in t:
        t = _MENTION_RE.sub("@user", t)
    return " ".join(t.split())


def is_empty_like(text: str) -> bool:
    """Empty, whitespace-only, or a placeholder such as "nan", "None", "NULL", "n/a", "-"."""
    s = str(text).strip()
    return not s or s.lower() in NAN_LIKE


# ---------------------------------------------------------------- findings


@dataclass
class Finding:
    id: str
    severity: str  # "high" | "medium" | "low" | "info"
    title: str  # one line, with the numbers
    detail: str  # what it means and the threshold used
    count: int
    fix: str | None = None  # a key of FIXES
    fix_text: str | None = None  # the suggested fix in words
    samples: list[dict] = field(default_factory=list)  # up to 5 rows
    fix_options: dict[str, Any] = field(default_factory=dict)  # keyword options for apply_fix

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Finding:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


# among findings of one severity and count, the more consequential first
_PRIORITY = (
    "leakage",
    "rare_labels",
    "conflicting_labels",
    "empty_texts",
    "truncation",
    "class_imbalance",
    "exact_duplicates",
    "near_duplicates",
    "long_texts",
    "short_texts",
)


def _sort_key(f: Finding) -> tuple:
    rank = _PRIORITY.index(f.id) if f.id in _PRIORITY else len(_PRIORITY)
    return (SEVERITIES.index(f.severity), -f.count, rank, f.id)


# ---------------------------------------------------------------- near duplicates (MinHash)

_rng = np.random.default_rng(20261128)
_GRAM_MULT = (_rng.integers(1, 2**63, size=SHINGLE, dtype=np.uint64) * 2 + 1).astype(np.uint64)
_EMPTY = np.uint32(0xFFFFFFFF)
_ROTATE = np.uint32(0x9E3779B1)  # added per step when an empty bin borrows a neighbour's value
_BAND_MULT = (_rng.integers(1, 2**63, size=ROWS_PER_BAND, dtype=np.uint64) * 2 + 1).astype(
    np.uint64
)
_GRAMS_PER_CHUNK = 300_000
_JACCARD_BATCH_CHARS = 4_000_000


def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on a uint64 array."""
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def _gram_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of the character 5-grams of `texts` (each at least 5 characters), in
    order, and the number of grams per text."""
    lens = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    codes = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    windows = len(codes) - SHINGLE + 1
    h = codes[:windows] * _GRAM_MULT[0]
    for j in range(1, SHINGLE):
        h += codes[j : j + windows] * _GRAM_MULT[j]
    _mix64(h)
    valid = np.ones(windows, dtype=bool)
    ends = np.cumsum(lens)
    cross = (ends[:, None] - np.arange(1, SHINGLE)[None, :]).ravel()  # windows over a boundary
    valid[cross[cross < windows]] = False
    return h[valid], lens - (SHINGLE - 1)


def _signatures(texts: list[str]) -> np.ndarray:
    """MinHash signatures (len(texts) x NUM_PERM, uint32) of the texts' character 5-grams.

    One-permutation hashing with rotation densification (Shrivastava and Li, ICML 2014): each
    gram's hash picks one of NUM_PERM bins and the bin keeps its smallest value; an empty bin
    takes the value of the next non-empty bin to its right (circularly) plus a constant per
    step. Two texts then agree on each bin with probability equal to their Jaccard
    similarity, for one hash per gram instead of NUM_PERM.
    """
    k = NUM_PERM
    sig = np.empty((len(texts), k), dtype=np.uint32)
    columns = np.arange(k, dtype=np.int16)
    start = 0
    while start < len(texts):
        grams, stop = 0, start
        while stop < len(texts) and (grams == 0 or grams + len(texts[stop]) <= _GRAMS_PER_CHUNK):
            grams += len(texts[stop])
            stop += 1
        hashes, counts = _gram_hashes(texts[start:stop])
        m = stop - start
        bins = ((hashes >> np.uint64(32)) * np.uint64(k)) >> np.uint64(32)
        slots = np.repeat(np.arange(0, m * k, k, dtype=np.int64), counts) + bins.astype(np.int64)
        flat = np.full(m * k, _EMPTY, dtype=np.uint32)
        np.minimum.at(flat, slots, (hashes & np.uint64(0xFFFFFFFF)).astype(np.uint32))
        block = flat.reshape(m, k)
        empty = block == _EMPTY
        if empty.any():
            # next non-empty bin to the right, circularly: a reversed running minimum over the
            # bin positions written twice
            position = np.where(empty, np.int16(3 * k), columns[None, :])
            doubled = np.concatenate((position, position + np.int16(k)), axis=1)
            doubled[:, k:][empty] = 3 * k
            nearest = np.minimum.accumulate(doubled[:, ::-1], axis=1)[:, ::-1][:, :k]
            steps = (nearest - columns[None, :]).astype(np.uint32)
            borrowed = np.take_along_axis(block, nearest % k, axis=1) + steps * _ROTATE
            block = np.where(empty, borrowed, block)
        sig[start:stop] = block
        start = stop
    return sig


def _unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (numpy's sort is faster than its hash-based unique here)."""
    values = np.sort(values)
    if len(values) < 2:
        return values
    keep = np.empty(len(values), dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def _sketch(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Compact MinHash sketches: LSH band keys (len x BANDS, uint32) and the low 8 bits of
    every signature value (len x NUM_PERM, uint8) for a quick similarity estimate.

    Band b hashes the bins b, b + BANDS, b + 2 BANDS, ...: bins far apart share less through
    densification. 144 bytes per text instead of 320 for the full signature."""
    keys = np.empty((len(texts), BANDS), dtype=np.uint32)
    low = np.empty((len(texts), NUM_PERM), dtype=np.uint8)
    for start in range(0, len(texts), 50_000):
        sig = _signatures(texts[start : start + 50_000])
        for b in range(BANDS):
            band = sig[:, b::BANDS].astype(np.uint64)
            mixed = (band * _BAND_MULT[None, :]).sum(axis=1, dtype=np.uint64)
            keys[start : start + len(sig), b] = (mixed >> np.uint64(32)).astype(np.uint32)
        low[start : start + len(sig)] = sig.astype(np.uint8)
    return keys, low


def _candidate_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) that share a band key in at least one band. Within a bucket each member
    is paired with the bucket's smallest index only (the union-find joins the rest), so the
    number of pairs stays below texts x bands."""
    n = keys.shape[0]
    codes = []
    for b in range(BANDS):
        key = keys[:, b]
        order = np.argsort(key)
        sorted_key = key[order]
        new = np.ones(n, dtype=bool)
        new[1:] = sorted_key[1:] != sorted_key[:-1]
        if new.all():
            continue
        starts = np.flatnonzero(new)
        # the bucket's smallest index, whatever order the (unstable) sort left ties in
        rep = np.repeat(np.minimum.reduceat(order, starts), np.diff(np.append(starts, n)))
        member = order != rep
        a, c = rep[member].astype(np.int64), order[member].astype(np.int64)
        codes.append(np.minimum(a, c) * n + np.maximum(a, c))
    if not codes:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    unique = _unique(np.concatenate(codes))
    return unique // n, unique % n


def _keyed_grams(which: np.ndarray, sizes: np.ndarray, first: np.ndarray, grams: np.ndarray):
    """The gram hashes of texts `which` (one per pair), each tagged with its pair number in the
    high 32 bits; and the number of grams per pair."""
    n_grams = sizes[which]
    pair = np.repeat(np.arange(len(which), dtype=np.uint64), n_grams)
    offset = np.arange(n_grams.sum()) - np.repeat(np.cumsum(n_grams) - n_grams, n_grams)
    index = np.repeat(first[which], n_grams) + offset
    return (pair << np.uint64(32)) | grams[index], n_grams


def _jaccard(texts: list[str], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The character 5-gram Jaccard similarity of each pair (texts[a[p]], texts[b[p]]), over
    32-bit gram hashes, vectorised."""
    out = np.empty(len(a))
    sizes_chars = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    # batches of pairs with at most _JACCARD_BATCH_CHARS characters (and 20k pairs) each
    cumulative = np.cumsum(sizes_chars[a] + sizes_chars[b])
    bounds = [0]
    while bounds[-1] < len(a):
        start = bounds[-1]
        base = cumulative[start - 1] if start else 0
        stop = int(np.searchsorted(cumulative, base + _JACCARD_BATCH_CHARS, side="right"))
        bounds.append(min(len(a), max(stop, start + 1), start + 20_000))
    for s, e in itertools.pairwise(bounds):
        pa, pb = a[s:e], b[s:e]
        m = len(pa)
        both = np.concatenate((pa, pb))
        involved = _unique(both)
        inverse = np.searchsorted(involved, both)
        hashes, counts = _gram_hashes([texts[i] for i in involved])
        owner = np.repeat(np.arange(len(involved), dtype=np.uint64), counts)
        keyed = _unique((owner << np.uint64(32)) | (hashes >> np.uint64(32)))  # per text
        text_of = (keyed >> np.uint64(32)).astype(np.int64)
        grams = keyed & np.uint64(0xFFFFFFFF)
        first = np.searchsorted(text_of, np.arange(len(involved)))
        sizes = np.bincount(text_of, minlength=len(involved))

        left, size_a = _keyed_grams(inverse[:m], sizes, first, grams)
        right, size_b = _keyed_grams(inverse[m:], sizes, first, grams)
        common = np.intersect1d(left, right, assume_unique=True)
        inter = np.bincount((common >> np.uint64(32)).astype(np.int64), minlength=m)
        out[s : s + m] = inter / (size_a + size_b - inter)
    return out


def near_duplicate_pairs(
    texts: list[str], threshold: float = NEAR_THRESHOLD
) -> list[tuple[int, int, float]]:
    """Pairs (i, j, jaccard) of `texts` (already normalised, distinct) whose character 5-gram
    Jaccard similarity is >= `threshold`, found by MinHash + LSH and checked exactly."""
    keep = np.array([i for i, t in enumerate(texts) if len(t) >= SHINGLE], dtype=np.int64)
    if len(keep) < 2:
        return []
    pool = [texts[i] for i in keep.tolist()]
    keys, low = _sketch(pool)
    a, b = _candidate_pairs(keys)
    del keys
    if len(a) == 0:
        return []
    # a cheap filter on the sketches' agreement (sd ~0.045 at 80 values), then the exact check
    estimate = np.empty(len(a))
    for s in range(0, len(a), 100_000):
        estimate[s : s + 100_000] = (low[a[s : s + 100_000]] == low[b[s : s + 100_000]]).mean(1)
    plausible = estimate >= threshold - 0.2
    a, b = a[plausible], b[plausible]
    if len(a) == 0:
        return []
    jaccard = _jaccard(pool, a, b)
    near = jaccard >= threshold
    return list(
        zip(
            keep[a[near]].tolist(),
            keep[b[near]].tolist(),
            np.round(jaccard[near], 4).tolist(),
            strict=True,
        )
    )


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, x: int, y: int) -> None:
        rx, ry = self.find(x), self.find(y)
        if rx != ry:
            self.parent[max(rx, ry)] = min(rx, ry)


# ---------------------------------------------------------------- the index both sides use


class _Index:
    """Everything `analyse` and `apply_fix` compute once: stripped and normalised texts,
    normalised-text ids, near-duplicate groups."""

    def __init__(self, splits: dict[str, tuple[list[str], list[str]]], near: bool = True):
        self.splits = splits
        self.names = list(splits)
        self.stripped: dict[str, list[str]] = {}
        self.nid: dict[str, np.ndarray] = {}
        norm_ids: dict[str, int] = {}
        self.norms: list[str] = []
        for name, (texts, _labels) in splits.items():
            stripped = [t.strip() if isinstance(t, str) else str(t).strip() for t in texts]
            self.stripped[name] = stripped
            ids = []
            for s in stripped:
                norm = normalise(s)
                i = norm_ids.get(norm)
                if i is None:
                    i = norm_ids[norm] = len(self.norms)
                    self.norms.append(norm)
                ids.append(i)
            self.nid[name] = np.array(ids, dtype=np.int64)
        del norm_ids
        self.group = np.arange(len(self.norms), dtype=np.int64)  # near-duplicate group per nid
        self.jaccard: dict[tuple[int, int], float] = {}
        self.near_pool = 0
        self.near_candidates = 0  # distinct normalised texts that could take part
        self.near_sampled = False
        self.counts: dict[str, Any] = {
            "exact_duplicates": 0,
            "near_duplicates": 0,
            "conflicting_texts": 0,
            "empty_texts": 0,
            "leaked_exact": {n: 0 for n in self.names if n != "train"},
            "leaked_near": {n: 0 for n in self.names if n != "train"},
            "leaked_train_rows": 0,
        }
        if near:
            self._near_groups()

    def present(self, names) -> np.ndarray:
        """A mask over normalised-text ids: which occur in the splits `names`."""
        mask = np.zeros(len(self.norms), dtype=bool)
        for name in names:
            if name in self.nid:
                mask[self.nid[name]] = True
        return mask

    def _near_groups(self) -> None:
        in_train = self.present(["train"])
        in_other = self.present([n for n in self.names if n != "train"]) & ~in_train
        lengths = np.fromiter((len(t) for t in self.norms), dtype=np.int64, count=len(self.norms))
        train_ids = np.flatnonzero(in_train & (lengths >= SHINGLE))
        other_ids = np.flatnonzero(in_other & (lengths >= SHINGLE))
        self.near_candidates = len(train_ids) + len(other_ids)
        rng = np.random.default_rng(SEED)
        chars = int(lengths[train_ids].sum() + lengths[other_ids].sum())
        cap = NEAR_MAX_TEXTS
        if chars > NEAR_MAX_CHARS:  # long texts: fewer of them
            cap = min(cap, int(NEAR_MAX_CHARS / (chars / max(1, self.near_candidates))))
        if self.near_candidates > cap:
            self.near_sampled = True
            other_cap = min(len(other_ids), cap // 2)
            if len(other_ids) > other_cap:
                other_ids = np.sort(rng.choice(other_ids, other_cap, replace=False))
            train_cap = cap - len(other_ids)
            if len(train_ids) > train_cap:
                train_ids = np.sort(rng.choice(train_ids, train_cap, replace=False))
        pool = np.concatenate((train_ids, other_ids))
        self.near_pool = len(pool)
        pairs = near_duplicate_pairs([self.norms[i] for i in pool])
        if not pairs:
            return
        uf = _UnionFind()
        for i, j, jac in pairs:
            a, b = int(pool[i]), int(pool[j])
            uf.union(a, b)
            self.jaccard[(min(a, b), max(a, b))] = jac
        for x in list(uf.parent):
            self.group[x] = uf.find(x)

    # -- helpers

    def labels(self, name: str) -> list[str]:
        return self.splits[name][1]

    def texts(self, name: str) -> list[str]:
        return self.splits[name][0]

    def row(self, name: str, k: int, **extra: Any) -> dict:
        return {
            "split": name,
            "row": int(k),
            "text": self.texts(name)[k],
            "label": self.labels(name)[k],
            **extra,
        }

    def conflicting_nids(self) -> dict[int, list[str]]:
        """Normalised-text id -> its sorted labels, for texts that carry more than one label
        in training."""
        if "train" not in self.splits or not len(self.nid["train"]):
            return {}
        labels = self.labels("train")
        label_ids = {y: i for i, y in enumerate(sorted(set(labels)))}
        lab = np.fromiter((label_ids[y] for y in labels), dtype=np.int64, count=len(labels))
        codes = np.unique(self.nid["train"] * len(label_ids) + lab)
        nids = codes // len(label_ids)
        counts = np.bincount(nids)
        bad = np.flatnonzero(counts > 1)
        if not len(bad):
            return {}
        names = sorted(label_ids)
        result: dict[int, list[str]] = {int(b): [] for b in bad}
        for code in codes[np.isin(nids, bad)].tolist():
            result[code // len(names)].append(names[code % len(names)])
        return result

    def leaked(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
        """Per evaluation split: a mask of its rows whose exact text is in training, a mask of
        rows only near-duplicated in training; and a mask of the training rows that duplicate
        (exactly or nearly) any evaluation row."""
        if "train" not in self.splits:
            return {}, {}, np.zeros(0, dtype=bool)
        train_stripped = set(self.stripped["train"])
        group_in_train = np.zeros(len(self.norms), dtype=bool)
        group_in_train[self.group[self.nid["train"]]] = True
        group_in_eval = np.zeros(len(self.norms), dtype=bool)
        exact: dict[str, np.ndarray] = {}
        near: dict[str, np.ndarray] = {}
        eval_stripped: set[str] = set()
        for name in self.names:
            if name == "train":
                continue
            stripped = self.stripped[name]
            exact[name] = np.fromiter(
                (s in train_stripped for s in stripped), dtype=bool, count=len(stripped)
            )
            groups = self.group[self.nid[name]]
            near[name] = group_in_train[groups] & ~exact[name]
            eval_stripped.update(stripped)
            group_in_eval[groups] = True
        train_mask = group_in_eval[self.group[self.nid["train"]]]
        train_mask |= np.fromiter(
            (s in eval_stripped for s in self.stripped["train"]),
            dtype=bool,
            count=len(train_mask),
        )
        return exact, near, train_mask


# ---------------------------------------------------------------- analyse


def _percentile(sorted_values: np.ndarray, q: float) -> int:
    if not len(sorted_values):
        return 0
    k = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return int(sorted_values[k])


def _n(count: int, one: str, many: str) -> str:
    return f"{count:,} {one if count == 1 else many}"


def _learn_min(rows: int) -> int:
    return max(LEARN_MIN, min(LEARN_CAP, math.ceil(rows * 0.01)))


def _near_note(index: _Index) -> str:
    text = (
        f"Near duplicates: normalised texts identical, or character {SHINGLE}-gram Jaccard "
        f">= {NEAR_THRESHOLD} (MinHash {NUM_PERM} values, LSH {BANDS} bands x {ROWS_PER_BAND}, "
        "checked exactly)."
    )
    if index.near_sampled:
        text += (
            f" The Jaccard search ran on a sample of {index.near_pool:,} of "
            f"{index.near_candidates:,} distinct texts (seed {SEED}); identical normalised "
            "texts are found on all rows."
        )
    return text


def analyse(
    splits: dict[str, tuple[list[str], list[str]]],
    token_lengths: dict[str, list[int]] | None = None,
    max_length: int | None = None,
    token_rows: dict[str, list[int]] | None = None,
) -> list[Finding]:
    """Findings about `splits`, most severe first (then the largest count).

    `token_lengths` maps a split to token counts per row (with special tokens); when they were
    counted on a sample of rows, `token_rows` gives the row of each count. Without token counts
    length findings use words. `max_length` adds the share of training rows it would truncate.
    """
    return analyse_with_counts(splits, token_lengths, max_length, token_rows)[0]


def analyse_with_counts(
    splits: dict[str, tuple[list[str], list[str]]],
    token_lengths: dict[str, list[int]] | None = None,
    max_length: int | None = None,
    token_rows: dict[str, list[int]] | None = None,
    task: str = "single_label_classification",
) -> tuple[list[Finding], dict[str, Any]]:
    """`analyse`'s findings and the counts behind them, whether or not they made a finding:
    {"exact_duplicates", "near_duplicates", "conflicting_texts", "empty_texts" (training
    rows), "leaked_exact", "leaked_near" (evaluation split -> rows), "leaked_train_rows" (what
    drop_leaked would remove), "near_search": {"threshold", "texts", "searched", "sampled"}}.

    For multi-label data, pass each row's labels as one canonical string (sorted, joined);
    the label findings (rare labels, imbalance) are for single-label classes and are left out.
    Regression targets are numbers: the conflicting-labels finding is left out too (two
    annotators' nearby scores for one text are not a conflict).
    """
    index = _Index(splits)
    findings: list[Finding] = []
    if "train" in splits:
        findings += _leakage(index)
        findings += _duplicates(index)
        if task != "regression":
            findings += _conflicts(index)
        findings += _empties(index)
        findings += _lengths(index, token_lengths or {}, max_length, token_rows or {})
        if task == "single_label_classification":
            findings += _labels(index)
    index.counts["near_search"] = {
        "threshold": NEAR_THRESHOLD,
        "texts": index.near_candidates,
        "searched": index.near_pool,
        "sampled": index.near_sampled,
    }
    return sorted(findings, key=_sort_key), index.counts


def _leakage(index: _Index) -> list[Finding]:
    exact, near, train_mask = index.leaked()
    index.counts["leaked_exact"] = {name: int(mask.sum()) for name, mask in exact.items()}
    index.counts["leaked_near"] = {name: int(mask.sum()) for name, mask in near.items()}
    index.counts["leaked_train_rows"] = int(train_mask.sum())
    total = sum(int(m.sum()) for m in exact.values()) + sum(int(m.sum()) for m in near.values())
    if not total:
        return []
    parts = [
        f"{name}: {int(exact[name].sum())} exact, {int(near[name].sum())} near"
        for name in exact
        if exact[name].any() or near[name].any()
    ]
    train_groups = index.group[index.nid["train"]]
    train_stripped = index.stripped["train"]
    samples = []
    leaky = [name for name in exact if exact[name].any() or near[name].any()]
    per_split = math.ceil(MAX_SAMPLES / len(leaky))  # every leaking split gets examples
    for name in leaky:
        for k in np.flatnonzero(exact[name] | near[name])[:per_split].tolist():
            if len(samples) >= MAX_SAMPLES:
                break
            if exact[name][k]:
                j = train_stripped.index(index.stripped[name][k])
                match = "exact"
            else:
                j = int(np.flatnonzero(train_groups == index.group[index.nid[name][k]])[0])
                match = "near"
            samples.append(index.row(name, k, match=match, duplicate_of=index.row("train", j)))
    removed = int(train_mask.sum())
    return [
        Finding(
            id="leakage",
            severity="high",
            title=(
                f"{_n(total, 'validation/test row duplicates', 'validation/test rows duplicate')}"
                f" training texts ({'; '.join(parts)})"
            ),
            detail=(
                "A model scores better on texts it trained on, so these rows overstate the "
                "validation/test metrics. Exact: identical after strip(). " + _near_note(index)
            ),
            count=total,
            fix="drop_leaked",
            fix_text=(
                f"Drop the {removed} training rows that duplicate a validation/test text, so "
                "the metrics measure unseen text (validation and test stay as they are)."
            ),
            samples=samples,
        )
    ]


def _duplicates(index: _Index) -> list[Finding]:
    findings = []
    stripped = index.stripped["train"]
    labels = index.labels("train")
    n = len(stripped)
    first: dict[str, int] = {}
    exact_rows = []
    seen_pairs: set[tuple[str, str]] = set()
    same_label = 0
    for k, s in enumerate(stripped):
        j = first.setdefault(s, k)
        if j != k:
            exact_rows.append((k, j))
        pair = (s, labels[k])
        if pair in seen_pairs:
            same_label += 1
        else:
            seen_pairs.add(pair)
    index.counts["exact_duplicates"] = len(exact_rows)
    if exact_rows:
        share = len(exact_rows) / n
        findings.append(
            Finding(
                id="exact_duplicates",
                severity="medium" if share >= 0.1 else "low",
                title=(
                    f"{_n(len(exact_rows), 'training row repeats', 'training rows repeat')} "
                    f"an earlier text ({share:.1%})"
                ),
                detail=(
                    "Identical after strip(). Repeats weigh those texts more in training and "
                    "make the training loss look better than it is."
                ),
                count=len(exact_rows),
                fix="drop_exact_duplicates",
                fix_text=(
                    f"Drop the {same_label} rows that repeat an earlier row's text and label "
                    "(keep the first); copies with another label are a conflict (see there)."
                ),
                samples=[
                    index.row("train", k, duplicate_of=index.row("train", j))
                    for k, j in exact_rows[:MAX_SAMPLES]
                ],
            )
        )
    # near duplicates: distinct stripped texts in one near group, beyond the first
    groups = index.group[index.nid["train"]]
    first_in_group: dict[int, int] = {}
    distinct_seen: set[str] = set()
    near_rows = []
    for k, (g, s) in enumerate(zip(groups.tolist(), stripped, strict=True)):
        j = first_in_group.setdefault(g, k)
        if s in distinct_seen:
            continue
        distinct_seen.add(s)
        if j != k:
            near_rows.append((k, j))
    index.counts["near_duplicates"] = len(near_rows)
    if near_rows:
        samples = []
        for k, j in near_rows[:MAX_SAMPLES]:
            a, b = int(index.nid["train"][k]), int(index.nid["train"][j])
            extra = {"duplicate_of": index.row("train", j)}
            if (min(a, b), max(a, b)) in index.jaccard:
                extra["jaccard"] = index.jaccard[(min(a, b), max(a, b))]
            samples.append(index.row("train", k, **extra))
        findings.append(
            Finding(
                id="near_duplicates",
                severity="low",
                title=(
                    f"{_n(len(near_rows), 'training text is a', 'training texts are')} "
                    "near duplicate of another "
                    f"({len(near_rows) / n:.1%})"
                ),
                detail=(
                    "Counted once per distinct text beyond the first of its group. "
                    + _near_note(index)
                ),
                count=len(near_rows),
                fix=None,
                fix_text=(
                    "Usually harmless inside training (they weigh those texts more); check a "
                    "few for copy-paste or scraping artefacts. Near duplicates across splits "
                    "are the harmful case (see leakage)."
                ),
                samples=samples,
            )
        )
    return findings


def _conflicts(index: _Index) -> list[Finding]:
    conflicting = index.conflicting_nids()
    index.counts["conflicting_texts"] = len(conflicting)
    if not conflicting:
        return []
    nids = index.nid["train"]
    flagged = np.zeros(len(index.norms), dtype=bool)
    flagged[np.fromiter(conflicting, dtype=np.int64)] = True
    involved = flagged[nids]
    rows = int(involved.sum())
    share = rows / len(nids)
    labels = index.labels("train")
    samples = []
    shown: set[int] = set()
    for k in np.flatnonzero(involved).tolist():
        g = int(nids[k])
        if g in shown:
            continue
        shown.add(g)
        others = [y for y in conflicting[g] if y != labels[k]]
        samples.append(index.row("train", k, other_labels=others))
        if len(samples) >= MAX_SAMPLES:
            break
    return [
        Finding(
            id="conflicting_labels",
            severity="high" if share >= 0.05 else "medium",
            title=(
                f"{_n(len(conflicting), 'text carries', 'texts carry')} conflicting labels in "
                "training "
                f"({rows} rows, {share:.1%})"
            ),
            detail=(
                "The same normalised text (lowercased, URLs and @mentions masked, whitespace "
                "collapsed) appears under different labels: the model cannot fit both, and the "
                "labelling rule may be unclear."
            ),
            count=len(conflicting),
            fix="resolve_conflicts_majority",
            fix_text=(
                "Relabel each group to its majority label and drop the groups that tie "
                "(or drop_conflicts to drop them all); label smoothing also softens the noise."
            ),
            samples=samples,
        )
    ]


def _empties(index: _Index) -> list[Finding]:
    per_split = {}
    masks = {}
    for name in index.names:
        stripped = index.stripped[name]
        mask = [not s or s.lower() in NAN_LIKE for s in stripped]
        masks[name] = mask
        per_split[name] = sum(mask)
    count = per_split.get("train", 0)
    index.counts["empty_texts"] = count
    if not count:
        return []
    n = len(index.stripped["train"])
    placeholders = sum(
        1 for s, m in zip(index.stripped["train"], masks["train"], strict=True) if m and s
    )
    others = ", ".join(f"{k} {v}" for k, v in per_split.items() if k != "train" and v)
    samples = [index.row("train", k) for k, m in enumerate(masks["train"]) if m][:MAX_SAMPLES]
    return [
        Finding(
            id="empty_texts",
            severity="high" if count / n >= 0.05 else "medium",
            title=(
                f"{_n(count, 'training text is', 'training texts are')} empty or placeholders "
                f"({count - placeholders} empty, {placeholders} like 'nan'/'null'; "
                f"{count / n:.1%})"
            ),
            detail=(
                "Empty or whitespace-only, or one of "
                + ", ".join(repr(x) for x in sorted(NAN_LIKE))
                + " (any case): usually a missing value, and the label cannot come from the "
                "text." + (f" Also in {others}." if others else "")
            ),
            count=count,
            fix="drop_empty",
            fix_text=f"Drop the {count} empty or placeholder rows from training.",
            samples=samples,
        )
    ]


def _lengths(
    index: _Index,
    token_lengths: dict[str, list[int]],
    max_length: int | None,
    token_rows: dict[str, list[int]],
) -> list[Finding]:
    findings = []
    stripped = index.stripped["train"]
    n = len(stripped)
    words = np.fromiter((len(s.split()) for s in stripped), dtype=np.int64, count=n)
    nonempty = words > 0
    median_words = float(np.median(words[nonempty])) if nonempty.any() else 0.0
    if median_words >= SHORT_WHEN_MEDIAN_WORDS:
        short = np.flatnonzero(nonempty & (words <= SHORT_WORDS))
        if len(short):
            findings.append(
                Finding(
                    id="short_texts",
                    severity="low",
                    title=(
                        f"{_n(len(short), 'training text has', 'training texts have')} "
                        f"{SHORT_WORDS} words or fewer "
                        f"({len(short) / n:.1%}; median {median_words:g} words)"
                    ),
                    detail=(
                        f"At most {SHORT_WORDS} whitespace-separated words where the median "
                        f"training text has {median_words:g}: often fragments, or labels that "
                        "the text alone cannot support."
                    ),
                    count=len(short),
                    fix=None,
                    fix_text="Read a few; drop them if they are fragments or noise.",
                    samples=[index.row("train", k) for k in short[:MAX_SAMPLES].tolist()],
                )
            )
    lengths = token_lengths.get("train")
    unit = "tokens"
    if lengths is None:
        lengths, rows, unit = words, np.arange(n), "words"
    else:
        lengths = np.asarray(lengths, dtype=np.int64)
        rows = np.asarray(token_rows.get("train", range(len(lengths))), dtype=np.int64)
    sampled = len(lengths) < n
    scope = f" (counted on a sample of {len(lengths):,} of {n:,} rows)" if sampled else ""
    if len(lengths):
        p99 = _percentile(np.sort(lengths), 0.99)
        limit = LONG_FACTOR * p99
        long = np.flatnonzero(lengths > limit)
        if p99 > 0 and len(long):
            order = long[np.argsort(-lengths[long], kind="stable")][:MAX_SAMPLES]
            findings.append(
                Finding(
                    id="long_texts",
                    severity="low",
                    title=(
                        f"{_n(len(long), 'training text is', 'training texts are')} over "
                        f"{LONG_FACTOR}x the p99 length "
                        f"(> {limit} {unit}; longest {int(lengths.max())}){scope}"
                    ),
                    detail=(
                        f"Longer than {LONG_FACTOR} x p99 ({p99} {unit}) of the training "
                        "texts: often pasted documents, logs or several texts joined."
                    ),
                    count=len(long),
                    fix=None,
                    fix_text="Read them; they are truncated at max_length during training.",
                    samples=[
                        index.row("train", int(rows[k]), length=int(lengths[k]))
                        for k in order.tolist()
                    ],
                )
            )
        if max_length and unit == "tokens":
            over = np.flatnonzero(lengths > max_length)
            share = len(over) / len(lengths)
            if len(over):
                p99_cover = int(math.ceil(p99 / 8) * 8)
                severity = "medium" if share > 0.05 else "low" if share > 0.01 else "info"
                findings.append(
                    Finding(
                        id="truncation",
                        severity=severity,
                        title=(
                            f"{share:.1%} of training texts are longer than max_length "
                            f"{max_length} tokens ({len(over)} rows){scope}"
                        ),
                        detail=(
                            "Tokens past max_length (special tokens included) are cut off in "
                            "training and evaluation; what they say is lost."
                        ),
                        count=len(over),
                        fix=None,
                        fix_text=(
                            f"Raise max_length to about {p99_cover} (covers 99%) if memory "
                            "allows, or accept the loss."
                            if p99_cover > max_length
                            else "Accept: they are rare beyond p99."
                        ),
                        samples=[
                            index.row("train", int(rows[k]), length=int(lengths[k]))
                            for k in over[:MAX_SAMPLES].tolist()
                        ],
                    )
                )
    return findings


def _labels(index: _Index) -> list[Finding]:
    findings = []
    labels = index.labels("train")
    n = len(labels)
    counts = Counter(labels)
    learn_min = _learn_min(n)
    eval_only = sorted(
        {y for name in index.names if name != "train" for y in index.labels(name)} - set(counts)
    )
    # under SPLIT_MIN always; under learn_min only where other labels do reach it (on a tiny
    # set every label is "rare", and merging them all would leave nothing to classify)
    limit = learn_min if counts and max(counts.values()) >= learn_min else SPLIT_MIN
    rare = sorted((y for y, c in counts.items() if c < limit), key=lambda y: (counts[y], y))
    rare_all = [*eval_only, *rare]
    if rare_all:
        unsplittable = [y for y in rare_all if counts.get(y, 0) < SPLIT_MIN]
        listed = ", ".join(f"{y!r} ({counts.get(y, 0)})" for y in rare_all[:10])
        more = f" and {len(rare_all) - 10} more" if len(rare_all) > 10 else ""
        samples = []
        for y in rare_all:
            for name in index.names:
                if y in index.labels(name):
                    samples.append(index.row(name, index.labels(name).index(y)))
                    break
            if len(samples) >= MAX_SAMPLES:
                break
        findings.append(
            Finding(
                id="rare_labels",
                severity="high" if unsplittable else "medium",
                title=(
                    f"{_n(len(rare_all), 'label has', 'labels have')} too few training rows: "
                    f"{listed}{more}"
                ),
                detail=(
                    f"Under {SPLIT_MIN} training rows a label cannot be split stratified (or "
                    "is missing from training); under "
                    f"{learn_min} (max({LEARN_MIN}, min({LEARN_CAP}, 1% of {n} rows))) a "
                    "model rarely learns it, and its F1 swings with every seed."
                ),
                count=len(rare_all),
                fix="merge_rare_labels",
                fix_text=(
                    f"Merge labels with fewer than {limit} training rows into 'other' (in "
                    "every split), or collect more examples of them."
                ),
                samples=samples,
                fix_options={"min_count": limit},
            )
        )
    # imbalance among the labels that are not already flagged as rare
    usual = (
        {y: c for y, c in counts.items() if y not in rare}
        if len(counts) - len(rare) >= 2
        else counts
    )
    if len(usual) >= 2:
        ratio = max(usual.values()) / min(usual.values())
        if ratio >= IMBALANCE_INFO:
            common = max(usual.items(), key=lambda kv: (kv[1], kv[0]))
            least = min(usual.items(), key=lambda kv: (kv[1], kv[0]))
            excluded = len(counts) - len(usual)
            findings.append(
                Finding(
                    id="class_imbalance",
                    severity="medium" if ratio >= IMBALANCE_MEDIUM else "info",
                    title=(
                        f"Classes are imbalanced {ratio:.1f}x: {common[0]!r} {common[1]} vs "
                        f"{least[0]!r} {least[1]} training rows"
                        + (f" (not counting the {excluded} rare labels)" if excluded else "")
                    ),
                    detail=(
                        f"Largest over smallest class in training (flagged from "
                        f"{IMBALANCE_INFO:g}x, medium from {IMBALANCE_MEDIUM:g}x). Accuracy "
                        "then mostly reflects the large classes."
                    ),
                    count=sum(c * IMBALANCE_INFO <= common[1] for c in usual.values()),
                    fix=None,
                    fix_text=(
                        "Optimise and report macro-F1, and consider class weights in the loss; "
                        "keep validation and test as they are (no resampling of evaluation data)."
                    ),
                )
            )
    return findings


# ---------------------------------------------------------------- fixes


def _subset(rows: tuple[list[str], list[str]], keep: np.ndarray | list[bool]):
    texts, labels = rows
    return (
        [t for t, k in zip(texts, keep, strict=True) if k],
        [y for y, k in zip(labels, keep, strict=True) if k],
    )


def apply_fix(
    splits: dict[str, tuple[list[str], list[str]]], fix_id: str, /, **options: Any
) -> tuple[dict[str, tuple[list[str], list[str]]], dict[str, Any]]:
    """Apply fix `fix_id` (a key of `FIXES`) to the rows; returns (new splits, summary).

    Pure: the input is not changed and no file is touched. The summary holds `fix`,
    `description`, `removed` and `relabelled` (rows per split), `labels_changed` (old label ->
    new label, for merged labels), `labels_gone` (split -> labels no longer present there after
    dropping rows), `rows_before` and `rows_after`.
    """
    if fix_id not in FIXES:
        raise ValueError(f"unknown fix {fix_id!r}; known: {', '.join(FIXES)}")
    new = {name: (list(texts), list(labels)) for name, (texts, labels) in splits.items()}
    removed = dict.fromkeys(splits, 0)
    relabelled = dict.fromkeys(splits, 0)
    changed: dict[str, str] = {}
    train = splits.get("train")

    def drop_train(keep) -> None:
        keep = list(keep)
        before = len(new["train"][0])
        new["train"] = _subset(new["train"], keep)
        removed["train"] = before - len(new["train"][0])

    if fix_id == "drop_exact_duplicates" and train:
        seen: set[tuple[str, str]] = set()
        keep = []
        for t, y in zip(*train, strict=True):
            key = (t.strip(), y)
            keep.append(key not in seen)
            seen.add(key)
        drop_train(keep)
    elif fix_id in ("resolve_conflicts_majority", "drop_conflicts") and train:
        index = _Index(splits, near=False)
        conflicting = index.conflicting_nids()
        nids = index.nid["train"].tolist()
        if fix_id == "drop_conflicts":
            drop_train(g not in conflicting for g in nids)
        else:
            votes: dict[int, Counter] = {g: Counter() for g in conflicting}
            for g, y in zip(nids, train[1], strict=True):
                if g in votes:
                    votes[g][y] += 1
            winner: dict[int, str | None] = {}
            for g, c in votes.items():
                top = c.most_common()
                winner[g] = top[0][0] if top[0][1] > top[1][1] else None
            labels = new["train"][1]
            for k, g in enumerate(nids):
                w = winner.get(g)
                if w is not None and labels[k] != w:
                    labels[k] = w
                    relabelled["train"] += 1
            drop_train(not (g in winner and winner[g] is None) for g in nids)
    elif fix_id == "drop_empty":
        targets = options.get("splits", ("train",))
        for name in splits:
            if name in targets:
                before = len(new[name][0])
                new[name] = _subset(new[name], [not is_empty_like(t) for t in new[name][0]])
                removed[name] = before - len(new[name][0])
    elif fix_id == "drop_leaked" and train:
        _exact, _near, train_mask = _Index(splits).leaked()
        drop_train(~train_mask)
    elif fix_id == "merge_rare_labels" and train:
        min_count = int(options.get("min_count", LEARN_MIN))
        target = str(options.get("target", "other"))
        counts = Counter(train[1])
        every = {y for _t, labels in splits.values() for y in labels}
        rare = {y for y in every if counts.get(y, 0) < min_count and y != target}
        if len(set(counts) - rare | ({target} if rare else set())) < 2:
            raise ValueError(
                f"merging labels with fewer than {min_count} training rows would leave fewer "
                "than two labels; choose a smaller min_count"
            )
        for name in splits:
            labels = new[name][1]
            for k, y in enumerate(labels):
                if y in rare:
                    labels[k] = target
                    relabelled[name] += 1
        changed = {y: target for y in sorted(rare)}
    gone = {}
    for name in splits:
        missing = sorted(set(splits[name][1]) - set(new[name][1]) - set(changed))
        if missing:
            gone[name] = missing
    summary = {
        "fix": fix_id,
        "description": FIXES[fix_id],
        "removed": removed,
        "relabelled": relabelled,
        "labels_changed": changed,
        "labels_gone": gone,
        "rows_before": {name: len(rows[0]) for name, rows in splits.items()},
        "rows_after": {name: len(rows[0]) for name, rows in new.items()},
    }
    return new, summary
