"""A shared tracking store: `mlflow server` on 127.0.0.1 with a SQL backend and served artifacts.

The train stage, pointed at the server by MLFLOW_TRACKING_URI, logs params, metrics and
adapters; a second client downloads the adapters and generates with them through
mlx_lm. An unreachable server stops `synthforge train` before the model is loaded,
unless SYNTHFORGE_TRACKING_FALLBACK=local sends the run to the local store.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner

from conftest import CATALOG, ROOT, SPECS, free_port, serving, write_stage_params
from synthforge.cli import main


@pytest.fixture
def mlflow_server(tmp_path):
    """`mlflow server` with a sqlite backend and proxied artifacts in tmp_path/artifacts."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
           "--serve-artifacts", "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1",
           "--port", str(port), "--workers", "1"]
    with serving(cmd, f"{url}/health", tmp_path / "server.log", timeout=180):
        yield url, tmp_path / "artifacts"


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    write_stage_params(folder, 4, batch_size=2)
    (folder / "dvc.yaml").write_text("stages: {}\n")  # marks the project root (the local store lives there)
    monkeypatch.chdir(folder)
    return folder


def train(model: Path, merged_splits: Path):
    args = ["train", "--stage", "stage1", "--base", str(model), "--data", str(merged_splits / "stage1"), "--out", "out",
            "--report", "report", "--checkpoints", "checkpoints"]
    return CliRunner().invoke(main, args)


def test_train_logs_to_the_server_and_a_second_client_loads_the_adapters(
        project, mlflow_server, tiny_model_dir, merged_splits, monkeypatch, tmp_path):
    from mlx_lm import generate, load

    url, artifacts = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    result = train(tiny_model_dir, merged_splits)
    assert result.exit_code == 0, result.output
    run_id = json.loads((project / "report" / "run.json").read_text())["run_id"]

    other = mlflow.MlflowClient(tracking_uri=url)  # a second client: only the server's address
    run = other.get_run(run_id)
    assert run.data.params["stage"] == "stage1" and run.data.params["lora_rank"] == "4"
    assert [m.step for m in other.get_metric_history(run_id, "train_loss")] == [2, 4]
    assert any(artifacts.rglob("adapters.safetensors"))  # stored by the server, not by the client
    assert not (project / "mlartifacts").exists() and not (project / "mlflow.db").exists()

    downloaded = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="adapters",
                                                          dst_path=str(tmp_path / "download"), tracking_uri=url))
    for name in ("adapters.safetensors", "adapter_config.json"):
        assert (downloaded / name).read_bytes() == (project / "out" / name).read_bytes()
    model, tokenizer = load(str(tiny_model_dir), adapter_path=str(downloaded))
    text = generate(model, tokenizer, prompt="Where is parse_config defined?", max_tokens=4)
    assert isinstance(text, str) and text


def test_unreachable_server_stops_training_before_any_compute(project, tiny_model_dir, merged_splits, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    result = train(tiny_model_dir, merged_splits)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"MLflow tracking server {url} does not answer (ConnectionError)" in result.output
    assert "SYNTHFORGE_TRACKING_FALLBACK=local" in result.output
    assert not (project / "out").exists() and not (project / "report").exists()


def test_fallback_logs_locally_and_says_so(project, tiny_model_dir, merged_splits, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("SYNTHFORGE_TRACKING_FALLBACK", "local")
    result = train(tiny_model_dir, merged_splits)
    assert result.exit_code == 0, result.output
    assert f"MLflow server {url} does not answer" in result.output and "mlflow.db instead" in result.output
    run_id = json.loads((project / "report" / "run.json").read_text())["run_id"]
    local = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    assert local.get_run(run_id).data.params["stage"] == "stage1"
    assert {a.path for a in local.list_artifacts(run_id, "adapters")} >= {"adapters/adapters.safetensors"}


def test_a_data_stage_checks_the_server_before_its_work(tmp_path, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    out = tmp_path / "generated.jsonl"
    result = CliRunner().invoke(main, ["generate", "--specs", str(SPECS), "--tools", str(CATALOG), "--out", str(out),
                                       "--params", str(ROOT / "params.yaml")])
    assert result.exit_code == 1 and f"MLflow tracking server {url} does not answer" in result.output
    assert not out.exists()
