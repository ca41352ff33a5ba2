"""Remote storage: push to a real S3-compatible server, pull in a fresh clone, clear errors.

A small DVC project (one stage, a pushable folder and a ``push: false`` file) is pushed
to ``moto_server`` on 127.0.0.1 or to the default local remote, cloned with git and
pulled through ``synthforge pull``; the pulled files must be byte-identical. The
end-to-end pipeline's own push/pull is in test_pipeline.py.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import ROOT, free_port, make_bucket
from synthforge.cli import main

STAGE = """stages:
  build:
    cmd: python make.py
    deps: [make.py]
    outs:
      - data/splits
      - data/raw.jsonl:
          push: false
"""
MAKE = """from pathlib import Path
Path("data/splits").mkdir(parents=True, exist_ok=True)
for name in ("train", "valid", "test"):
    Path(f"data/splits/{name}.jsonl").write_text("".join(f'{{"n": {i}, "split": "{name}"}}\\n' for i in range(50)))
Path("data/raw.jsonl").write_text('{"raw": true}\\n')
"""


def run(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    if args[0] == "dvc":
        args = (sys.executable, "-m", *args)
    proc = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=300)
    if check and proc.returncode:
        raise AssertionError(f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def commit(cwd: Path, message: str) -> None:
    run(cwd, "git", "add", "-A")
    run(cwd, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)


def hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "data").rglob("*")) if p.is_file() and p.name != ".gitignore"}


@pytest.fixture
def project(tmp_path) -> Path:
    """A built DVC project with this repo's .dvc/config and its dvc.lock committed."""
    root = tmp_path / "project"
    root.mkdir()
    run(root, "git", "init", "-q")
    run(root, "dvc", "init", "-q")
    (root / ".dvc" / "config").write_text((ROOT / ".dvc" / "config").read_text())
    (root / "dvc.yaml").write_text(STAGE)
    (root / "make.py").write_text(MAKE)
    run(root, "dvc", "repro", "-q")
    commit(root, "built")
    return root


def cli(cwd: Path, monkeypatch, *args: str):
    monkeypatch.chdir(cwd)
    return CliRunner().invoke(main, list(args))


def add_s3_remote(root: Path, endpoint: str, bucket: str = "synthforge") -> None:
    run(root, "dvc", "remote", "add", "-d", "s3", f"s3://{bucket}/store")
    run(root, "dvc", "remote", "modify", "s3", "endpointurl", endpoint)
    commit(root, "s3 remote")


def test_push_to_s3_then_a_fresh_clone_pulls_identical_data(project, s3_server, tmp_path, monkeypatch):
    add_s3_remote(project, s3_server)
    make_bucket(s3_server, "synthforge")
    pushed = cli(project, monkeypatch, "push")
    assert pushed.exit_code == 0, pushed.output
    assert "bucket 'synthforge'" in pushed.output and "(push: false): data/raw.jsonl" in pushed.output
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(project), str(clone))
    assert not (clone / "data" / "splits").exists()
    pulled = cli(clone, monkeypatch, "pull")
    assert pulled.exit_code == 0, pulled.output
    want = {k: v for k, v in hashes(project).items() if k != "data/raw.jsonl"}
    assert len(want) == 3 and hashes(clone) == want  # raw.jsonl never left the first machine
    dry = run(clone, "dvc", "repro", "--allow-missing", "--dry")
    assert "Data and pipelines are up to date" in dry.stdout


def test_plain_dvc_pull_fetches_the_same_data_but_fails_on_push_false_outputs(project, s3_server, tmp_path,
                                                                                monkeypatch):
    """Why `synthforge pull` exists: plain `dvc pull` exits 1 on what was never meant to be pushed."""
    add_s3_remote(project, s3_server)
    make_bucket(s3_server, "synthforge")
    assert cli(project, monkeypatch, "push").exit_code == 0
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(project), str(clone))
    plain = run(clone, "dvc", "pull", check=False)
    assert plain.returncode == 1 and "data/raw.jsonl" in plain.stderr and "data/splits" not in plain.stderr
    assert hashes(clone) == {k: v for k, v in hashes(project).items() if k != "data/raw.jsonl"}


