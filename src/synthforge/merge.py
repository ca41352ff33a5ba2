"""Stage ``merge``: union, exact dedupe, seeded stratified split, curriculum sets.

Rows from every input file are united; exact duplicates (same messages and
tools) are removed, the first kept. Each category is shuffled with
``base.seed`` and split into train/valid/test by the params fractions, so
every split keeps the categories' proportions. Each curriculum stage gets a
folder with the train and valid rows of its categories. Every output folder
is one ``mlx_lm.lora --data`` accepts unchanged.

    synthforge merge --input data/enhanced/enhanced.jsonl --out data/splits --report reports/merge.json
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from pathlib import Path

from . import io
from .params import MergeParams
from .schema import mlx_row, row_digest

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
    splits = split(rows, p.valid_fraction, p.test_fraction, seed)
    for name in SPLITS:
        io.write_jsonl(out_dir / f"{name}.jsonl", (mlx_row(r) for r in splits[name]))
    stages = {}
    for stage, categories in p.curriculum.items():
        keep = set(categories)
        stages[stage] = {}
        for name in ("train", "valid"):
            chosen = [r for r in splits[name] if "all" in keep or category(r) in keep]
            stages[stage][name] = io.write_jsonl(out_dir / stage / f"{name}.jsonl", (mlx_row(r) for r in chosen))
    report = {
        "rows_in": len(rows) + duplicates, "duplicates": duplicates, "rows": len(rows),
        **{name: len(splits[name]) for name in SPLITS},
        "categories": {name: dict(sorted(Counter(category(r) for r in splits[name]).items())) for name in SPLITS},
        "curriculum": stages,
    }
    io.write_json(report_path, report)
    return report


def category(row: dict) -> str:
    return str(row.get("meta", {}).get("category", "unknown"))


def split(rows: list[dict], valid_fraction: float, test_fraction: float, seed: int) -> dict[str, list[dict]]:
    """Seeded shuffle per category, then cut each category by the fractions."""
    by_category: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_category[category(row)].append(row)
    out: dict[str, list[dict]] = {name: [] for name in SPLITS}
    for name in sorted(by_category):
        group = by_category[name]
        random.Random(f"{seed}:{name}").shuffle(group)
        n_valid = round(len(group) * valid_fraction)
        n_test = round(len(group) * test_fraction)
        out["valid"] += group[:n_valid]
        out["test"] += group[n_valid: n_valid + n_test]
        out["train"] += group[n_valid + n_test:]
    for name in SPLITS:
        random.Random(f"{seed}:{name}").shuffle(out[name])
    return out
