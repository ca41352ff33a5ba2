"""Near-duplicate groups of rows: MinHash signatures, LSH banding, verified pairs, union-find.

A row's *features* are the word 3-grams of its normalised text (lower-case
words of every message; single words for texts under three words) plus one
token per tool call, its signature ``call:name(arg1,arg2)`` (tool name and
sorted argument keys). Two rows whose feature sets have an estimated Jaccard
similarity at or above ``threshold`` are near-duplicates; the transitive
closure of that relation gives the groups a split must keep together.

The MinHash is computed with numpy for all rows at once: each distinct word
is hashed once (CRC-32), a 3-gram's 32-bit hash mixes its three words', and
each of the 128 permutations is ``(a*h + b) mod 2**32`` (a odd) followed by
an xor-shift. Nothing depends on row order or on Python's hash seed.
Candidate pairs come from LSH banding with the band/row split
that datasketch's ``MinHashLSH`` chooses for the threshold, weighted towards
recall (:data:`LSH_WEIGHTS`), and every candidate pair is verified on the
signatures before it joins a group: its estimated similarity must reach the
threshold less two standard errors of the estimate (0.07 at 0.8 with 128
permutations), so noise in the estimate does not split a true pair.

    >>> groups = near_duplicate_groups([(text, ["read(file_path)"]), ...], threshold=0.8)  # a group id per row
"""

from __future__ import annotations

import re
import zlib
from typing import Sequence

import numpy as np

NUM_PERM = 128
WORD = re.compile(r"[a-z0-9_]+")
MAX_SHINGLES_PER_BATCH = 100_000  # (NUM_PERM x batch) uint32 values: about 50 MB
# (false-positive, false-negative) weights for choosing bands: every candidate pair is verified on the
# signatures, so a false positive costs a comparison, while a false negative is a leak across splits.
# At threshold 0.8 this gives 16 bands of 8 rows: a pair at Jaccard 0.8 is found with p = 0.95, at 0.85 with 0.99.
LSH_WEIGHTS = (0.05, 0.95)
BIG_BUCKET = 200
ROWS_PER_CHUNK = 5_000  # buckets larger than this are joined whole instead of pair by pair (conservative)


def feature_hashes(docs: Sequence[tuple[str, Sequence[str]]]) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of every row's features, concatenated, and each row's count.

    ``docs`` are (text, call signatures). Words are hashed once each (CRC-32);
    a 3-gram's hash mixes its three word hashes in numpy. Rows are read in
    chunks, so only one chunk's words are ever Python strings at once.
    """
    table: dict[str, int] = {}
    parts = [_chunk_hashes(docs[i: i + ROWS_PER_CHUNK], table) for i in range(0, len(docs), ROWS_PER_CHUNK)]
    if not parts:
        return np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.int64)
    return np.concatenate([v for v, _ in parts]), np.concatenate([n for _, n in parts])


def _chunk_hashes(docs: Sequence[tuple[str, Sequence[str]]], table: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    words = [WORD.findall(text.lower()) for text, _ in docs]
    counts = np.array([len(w) for w in words], dtype=np.int64)
    flat = [w for ws in words for w in ws]
    del words
    for w in dict.fromkeys(flat):
        if w not in table:
            table[w] = zlib.crc32(w.encode("utf-8"))  # each distinct word hashed once
    ids = np.fromiter(map(table.__getitem__, flat), dtype=np.uint64, count=len(flat))
    del flat
    row = np.repeat(np.arange(len(docs)), counts)
    with np.errstate(over="ignore"):  # the 3-gram at i spans words i..i+2; it is a row's only if all three are
        tri = ids[:-2] * np.uint64(0x9E3779B97F4A7C15) + ids[1:-1] * np.uint64(0xC2B2AE3D27D4EB4F) + ids[2:]
        tri = ((tri ^ (tri >> np.uint64(31))) * np.uint64(0xBF58476D1CE4E5B9)) >> np.uint64(32)
    whole = row[:-2] == row[2:] if len(row) > 2 else np.zeros(0, dtype=bool)
    short = np.isin(row, np.flatnonzero(counts < 3))  # rows under three words: their words are the features
    calls = [[zlib.crc32(f"call:{c}".encode("utf-8")) for c in cs] for _, cs in docs]
    keys = np.concatenate([row[:-2][whole] if len(row) > 2 else row[:0], row[short],
                           np.repeat(np.arange(len(docs)), [len(c) for c in calls])])
    values = np.concatenate([tri[whole] if len(row) > 2 else ids[:0], ids[short],
                             np.array([h for c in calls for h in c], dtype=np.uint64)])
    order = np.argsort(keys, kind="stable")
    return values[order].astype(np.uint32), np.bincount(keys, minlength=len(docs)).astype(np.int64)


def signatures(hashes: np.ndarray, sizes: np.ndarray, seed: int = 1, num_perm: int = NUM_PERM) -> np.ndarray:
    """MinHash signatures, shape (rows, num_perm), uint32; a row without features gets all-max values.

    Permutation k of a feature hash h is ``(a_k * h + b_k) mod 2**32`` (a_k odd), then an xor-shift.
    """
    rng = np.random.default_rng(seed)
    a = (rng.integers(0, 2**32, size=num_perm, dtype=np.uint64) | 1).astype(np.uint32)
    b = rng.integers(0, 2**32, size=num_perm, dtype=np.uint64).astype(np.uint32)
    sig = np.full((len(sizes), num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    offsets = np.concatenate(([0], np.cumsum(sizes)))
    start = 0
    while start < len(sizes):
        end = int(np.searchsorted(offsets, offsets[start] + MAX_SHINGLES_PER_BATCH, side="right")) - 1
        end = max(end, start + 1)
        _batch(hashes[offsets[start]: offsets[end]], sizes[start:end], a, b, sig[start:end])
        start = end
    return sig


def _batch(h: np.ndarray, sizes: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    filled = np.flatnonzero(sizes)
    if not len(filled):
        return
    with np.errstate(over="ignore"):
        values = a[:, None] * h[None, :]
        values += b[:, None]
        values ^= values >> np.uint32(15)
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))[filled]
    out[filled] = np.minimum.reduceat(values, offsets, axis=1).T


def bands_for(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows per band) as datasketch's MinHashLSH chooses them, with :data:`LSH_WEIGHTS`."""
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, *LSH_WEIGHTS)


