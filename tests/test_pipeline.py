"""End to end: `dvc repro` on a tiny config in a fresh copy of the project.

One module-scoped run of the whole pipeline (generate -> ... -> evaluate), then
checks on what it left: outputs, MLflow runs, a no-op second repro, a stage-3
change that re-runs only stage 3 and evaluate, mlx_lm accepting the splits, and
a gate failure that stops `dvc repro` at validate. Both gates (validate and
gate-splits) run and leave their reports and Data Docs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from conftest import ROOT, make_bucket

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
# only sources: a checkout where the pipeline already ran must not copy its outputs into git
COPY = ["dvc.yaml", "params.yaml", ".dvcignore", ".dvc/config", ".dvc/.gitignore", "src", "data/specs", "data/tools",
        "data/seed", "expectations"]


def tiny_params(raw: dict) -> dict:
    raw["generate"]["categories"] = {"tool_usage": 30, "powertools": 30, "agentic_skills": 6}
    raw["generate"]["tools_per_example"] = 2
    raw["validate"]["min_tool_examples"] = 0  # 66 rows in 3 categories do not call all 14 tools
    raw["validate"]["category_tolerance"] = 0.1  # data/seed's 15-row categories: its one old-catalog row there is 7%
    raw["merge"]["curriculum"] = {"stage1": ["powertools"], "stage2": ["powertools", "tool_usage"], "stage3": ["all"]}
    raw["model"].update(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64,
                        vocab_size=600, max_seq_length=2048)
    raw["model"]["warmup"] = {"iters": 4, "learning_rate": 3.0e-3, "batch_size": 4}
    raw["train"]["common"].update(batch_size=2, max_seq_length=2048, lora_rank=4, steps_per_report=2,
                                  steps_per_eval=4, save_every=2, val_batches=2, samples=1)
    raw["train"]["stages"] = {name: {"iters": 2, "learning_rate": 1.0e-3} for name in ("stage1", "stage2", "stage3")}
    raw["evaluate"] = {"max_prompts": 2, "max_tokens": 8, "batch_size": 2}
    return raw


ENV: dict[str, str] = {}


def sh(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, **ENV, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}  # os.environ: AWS test keys
    proc = subprocess.run(list(args), cwd=project, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode:
        raise AssertionError(f"{args} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def repro(project: Path, check: bool = True) -> subprocess.CompletedProcess:
    return sh(project, sys.executable, "-m", "dvc", "repro", check=check)


def set_params(project: Path, change) -> None:
    path = project / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    change(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    ENV.update({"MLFLOW_TRACKING_URI": f"sqlite:///{state / 'mlflow.db'}", "DVC_NO_ANALYTICS": "1",
                "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1",
                "DVC_GLOBAL_CONFIG_DIR": str(state / "dvc"), "DVC_SITE_CACHE_DIR": str(state / "site")})
    project = tmp_path_factory.mktemp("project")
    for name in COPY:
        src, dst = ROOT / name, project / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dst) if src.is_dir() else shutil.copy2(src, dst)
    set_params(project, tiny_params)
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        sh(project, "git", *args)
    first = repro(project)
    yield project, first
    ENV.clear()


def test_repro_builds_every_output(project):
    root, first = project
    for stage in ("generate", "validate", "enhance", "merge", "tokenizer", "gate-splits", "card", "build-model",
                  "train-stage1", "train-stage2", "train-stage3", "evaluate"):
        assert f"Running stage '{stage}'" in first.stdout
    for name in ("train", "valid", "test"):
        assert (root / "data" / "splits" / f"{name}.jsonl").stat().st_size > 0
    report = json.loads((root / "reports" / "evaluate.json").read_text())
    assert set(report) >= {"base", "stage1", "stage2", "stage3"}
    assert 0 <= report["stage3"]["tool_name_accuracy"] <= 1 and report["stage3"]["prompts"] == 2
    assert 0 <= report["stage3"]["tool_name_accuracy_balanced"] <= 1
    assert report["majority_baseline"]["tool"] and 0 < report["majority_baseline"]["tool_name_accuracy"] <= 1
    gate = json.loads((root / "reports" / "validate.json").read_text())
    seed_rows = len((ROOT / "data" / "seed" / "legacy_tools.jsonl").read_text().splitlines())
    assert gate["rows_in"] == gate["kept"] + gate["rejected"] == 66 + seed_rows and gate["passed"]
    enhance = json.loads((root / "reports" / "enhance.json").read_text())
    assert enhance["rows_in"] == gate["kept"] == enhance["kept"] + enhance["enhanced"] + enhance["rejected"]
    assert enhance["by_source"]["imported"]["enhanced"] > 0 and (root / "reports" / "enhance" / "scores.png").exists()
    splits = json.loads((root / "reports" / "gate_splits.json").read_text())
    assert splits["rows_in"] == splits["kept"] + splits["rejected"] and splits["passed"]
    assert splits["not_run"] == [] and "fits_max_seq_length" in splits["failures"]
    assert splits["files"]["train.jsonl"] == len((root / "data/splits/train.jsonl").read_text().splitlines())
    card = (root / "reports" / "dataset_card.md").read_text()
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    md5 = next(o["md5"] for o in lock["stages"]["gate-splits"]["outs"] if o["path"] == "data/splits")
    assert f"DVC hash of the splits: `{md5}`" in card and "| in the final splits |" in card
    for figure in ("categories", "tokens", "tools", "scores"):
        assert f"(card/{figure}.png)" in card and (root / "reports" / "card" / f"{figure}.png").stat().st_size > 1000
    for gate_name in ("validate", "gate-splits"):
        assert "critical.rows" in (root / "reports/data_docs" / gate_name / "index.html").read_text()


def test_mlflow_has_one_parent_with_nested_stage_runs(project):
    client = mlflow.MlflowClient(tracking_uri=ENV["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("synthforge")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id}
    assert set(children) == {"generate", "enhance", "card", "warmup", "stage1", "stage2", "stage3", "evaluate"}
    card = children["card"]
    assert card.data.tags["synthforge.data_dvc_md5"].endswith(".dir") and card.data.metrics["rows.train"] > 0
    assert {a.path for a in client.list_artifacts(card.info.run_id, "card")} >= {"card/tokens.png", "card/tools.png"}
    assert children["generate"].data.metrics["rows"] == 66 and "distinct_3" in children["generate"].data.metrics
    for name in ("stage1", "stage2", "stage3"):
        run = children[name]
        assert run.data.params["stage"] == name and "train_loss" in run.data.metrics
        assert client.list_artifacts(run.info.run_id, "adapters")
    assert children["stage2"].data.tags["synthforge.resumed_from_run"] == children["stage1"].info.run_id
    assert children["stage1"].data.tags["synthforge.resumed_from_run"] == children["warmup"].info.run_id


def test_second_repro_does_nothing(project):
    root, _ = project
    again = repro(root)
    assert "Running stage" not in again.stdout


def test_mlx_lm_accepts_merge_output_unchanged(project, tmp_path):
    root, _ = project
    proc = sh(root, str(BIN / "mlx_lm.lora"), "--model", "models/base", "--train", "--data", "data/splits",
              "--iters", "1", "--batch-size", "2", "--num-layers", "-1", "--val-batches", "1",
              "--adapter-path", str(tmp_path / "adapters"), "--max-seq-length", "2048")
    assert (tmp_path / "adapters" / "adapters.safetensors").exists(), proc.stdout[-2000:]


def test_generate_with_adapters(project):
    root, _ = project
    proc = sh(root, str(BIN / "mlx_lm.generate"), "--model", "models/base", "--adapter-path",
              "models/adapters/stage3", "--prompt", "Where is parse_config defined?", "--max-tokens", "4")
    assert "Generation:" in proc.stdout + proc.stderr


def test_push_to_s3_and_a_fresh_clone_pulls_identical_data(project, s3_server, tmp_path):
    """Every data/ file a push may store comes back byte-identical; only push: false outputs stay behind."""
    from synthforge.remote import open_repo, outputs

    root, _ = project
    sh(root, "git", "add", "-A")
    sh(root, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "built")
    sh(root, sys.executable, "-m", "dvc", "remote", "add", "s3", "s3://synthforge/data")
    sh(root, sys.executable, "-m", "dvc", "remote", "modify", "s3", "endpointurl", s3_server)
    make_bucket(s3_server, "synthforge")
    assert "pushed to remote 's3'" in sh(root, str(BIN / "synthforge"), "push", "-r", "s3").stdout
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(root), str(clone))
    sh(clone, sys.executable, "-m", "dvc", "remote", "add", "s3", "s3://synthforge/data")
    sh(clone, sys.executable, "-m", "dvc", "remote", "modify", "s3", "endpointurl", s3_server)
    assert not (clone / "data" / "splits").exists()
    sh(clone, str(BIN / "synthforge"), "pull", "-r", "s3")
    local_only = outputs(open_repo(root)).local_only
    assert "data/generated/generated.jsonl" in local_only and "data/validated/rejected.jsonl" in local_only
    built, pulled = file_hashes(root / "data"), file_hashes(clone / "data")
    stayed = {path for path in built if any(path.startswith(out[len("data/"):]) for out in local_only)}
    assert pulled == {path: digest for path, digest in built.items() if path not in stayed}
    assert any(path.startswith("splits/") for path in pulled) and stayed
    up_to_date = sh(clone, sys.executable, "-m", "dvc", "repro", "--allow-missing", "--dry").stdout
    assert "Running stage" not in up_to_date


def file_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()}


def test_stage3_change_reruns_only_stage3_and_evaluate(project):
    root, _ = project
    set_params(root, lambda raw: raw["train"]["stages"]["stage3"].update(iters=4))
    out = repro(root).stdout
    ran = [line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")]
    assert ran == ["train-stage3", "evaluate"]


def test_broken_arguments_stop_repro_at_validate(project):
    root, _ = project
    before = (root / "reports" / "evaluate.json").read_bytes()
    set_params(root, lambda raw: raw["generate"].update(faults={"broken_arguments": 0.3}))
    proc = repro(root, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "gate failed: rejected_fraction" in out and "tool_arguments_parse" in out
    assert "data/generated/generated.jsonl:" in out
    assert "Running stage 'enhance'" not in out
    assert (root / "reports" / "evaluate.json").read_bytes() == before
