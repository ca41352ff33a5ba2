"""`synthforge ui` serves the project's MLflow store on 127.0.0.1."""

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import free_port

BIN = Path(sys.executable).parent


def test_ui_serves_the_tracking_store(tmp_path, isolated_state):
    from synthforge import tracking

    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text("x: 1\n")
    with tracking.stage_run("stage1", {"lr": 0.1}, params_path=tmp_path / "params.yaml") as run:
        run.log_metrics({"train_loss": 1.5}, step=1)
    port = free_port()
    proc = subprocess.Popen([str(BIN / "synthforge"), "ui", "--port", str(port)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        body = None
        deadline = time.time() + 90
        while time.time() < deadline and body is None:
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=synthforge")
                body = json.loads(urllib.request.urlopen(req, timeout=5).read())
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(proc.stdout.read().decode()[-2000:])
                time.sleep(1)
        assert body is not None, "the UI did not answer within 90 s"
        assert body["experiment"]["name"] == "synthforge"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
