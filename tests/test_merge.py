"""Merge: exact dedupe, deterministic stratified splits, curriculum folders."""

import json
from collections import Counter

from synthforge.merge import merge
from synthforge.params import MergeParams

from conftest import write_rows

CURRICULUM = {"stage1": ["powertools"], "stage2": ["all"]}


def run(tmp_path, rows, name="out", seed=42):
    src = write_rows(tmp_path / f"{name}.jsonl", rows)
    p = MergeParams(valid_fraction=0.1, test_fraction=0.1, curriculum=CURRICULUM)
    report = merge([src], tmp_path / name, tmp_path / f"{name}.json", p, seed)
    return tmp_path / name, report


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_dedupe_split_and_curriculum(tmp_path, generated_rows):
    rows = generated_rows + generated_rows[:5]
    out, report = run(tmp_path, rows)
    assert report["duplicates"] == 5 and report["rows"] == len(generated_rows)
    splits = {n: read(out / f"{n}.jsonl") for n in ("train", "valid", "test")}
    assert sum(map(len, splits.values())) == len(generated_rows)
    ids = [r["meta"]["id"] for s in splits.values() for r in s]
    assert len(ids) == len(set(ids))
    whole = Counter(r["meta"]["category"] for r in generated_rows)
    train = Counter(r["meta"]["category"] for r in splits["train"])
    for cat, n in whole.items():
        assert abs(train[cat] / len(splits["train"]) - n / len(generated_rows)) < 0.02
    stage1 = read(out / "stage1" / "train.jsonl")
    assert stage1 and {r["meta"]["category"] for r in stage1} == {"powertools"}
    assert read(out / "stage2" / "train.jsonl") == splits["train"]
    assert set(splits["train"][0]) <= {"messages", "tools", "meta"}


def test_same_seed_same_bytes_other_seed_differs(tmp_path, generated_rows):
    a, _ = run(tmp_path, generated_rows, "a")
    b, _ = run(tmp_path, generated_rows, "b")
    c, _ = run(tmp_path, generated_rows, "c", seed=1)
    for name in ("train.jsonl", "valid.jsonl", "test.jsonl", "stage1/train.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "train.jsonl").read_bytes() != (c / "train.jsonl").read_bytes()
