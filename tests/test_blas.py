"""The fast-BLAS preload on Linux: when it happens, what it says, and that it changes no loss.

The loss comparison trains the tiny model twice through the ``synthforge`` command,
once with ``SYNTHFORGE_BLAS=off`` (MLX's bundled reference BLAS) and once with the
library synthforge preloads, same seed, and checks the losses agree within 1e-4.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from conftest import loss_curve, run_train, write_stage_params
from synthforge import blas

FAST = blas.fast_library() if sys.platform == "linux" else None


def test_off_setting_and_a_missing_library_mean_no_preload(monkeypatch, tmp_path):
    monkeypatch.setenv(blas.SETTING, "off")
    assert blas.fast_library() is None
    monkeypatch.setenv(blas.SETTING, str(tmp_path / "missing" / "libblas.so.3"))
    assert blas.fast_library() is None
    lib = tmp_path / "libblas.so.3"
    lib.write_bytes(b"")
    monkeypatch.setenv(blas.SETTING, str(lib))
    assert blas.fast_library() == (str(lib) if sys.platform == "linux" else None)


def test_reexec_happens_once_and_never_when_already_preloaded(monkeypatch, tmp_path):
    lib = tmp_path / "libblas.so.3"
    lib.write_bytes(b"")
    monkeypatch.setattr(blas.sys, "platform", "linux")
    monkeypatch.setenv(blas.SETTING, str(lib))
    monkeypatch.delenv(blas.DONE, raising=False)
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    calls = []
    monkeypatch.setattr(blas.os, "execve", lambda path, argv, env: calls.append(env))
    blas.reexec_with_fast_blas(["synthforge-not-executable", "train"])
    assert len(calls) == 1 and calls[0]["LD_PRELOAD"] == str(lib) and calls[0][blas.DONE] == str(lib)
    monkeypatch.setenv(blas.DONE, str(lib))  # what the re-executed process sees
    blas.reexec_with_fast_blas(["synthforge-not-executable", "train"])
    assert len(calls) == 1


def test_macos_is_left_alone(monkeypatch):
    monkeypatch.setattr(blas.sys, "platform", "darwin")
    assert blas.fast_library() is None and blas.notice() == "BLAS: Accelerate/Metal (macOS)"


def test_notice_without_a_fast_library_says_reference_and_where_to_read(monkeypatch, tmp_path):
    monkeypatch.setattr(blas.sys, "platform", "linux")
    monkeypatch.setenv(blas.SETTING, str(tmp_path / "none.so"))
    assert blas.notice() == "BLAS: reference (slow) - install libopenblas0-pthread, see README"


def train(folder: Path, model: Path, data: Path, setting: str | None) -> tuple[list[float], float, str]:
    folder.mkdir()
    write_stage_params(folder, 6, steps_per_eval=100, samples=0)
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", blas.DONE, blas.SETTING)}
    if setting:
        env[blas.SETTING] = setting
    proc = run_train(folder, model, data, env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    losses = loss_curve(folder / "report")
    val = json.loads((folder / "report/metrics.json").read_text())["val_loss"]
    return losses, val, next(line for line in proc.stderr.splitlines() if line.startswith("BLAS: "))


@pytest.mark.skipif(FAST is None, reason="no fast BLAS here, or SYNTHFORGE_BLAS=off "
                                         "(setup.sh installs libopenblas0-pthread)")
def test_losses_agree_with_and_without_the_fast_blas(tmp_path, tiny_model_dir, merged_splits):
    ref_losses, ref_val, ref_line = train(tmp_path / "reference", tiny_model_dir, merged_splits / "stage1", "off")
    fast_losses, fast_val, fast_line = train(tmp_path / "fast", tiny_model_dir, merged_splits / "stage1", None)
    assert ref_line == "BLAS: reference (slow; SYNTHFORGE_BLAS=off)"
    assert fast_line == f"BLAS: {FAST} (preloaded)"
    assert len(ref_losses) == len(fast_losses) == 3
    assert max(abs(a - b) for a, b in zip(ref_losses, fast_losses)) < 1e-4
    assert abs(ref_val - fast_val) < 1e-4
    assert ref_losses[-1] < ref_losses[0]  # it trained
