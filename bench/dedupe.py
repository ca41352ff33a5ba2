"""Benchmark: near-duplicate detection (synthforge.neardup) against a plain datasketch pipeline.

Makes N texts of ~150 words (Zipf-distributed vocabulary, fixed seed) and
plants near-duplicate pairs: a copy of a text with 1% of its words replaced
(word 3-gram Jaccard about 0.96). Then times, interleaved and each in a fresh
subprocess (so its peak RSS is its own):

- ``plain``: datasketch as its docs show it: ``MinHash.bulk`` over the
  3-gram shingles (128 permutations), ``MinHashLSH(threshold)`` insert of
  every row, then a query per row; candidate pairs are the near-duplicates.
- ``neardup``: ``synthforge.neardup.near_duplicate_groups`` on the same
  shingles and threshold (numpy MinHash, LSH banding, verified pairs,
  union-find).

Recall is the share of planted pairs found (a candidate pair for ``plain``,
the same group for ``neardup``). Also reported: groups or pairs found
beyond the planted ones.

    python bench/dedupe.py --rows 100000 --planted 5000 --threshold 0.8
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from child import peak_rss_mb, run_child  # noqa: E402


def make_texts(rows: int, planted: int, seed: int = 42) -> tuple[list[str], list[tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(50_000)])
    texts = [" ".join(vocab[np.minimum(rng.zipf(1.3, 150), 50_000) - 1]) for _ in range(rows - planted)]
    pairs = []
    for k in range(planted):
        src = int(rng.integers(0, len(texts)))
        words = texts[src].split()
        for pos in rng.choice(len(words), size=max(1, len(words) // 100), replace=False):
            words[pos] = f"edit{k}_{pos}"
        texts.append(" ".join(words))
        pairs.append((src, len(texts) - 1))
    return texts, pairs


def shingles(text: str) -> list[str]:
    """Word 3-grams, the same features synthforge.neardup hashes."""
    words = text.lower().split()
    return [" ".join(words[i: i + 3]) for i in range(len(words) - 2)]


def run_plain(texts: list[str], threshold: float) -> set[tuple[int, int]]:
    from datasketch import MinHash, MinHashLSH

    sets = [[s.encode("utf-8") for s in shingles(t)] for t in texts]
    hashes = MinHash.bulk(sets, num_perm=128)
    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    for i, m in enumerate(hashes):
        lsh.insert(i, m)
    found = set()
    for i, m in enumerate(hashes):
        for j in lsh.query(m):
            if j != i:
                found.add((min(i, j), max(i, j)))
    return found


def run_neardup(texts: list[str], threshold: float) -> np.ndarray:
    from synthforge.neardup import near_duplicate_groups

    return near_duplicate_groups([(t, ()) for t in texts], threshold)


def child(kind: str, data: Path, threshold: float) -> None:
    texts, pairs = pickle.loads(data.read_bytes())
    tic = time.perf_counter()
    if kind == "plain":
        found = run_plain(texts, threshold)
        hit = sum((a, b) in found for a, b in pairs)
        extra = len(found) - hit
    else:
        groups = run_neardup(texts, threshold)
        hit = int(sum(groups[a] == groups[b] for a, b in pairs))
        extra = int(len(groups) - len(set(groups.tolist()))) - hit  # rows merged beyond the planted pairs
    wall = time.perf_counter() - tic
    print(json.dumps({"kind": kind, "seconds": round(wall, 2), "peak_rss_mb": round(peak_rss_mb()),
                      "recall": round(hit / len(pairs), 4), "extra": extra}))


def measure(kind: str, data: Path, threshold: float) -> dict:
    return run_child(__file__, ["--child", kind, "--data", str(data), "--threshold", str(threshold)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--planted", type=int, default=5_000)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path("/tmp/synthforge-dedupe-bench"))
    ap.add_argument("--child", choices=["plain", "neardup"])
    ap.add_argument("--data", type=Path)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.data, args.threshold)
    args.work.mkdir(parents=True, exist_ok=True)
    data = args.work / f"texts-{args.rows}-{args.planted}.pkl"
    if not data.exists():
        data.write_bytes(pickle.dumps(make_texts(args.rows, args.planted)))
    results = []
    for _ in range(args.repeat):
        for kind in ("plain", "neardup"):
            results.append(measure(kind, data, args.threshold))
            print(json.dumps(results[-1]), flush=True)
    plain = min(r["seconds"] for r in results if r["kind"] == "plain")
    ours = min(r["seconds"] for r in results if r["kind"] == "neardup")
    print(f"{args.rows:,} rows, {args.planted:,} planted pairs, threshold {args.threshold}:"
          f" neardup/plain time {ours / plain:.2f}", flush=True)


if __name__ == "__main__":
    main()
