"""Data-parallel training: `synthforge train` with 2 ring ranks on 127.0.0.1 (mlx.launch).

One module-scoped pair of runs of the same stage on the tiny model, with the same
global batch (4): a single process, and 2 ranks started by `synthforge train` itself
through mlx.launch (train.distributed.processes: 2). An audit hook, loaded into
every rank through ``sitecustomize``, records what ranks other than 0 open for
writing, create, rename or delete, and which databases they connect to.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import mlflow
import pytest
import yaml

from conftest import ROOT, loss_curve, run_train, write_stage_params
from synthforge.params import ParamsError, load_params

AUDIT = '''
import os, sys
if os.environ.get("MLX_RANK", "0") != "0":
    _log = open(os.path.join(os.environ["SYNTHFORGE_TEST_AUDIT"], "rank" + os.environ["MLX_RANK"]), "a")
    if os.environ.get("SYNTHFORGE_TEST_FAIL_RANK") == os.environ["MLX_RANK"]:
        raise SystemExit(3)
    _WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def _hook(event, args):
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = args[1], args[2]
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (mode is None and flags & _WRITE):
                _log.write(f"open {os.fsdecode(args[0])}\\n"); _log.flush()
        elif event in ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "shutil.rmtree",
                       "sqlite3.connect"):
            _log.write(f"{event} {args[0]}\\n"); _log.flush()

    sys.addaudithook(_hook)
'''
# The 2-rank loss is the mean of each rank's per-token mean over its half of the batch; one process
# takes the per-token mean over the whole batch. They differ by how unevenly the tokens split (batches
# are built from length-sorted examples, so little), plus float summation order. Measured: 0.003.
LOSS_TOLERANCE = 0.05


def write_params(folder: Path, processes: int) -> None:
    write_stage_params(folder, 8, distributed={"processes": processes, "backend": "ring"})


def train(folder: Path, model: Path, data: Path, **env: str) -> subprocess.CompletedProcess:
    path = [str(folder.parent / "site"), *filter(None, [os.environ.get("PYTHONPATH")])]
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(path),
               "SYNTHFORGE_TEST_AUDIT": str(folder.parent / "audit"), **env}
    return run_train(folder, model, data, environ)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, merged_splits, tiny_model_dir):
    root = tmp_path_factory.mktemp("distributed")
    (root / "site").mkdir()
    (root / "site" / "sitecustomize.py").write_text(AUDIT)
    (root / "audit").mkdir()
    return root, tiny_model_dir, merged_splits / "stage1"


@pytest.fixture(scope="module")
def runs(setup, tmp_path_factory):
    """The same stage trained by 1 process and by 2 ring ranks, each with its own MLflow store."""
    root, model, data = setup
    out = {}
    for n in (1, 2):
        folder = root / f"ranks{n}"
        folder.mkdir()
        write_params(folder, n)
        db = f"sqlite:///{root / f'mlflow{n}.db'}"
        out[n] = (folder, train(folder, model, data, MLFLOW_TRACKING_URI=db), db)
    return out


def test_two_ring_ranks_train_through_mlx_launch(runs):
    folder, proc, _ = runs[2]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "mlx.launch --backend ring -n 2" in proc.stdout
    assert "synthforge-train: rank 0 of 2 finished" in proc.stdout
    assert proc.stdout.count("train stage1: val_loss") == 1  # only rank 0 reports


def test_one_adapters_folder_and_one_mlflow_run(runs):
    folder, _, db = runs[2]
    assert sorted(p.name for p in (folder / "out").iterdir()) == ["adapter_config.json", "adapters.safetensors"]
    assert json.loads((folder / "report" / "metrics.json").read_text())["iters"] == 8
    client = mlflow.MlflowClient(tracking_uri=db)
    stage_runs = [r for r in client.search_runs([e.experiment_id for e in client.search_experiments()])
                  if r.info.run_name == "stage1"]
    assert len(stage_runs) == 1
    params = stage_runs[0].data.params
    assert params["distributed.world_size"] == "2" and params["distributed.per_rank_batch_size"] == "2"
    assert params["effective_batch_size"] == "4" and params["effective_learning_rate"] == "0.001"
    assert [m.step for m in client.get_metric_history(stage_runs[0].info.run_id, "train_loss")] == [2, 4, 6, 8]


def test_ranks_other_than_0_write_nothing(runs, setup):
    root, _, _ = setup
    log = root / "audit" / "rank1"
    assert log.exists()  # the audit hook ran in rank 1
    writes = [line for line in log.read_text().splitlines()
              if str(root) in line and "/audit/" not in line and "__pycache__" not in line]
    assert writes == []


def test_two_ranks_follow_the_single_process_loss_curve(runs):
    one, two = loss_curve(runs[1][0] / "report"), loss_curve(runs[2][0] / "report")
    assert runs[1][1].returncode == 0 and len(one) == len(two) == 4
    assert max(abs(a - b) for a, b in zip(one, two)) < LOSS_TOLERANCE
    assert one[-1] < one[0] - 0.2  # both actually trained


def test_a_failing_rank_fails_the_stage(setup, tmp_path):
    """mlx.launch itself exits 0 when a rank dies; synthforge must not."""
    _, model, data = setup
    folder = setup[0] / "failing"
    folder.mkdir()
    write_params(folder, 2)
    proc = train(folder, model, data, SYNTHFORGE_TEST_FAIL_RANK="1",
                 MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert proc.returncode == 1
    assert "distributed training failed" in proc.stdout and "rank 1 exited with code" in proc.stdout
    assert not (folder / "out" / "adapter_config.json").exists()


def test_batch_size_must_split_evenly_across_ranks(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["train"]["common"]["batch_size"] = 3
    raw["train"]["distributed"] = {"processes": 2}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match=r"train.common.batch_size: 3 is not divisible by train.distributed.processes"):
        load_params(tmp_path / "params.yaml")
    raw["train"]["distributed"] = {"processes": 1, "backend": "gloo"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match="train.distributed.backend: 'gloo'"):
        load_params(tmp_path / "params.yaml")