def near_duplicate_groups(docs: Sequence[tuple[str, Sequence[str]]], threshold: float, seed: int = 1) -> np.ndarray:
    """A group id per row (the smallest row index of its group); singletons are their own group.

    ``docs`` are (text, call signatures) per row.
    """
    hashes, sizes = feature_hashes(docs)
    sig = signatures(hashes, sizes, seed)
    parent = np.arange(len(sig))
    empty = sizes == 0
    bands, rows = bands_for(threshold)
    mix = np.random.default_rng(seed + 1).integers(1, 2**63, size=rows, dtype=np.uint64) | np.uint64(1)
    for band in range(bands):
        cols = sig[:, band * rows: (band + 1) * rows].astype(np.uint64)
        with np.errstate(over="ignore"):
            keys = (cols * mix).sum(axis=1, dtype=np.uint64)
        keys[empty] = np.arange(empty.sum(), dtype=np.uint64) + np.uint64(2**63)  # never bucket empty rows
        for members in _buckets(keys):
            _join(members, sig, threshold, parent)
    return np.array([_find(parent, i) for i in range(len(sig))])


def _buckets(keys: np.ndarray):
    """Row indices sharing a key, for every key held by two rows or more."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    same = sorted_keys[1:] == sorted_keys[:-1]
    if not same.any():
        return
    starts = np.flatnonzero(np.diff(np.concatenate(([False], same)).astype(np.int8)) == 1)
    ends = np.flatnonzero(np.diff(np.concatenate((same, [False])).astype(np.int8)) == -1) + 2
    for start, end in zip(starts, ends):
        yield order[start:end]


def _join(members: np.ndarray, sig: np.ndarray, threshold: float, parent: np.ndarray) -> None:
    if len(members) > BIG_BUCKET:
        for m in members[1:]:
            _union(parent, members[0], m)
        return
    sub = sig[members]
    agree = (sub[:, None, :] == sub[None, :, :]).mean(axis=2)
    floor = threshold - 2 * np.sqrt(threshold * (1 - threshold) / sig.shape[1])
    for i, j in zip(*np.nonzero(np.triu(agree >= floor, k=1))):
        _union(parent, members[i], members[j])


def _find(parent: np.ndarray, i: int) -> int:
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:
        parent[i], i = root, parent[i]
    return int(root)


def _union(parent: np.ndarray, i: int, j: int) -> None:
    ri, rj = _find(parent, int(i)), _find(parent, int(j))
    if ri != rj:
        parent[max(ri, rj)] = min(ri, rj)
