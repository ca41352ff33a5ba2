"""Stage gate-splits: the suites again on merged splits, with the model's tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import CATALOG, ROOT, write_rows
from synthforge.gate import GateError
from synthforge.gate_splits import gate_splits
from synthforge.merge import merge
from synthforge.params import MergeParams, ValidateParams

SUITES = [ROOT / "expectations/critical.json", ROOT / "expectations/warning.json"]


@pytest.fixture
def merged(tmp_path, generated_rows) -> Path:
    src = write_rows(tmp_path / "rows.jsonl", generated_rows)
    merge([src], tmp_path / "merged", tmp_path / "merge.json",
          MergeParams(valid_fraction=0.1, test_fraction=0.1,
                      curriculum={"stage1": ["powertools"], "stage2": ["all"]}), seed=42)
    return tmp_path / "merged"


def run(tmp_path, merged, tokenizer_dir, max_seq_length, threshold=1.0):
    return gate_splits(merged, tokenizer_dir, CATALOG, SUITES, tmp_path / "splits", tmp_path / "rejected.jsonl",
                       tmp_path / "report.json", None, ValidateParams(max_rejected_fraction=threshold, min_tool_examples=0),
                       max_seq_length=max_seq_length)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_token_rules_run_and_long_rows_leave_every_file(tmp_path, merged, tiny_model_dir):
    from synthforge.chat import encode
    from synthforge.gate_splits import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    lengths = sorted(len(encode(tokenizer, r)) for r in lines(merged / "train.jsonl") + lines(merged / "valid.jsonl")
                     + lines(merged / "test.jsonl"))
    limit = lengths[len(lengths) // 2]  # about half the rows are longer
    verdict, report = run(tmp_path, merged, tiny_model_dir, limit)
    too_long = sum(1 for n in lengths if n > limit)
    assert report["failures"]["fits_max_seq_length"] == too_long == verdict.rejected_rows
    assert report["failures"]["has_trainable_tokens"] == 0 and report["failures"]["end_of_turn_trained"] == 0
    assert report["not_run"] == [] and report["max_seq_length"] == limit
    for name in ("train", "valid", "test"):
        assert all(len(encode(tokenizer, r)) <= limit for r in lines(tmp_path / "splits" / f"{name}.jsonl"))
    kept_train = lines(tmp_path / "splits" / "train.jsonl")
    stage2 = lines(tmp_path / "splits" / "stage2" / "train.jsonl")
    assert stage2 == kept_train  # the curriculum folder lost the same rows
    stage1 = lines(tmp_path / "splits" / "stage1" / "train.jsonl")
    assert stage1 == [r for r in kept_train if r["meta"]["category"] == "powertools"]
    rejected = lines(tmp_path / "rejected.jsonl")
    assert len(rejected) == too_long and all(r["reasons"][0].startswith("fits_max_seq_length: tokens = ") for r in rejected)
    assert report["files"]["train.jsonl"] == len(kept_train) and report["files"]["stage2/train.jsonl"] == len(stage2)
    assert verdict.rows_in == sum(1 for _ in lengths) == verdict.kept + verdict.rejected_rows


def test_all_rows_fit_and_stop_over_the_threshold(tmp_path, merged, tiny_model_dir):
    verdict, report = run(tmp_path, merged, tiny_model_dir, 100_000, threshold=0.0)
    assert verdict.rejected_rows == 0 and report["passed"]
    assert (tmp_path / "splits" / "train.jsonl").read_bytes() == (merged / "train.jsonl").read_bytes()
    with pytest.raises(GateError, match="rejected_fraction"):
        run(tmp_path, merged, tiny_model_dir, 64, threshold=0.1)


def test_missing_tokenizer_is_a_clear_error(tmp_path, merged):
    (tmp_path / "empty").mkdir()
    with pytest.raises(GateError, match="empty: cannot load the tokenizer"):
        run(tmp_path, merged, tmp_path / "empty", 1000)


def test_a_row_the_template_cannot_render_has_nothing_to_train(catalog, generated_rows):
    from synthforge.columns import Flattener, Rules

    class Broken:
        eos_token_id = 1

        def apply_chat_template(self, *args, **kwargs):
            raise ValueError("this template has no tools support")

    record, notes = Flattener(Rules(catalog=catalog, tokenizer=Broken())).row(generated_rows[0])
    assert record["trainable_tokens"] == 0 and record["tokens"] is None
    assert notes["trainable_tokens"] == ["the chat template cannot render this row: this template has no tools support"]
