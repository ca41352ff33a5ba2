"""Shared fixtures: isolated MLflow/DVC state, the repo's data, tiny models."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "data" / "tools" / "coding_agent.json"
SPECS = ROOT / "data" / "specs" / "coding_agent"


@pytest.fixture(autouse=True)
def isolated_state(tmp_path_factory, monkeypatch):
    """Every test gets its own MLflow store, no DVC/MLflow/HF telemetry or hub access, no cloud credentials."""
    home = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.setenv("DVC_GLOBAL_CONFIG_DIR", str(home / "dvc-global"))
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", str(home / "dvc-site"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)  # never a developer's real cloud credentials
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return home


@pytest.fixture
def catalog():
    from synthforge.catalog import load_catalog

    return load_catalog(CATALOG)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_stage_params(folder: Path, iters: int, **train: object) -> Path:
    """This repo's params.yaml in ``folder``, with one curriculum stage ``stage1`` (all rows) of ``iters``
    iterations and a small training set-up; ``train`` overrides keys of train.common, and
    ``distributed=`` sets train.distributed."""
    import yaml

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    common = {"batch_size": 4, "max_seq_length": 1024, "lora_rank": 4, "steps_per_report": 2, "steps_per_eval": 4,
              "save_every": 2, "val_batches": 2, "samples": 1}
    if "distributed" in train:
        raw["train"]["distributed"] = train.pop("distributed")
    raw["train"]["common"].update({**common, **train})
    raw["train"]["stages"] = {"stage1": {"iters": iters, "learning_rate": 1.0e-3}}
    raw["merge"]["curriculum"] = {"stage1": ["all"]}
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_train(folder: Path, model: Path, data: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``python -m synthforge train`` of stage ``stage1`` in ``folder`` (with its params.yaml): adapters in
    ``folder/out``, reports in ``folder/report``."""
    return subprocess.run([sys.executable, "-m", "synthforge", "train", "--stage", "stage1", "--base", str(model),
                           "--data", str(data), "--out", "out", "--report", "report", "--checkpoints", "checkpoints"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=600)


def loss_curve(report_dir: Path) -> list[float]:
    """The train-loss values a training stage wrote to ``report_dir/train_loss.csv``."""
    return [float(line.split(",")[1]) for line in (report_dir / "train_loss.csv").read_text().splitlines()[1:]]


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def generated_rows(tmp_path_factory) -> list[dict]:
    """A small generated dataset over two categories (deterministic)."""
    from synthforge.generate import generate
    from synthforge.params import GenerateParams

    out = tmp_path_factory.mktemp("gen") / "rows.jsonl"
    generate(SPECS, CATALOG, out, GenerateParams(backend="template", categories={"powertools": 40, "tool_usage": 40},
                                                 tools_per_example=2), seed=7, progress=False)
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.fixture(scope="session")
def merged_splits(tmp_path_factory, generated_rows) -> Path:
    """``generated_rows`` merged into train/valid/test, with one curriculum stage ``stage1`` of all rows."""
    from synthforge.merge import merge
    from synthforge.params import MergeParams

    root = tmp_path_factory.mktemp("splits")
    src = write_rows(root / "rows.jsonl", generated_rows)
    merge([src], root / "splits", root / "merge.json",
          MergeParams(valid_fraction=0.1, test_fraction=0.1, curriculum={"stage1": ["all"]}), 0)
    return root / "splits"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, generated_rows) -> Path:
    """A random-init embedded model (tokenizer + weights, no warm-up)."""
    from tokenizers import Tokenizer

    from synthforge import model
    from synthforge.params import ModelParams

    out = tmp_path_factory.mktemp("tiny-model")
    eos = model.train_tokenizer(generated_rows, 512, out)
    vocab = Tokenizer.from_file(str(out / "tokenizer.json")).get_vocab_size()
    p = ModelParams(name="embedded", hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64)
    model.init_model(model.model_config(p, vocab, eos), 0, out)
    return out


@contextlib.contextmanager
def serving(cmd: list[str], probe: str, log: Path, timeout: float = 120):
    """Start a server process, wait until ``probe`` answers over HTTP, stop it afterwards."""
    import urllib.error
    import urllib.request

    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(probe, timeout=2).read()
                break
            except urllib.error.HTTPError:
                break  # it answered
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{cmd[0]} did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.5)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def mlx_server(tiny_model_dir, tmp_path):
    """``mlx_lm.server`` serving the tiny model on 127.0.0.1; its log counts the requests."""
    port = free_port()
    log = tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}/v1"
    cmd = [sys.executable, "-m", "mlx_lm", "server", "--model", str(tiny_model_dir), "--host", "127.0.0.1",
           "--port", str(port)]
    with serving(cmd, f"{url}/models", log):
        yield url, lambda: log.read_text().count("POST /v1/chat/completions")


@pytest.fixture
def s3_server(tmp_path, monkeypatch):
    """A real S3-compatible server (``moto_server``) on 127.0.0.1, with test credentials in the environment."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with serving([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], url,
                 tmp_path / "moto.log"):
        yield url


def make_bucket(endpoint: str, name: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)


# --- headless Chromium without network (Data Docs tests) ------------------------------

# Chromium's own services (component updater, network time, sign-in), which it calls whatever page it opens.
CHROMIUM_HOSTS = re.compile(r"(^|\.)(google\.com|gvt1\.com)$|^update\.googleapis\.com$")


class _Recorder(socketserver.BaseRequestHandler):
    """A proxy that answers every request 502 and notes its first line: what the browser tried to fetch."""

    def handle(self):
        line = self.request.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
        self.server.seen.append(line)
        self.request.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


@pytest.fixture
def offline_browser():
    """``open(path) -> (dom, requests)``: headless Chromium with no network; requests are what the page asked for."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium is not installed (setup.sh installs it on Debian/Ubuntu as root; "
                    "or: sudo apt-get install chromium)")
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Recorder)
    server.daemon_threads, server.seen = True, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    home = Path(tempfile.mkdtemp(prefix="sf-chromium-"))  # short: Chromium's socket path under TMPDIR must be
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(home), "XDG_CONFIG_HOME": str(home / "config"),
           "XDG_CACHE_HOME": str(home / "cache")}

    def open_page(path: Path) -> tuple[str, list[str]]:
        server.seen.clear()
        args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                f"--proxy-server=127.0.0.1:{server.server_address[1]}", "--proxy-bypass-list=<-loopback>",
                f"--user-data-dir={home / 'profile'}", "--dump-dom", path.as_uri()]
        with open(home / "stderr.log", "wb") as log:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, env=env, start_new_session=True)
            try:
                dom, _ = proc.communicate(timeout=90)
            except subprocess.TimeoutExpired:
                dom = b""
            finally:  # the browser and every helper process it started
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        assert dom.strip(), f"chromium showed nothing for {path.name}: {(home / 'stderr.log').read_text()[-2000:]}"
        hosts = [(line, re.split(r"[ /:]+", line.split(" ", 1)[1].removeprefix("http://"))[0])
                 for line in server.seen if " " in line]
        return dom.decode("utf-8", "replace"), [line for line, host in hosts if not CHROMIUM_HOSTS.search(host)]

    try:
        yield open_page
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(home, ignore_errors=True)
