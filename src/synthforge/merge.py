"""Stage ``merge``: union, exact dedupe, near-duplicate groups, seeded stratified split, curriculum sets.

Rows from every input file are united; exact duplicates (same messages and
tools) are removed, the first kept. Near-duplicates (MinHash LSH over the
text's word 3-grams and the tool-call signatures, at
``merge.near_duplicate_threshold``; :mod:`synthforge.neardup`) form groups
that are split as one unit, so no near-duplicate pair straddles
train/valid/test. Each category's units are shuffled with ``base.seed`` and
dealt into valid and test up to the params fractions (the rest is train), so
every split keeps the categories' proportions; with no near-duplicates this
is a plain seeded stratified split. Each curriculum stage gets a folder with
the train and valid rows of its categories. Every output folder is one
``mlx_lm.lora --data`` accepts unchanged.

    synthforge merge --input data/enhanced/enhanced.jsonl --out data/merged --report reports/merge.json
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from pathlib import Path

from . import io
from .neardup import near_duplicate_groups
from .params import MergeParams
from .schema import FormatError, call_arguments, call_name, iter_calls, mlx_row, parse_arguments, row_digest

SPLITS = ("train", "valid", "test")


def merge(inputs: list[Path], out_dir: Path, report_path: Path, p: MergeParams, seed: int) -> dict:
    """Write ``out_dir/{train,valid,test}.jsonl`` and ``out_dir/<stage>/``; return the report."""
    rows, duplicates, seen = [], 0, set()
    for path in inputs:
        for row in io.read_rows(path):
            key = row_digest(row)
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            rows.append(row)
    groups = near_duplicate_groups([near_duplicate_doc(r) for r in rows], p.near_duplicate_threshold)
    splits = split(rows, p.valid_fraction, p.test_fraction, seed, groups)
    for name in SPLITS:
        io.write_jsonl(out_dir / f"{name}.jsonl", (mlx_row(r) for r in splits[name]))
    stages = {}
    for stage, categories in p.curriculum.items():
        keep = set(categories)
        stages[stage] = {}
        for name in ("train", "valid"):
            chosen = [r for r in splits[name] if "all" in keep or category(r) in keep]
            stages[stage][name] = io.write_jsonl(out_dir / stage / f"{name}.jsonl", (mlx_row(r) for r in chosen))
    sizes = Counter(groups.tolist())
    report = {
        "rows_in": len(rows) + duplicates, "duplicates": duplicates, "rows": len(rows),
        "near_duplicates": {"threshold": p.near_duplicate_threshold, "groups": sum(n > 1 for n in sizes.values()),
                            "rows_in_groups": sum(n for n in sizes.values() if n > 1),
                            "largest_group": max(sizes.values(), default=0)},
        "category_share_gap": share_gap(splits),
        **{name: len(splits[name]) for name in SPLITS},
        "categories": {name: dict(sorted(Counter(category(r) for r in splits[name]).items())) for name in SPLITS},
        "curriculum": stages,
    }
    io.write_json(report_path, report)
    return report


def category(row: dict) -> str:
    return str(row.get("meta", {}).get("category", "unknown"))


def near_duplicate_doc(row: dict) -> tuple[str, list[str]]:
    """What near-duplicate detection compares: the non-system text and the tool-call signatures."""
    text = " ".join(m["content"] for m in row["messages"]
                    if m.get("role") != "system" and isinstance(m.get("content"), str))
    signatures = []
    for _, call in iter_calls(row["messages"]):
        try:
            keys = sorted(parse_arguments(call_arguments(call)))
        except FormatError:
            keys = []
        signatures.append(f"{call_name(call)}({','.join(keys)})")
    return text, signatures


def split(rows: list[dict], valid_fraction: float, test_fraction: float, seed: int,
          groups=None) -> dict[str, list[dict]]:
    """Seeded shuffle of each category's units (a near-duplicate group, or one row), dealt into valid and test
    while that brings each closer to its share; the rest is train. A group belongs to its first row's category."""
    units: dict[int, list[dict]] = defaultdict(list)
    for i, row in enumerate(rows):
        units[int(groups[i]) if groups is not None else i].append(row)
    by_category: dict[str, list[list[dict]]] = defaultdict(list)
    for unit in units.values():
        by_category[category(unit[0])].append(unit)
    out: dict[str, list[dict]] = {name: [] for name in SPLITS}
    for name in sorted(by_category):
        group = by_category[name]
        random.Random(f"{seed}:{name}").shuffle(group)
        n = sum(len(u) for u in group)
        target = {"valid": round(n * valid_fraction), "test": round(n * test_fraction)}
        taken = {"valid": 0, "test": 0}
        for unit in group:
            side = next((s for s in ("valid", "test") if abs(taken[s] + len(unit) - target[s]) < abs(taken[s] - target[s])),
                        "train")
            if side != "train":
                taken[side] += len(unit)
            out[side] += unit
    for name in SPLITS:
        random.Random(f"{seed}:{name}").shuffle(out[name])
    return out


def share_gap(splits: dict[str, list[dict]]) -> float:
    """Largest difference, in percentage points, between a category's share of a split and of the whole."""
    whole = Counter(category(r) for rows in splits.values() for r in rows)
    total = sum(whole.values())
    gaps = [abs(100 * Counter(category(r) for r in rows)[c] / len(rows) - 100 * whole[c] / total)
            for rows in splits.values() if rows for c in whole]
    return round(max(gaps, default=0.0), 3)