def test_default_remote_is_a_local_directory_outside_the_repo(project, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    pushed = cli(project, monkeypatch, "push")
    assert pushed.exit_code == 0, pushed.output
    storage = home / ".local" / "share" / "synthforge" / "dvc-storage"
    assert len([p for p in storage.rglob("*") if p.is_file()]) >= 4  # 3 files + the folder's listing
    clone = tmp_path / "elsewhere" / "clone"
    run(tmp_path, "git", "clone", "-q", str(project), str(clone))
    pulled = cli(clone, monkeypatch, "pull")
    assert pulled.exit_code == 0, pulled.output
    assert f"remote 'storage' ({storage})" in pulled.output
    assert hashes(clone) == {k: v for k, v in hashes(project).items() if k != "data/raw.jsonl"}


@pytest.mark.parametrize("command", [["pull"], ["push"], ["remote", "check"]])
def test_missing_credentials_are_named(project, s3_server, monkeypatch, command):
    add_s3_remote(project, s3_server)
    make_bucket(s3_server, "synthforge")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = cli(project, monkeypatch, *command)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "remote 's3' (s3://synthforge/store): no AWS credentials found" in result.output
    assert "dvc remote modify --local s3 access_key_id" in result.output


def test_missing_bucket_is_named(project, s3_server, monkeypatch):
    add_s3_remote(project, s3_server, bucket="not-there")
    result = cli(project, monkeypatch, "pull")
    assert result.exit_code == 1
    assert f"bucket 'not-there' does not exist at {s3_server}" in result.output
    assert "aws s3 mb s3://not-there" in result.output


def test_unreachable_endpoint_is_named_without_waiting_on_retries(project, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    endpoint = f"http://127.0.0.1:{free_port()}"
    add_s3_remote(project, endpoint)
    result = cli(project, monkeypatch, "push")
    assert result.exit_code == 1
    assert f"remote 's3' (s3://synthforge/store): cannot reach the S3 endpoint {endpoint}" in result.output
    assert "Connection refused" in result.output


def test_check_passes_on_a_working_s3_remote(project, s3_server, monkeypatch):
    add_s3_remote(project, s3_server)
    make_bucket(s3_server, "synthforge")
    result = cli(project, monkeypatch, "remote", "check", "--for", "pull")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (f"ok: remote 's3' (s3://synthforge/store): bucket 'synthforge' at "
                                     f"{s3_server}, credentials from env")


def test_pull_before_any_push_says_so(project, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))
    result = cli(project, monkeypatch, "pull")
    assert result.exit_code == 1
    assert "does not exist, so nothing was pushed there yet" in result.output


def test_pull_without_a_recorded_version_says_commit_dvc_lock(project, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cli(project, monkeypatch, "push").exit_code == 0
    run(project, "git", "rm", "-q", "dvc.lock")
    commit(project, "no lock")
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(project), str(clone))
    result = cli(clone, monkeypatch, "pull")
    assert result.exit_code == 1 and "dvc.lock records no version of data/splits" in result.output


def test_unknown_remote_lists_the_configured_ones(project, monkeypatch):
    result = cli(project, monkeypatch, "pull", "-r", "nope")
    assert result.exit_code == 1 and "no DVC remote named 'nope' (configured: storage)" in result.output


def test_a_missing_dvc_plugin_names_the_extra_to_install(project, monkeypatch):
    import importlib.util

    if importlib.util.find_spec("dvc_gs"):
        pytest.skip("dvc-gs is installed here")
    run(project, "dvc", "remote", "add", "gcs", "gs://bucket/synthforge")
    result = cli(project, monkeypatch, "remote", "check", "-r", "gcs")
    assert result.exit_code == 1 and "the gs backend is not installed" in result.output
    assert "pip install -e '.[gcs]'" in result.output
