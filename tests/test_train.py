"""Curriculum training: adapters mlx_lm can load, resume, shape checks, MLflow."""

import json
from dataclasses import replace

import mlflow
import numpy as np
import pytest

from synthforge import model, training
from synthforge.params import StageParams, TrainCommon
from synthforge.train import TrainError, train_stage

COMMON = TrainCommon(batch_size=2, max_seq_length=700, lora_rank=4, lora_scale=10.0, steps_per_report=2,
                     steps_per_eval=4, save_every=2, val_batches=2, samples=1)


def run(tmp_path, tiny_model_dir, merged_splits, name="stage1", common=COMMON, iters=4, resume=None, prev=None):
    return train_stage(stage=name, base_dir=tiny_model_dir, data_dir=merged_splits / "stage1", out_dir=tmp_path / name,
                       report_dir=tmp_path / "reports" / name, checkpoint_dir=tmp_path / "ckpt" / name,
                       common=common, sp=StageParams(iters=iters, learning_rate=1.0e-3), seed=0,
                       resume_dir=resume, prev_run_file=prev, params_path=_params(tmp_path))


def _params(tmp_path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "params.yaml"
    path.write_text("x: 1\n")
    return path


def test_stage_writes_loadable_adapters_and_tracks_mlflow(tmp_path, tiny_model_dir, merged_splits):
    metrics = run(tmp_path, tiny_model_dir, merged_splits)
    out = tmp_path / "stage1"
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["lora_parameters"]["rank"] == 4 and config["num_layers"] == 2
    loaded, _ = model.load(tiny_model_dir, out)  # what mlx_lm.generate --adapter-path does
    assert any("lora_a" in k for k, _ in __import__("mlx.utils").utils.tree_flatten(loaded.parameters()))
    assert metrics["dropped_too_long"] > 0  # max_seq_length=700 drops the longest rows, counted
    assert metrics["examples_train"] + metrics["examples_valid"] + metrics["dropped_too_long"] \
        == metrics["rows_train"] + metrics["rows_valid"]
    curve = (tmp_path / "reports" / "stage1" / "train_loss.csv").read_text().splitlines()
    assert curve[0] == "step,train_loss" and len(curve) == 3

    run_id = json.loads((tmp_path / "reports" / "stage1" / "run.json").read_text())["run_id"]
    client = mlflow.MlflowClient()
    r = client.get_run(run_id)
    assert r.data.params["lora_rank"] == "4" and r.data.params["stage"] == "stage1"
    assert any(k.startswith("dvc_md5.") for k in r.data.params)
    assert [m.step for m in client.get_metric_history(run_id, "train_loss")] == [2, 4]
    assert r.data.tags["mlflow.parentRunId"]
    assert {a.path for a in client.list_artifacts(run_id, "adapters")} == {
        "adapters/adapters.safetensors", "adapters/adapter_config.json"}
    assert r.inputs.dataset_inputs[0].dataset.digest
    assert not (tmp_path / "ckpt" / "stage1").exists()


def test_resumed_stage_refuses_mismatched_rank(tmp_path, tiny_model_dir, merged_splits):
    run(tmp_path, tiny_model_dir, merged_splits, iters=2)
    with pytest.raises(TrainError, match="lora rank is 4 but this stage is configured with 8"):
        run(tmp_path, tiny_model_dir, merged_splits, name="stage2", common=replace(COMMON, lora_rank=8),
            resume=tmp_path / "stage1")


def test_stage_chain_tags_resumed_run(tmp_path, tiny_model_dir, merged_splits):
    run(tmp_path, tiny_model_dir, merged_splits, iters=2)
    prev = tmp_path / "reports" / "stage1" / "run.json"
    run(tmp_path, tiny_model_dir, merged_splits, name="stage2", iters=2, resume=tmp_path / "stage1", prev=prev)
    first = json.loads(prev.read_text())
    second = json.loads((tmp_path / "reports" / "stage2" / "run.json").read_text())
    r = mlflow.MlflowClient().get_run(second["run_id"])
    assert r.data.tags["synthforge.resumed_from_run"] == first["run_id"]
    assert second["last_step"] == 4  # steps continue across stages


def test_interrupted_stage_resumes_where_it_stopped(tmp_path, tiny_model_dir, merged_splits, monkeypatch):
    import mlx.core as mx

    whole = tmp_path / "whole"
    run(whole, tiny_model_dir, merged_splits, iters=6)

    original = training.Checkpointer.save

    def save_then_crash(self, iteration):
        original(self, iteration)
        if iteration == 4:
            raise KeyboardInterrupt

    part = tmp_path / "part"
    monkeypatch.setattr(training.Checkpointer, "save", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        run(part, tiny_model_dir, merged_splits, iters=6)
    assert json.loads((part / "ckpt" / "stage1" / "state.json").read_text())["iteration"] == 4
    monkeypatch.setattr(training.Checkpointer, "save", original)
    metrics = run(part, tiny_model_dir, merged_splits, iters=6)
    assert metrics["resumed_at_iteration"] == 4
    a = mx.load(str(whole / "stage1" / "adapters.safetensors"))
    b = mx.load(str(part / "stage1" / "adapters.safetensors"))
    for key in a:
        np.testing.assert_allclose(np.array(a[key]), np.array(b[key]), atol=1e-5)
