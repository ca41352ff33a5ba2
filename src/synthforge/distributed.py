"""Data-parallel training on MLX's own launcher: which rank this process is, and how to start N.

``synthforge train`` runs unchanged under ``mlx.launch``::

    mlx.launch -n 2 --backend ring -- synthforge train --stage stage1 ...

or, with ``train.distributed.processes: 2`` in params.yaml, ``dvc repro`` starts
``synthforge train`` once and it launches itself through ``mlx.launch``. Every rank
reads its shard of each batch (``batching.Batcher`` takes ``batch[rank::size]``, so
``train.common.batch_size`` stays the global batch), mlx-lm's trainer averages the
gradients and all-sums the reported losses, and only rank 0 writes adapters,
checkpoints, DVC metrics and MLflow records.

``mlx.launch`` exits 0 even when a rank fails, so the launching process watches
the ranks' output for rank 0's completion line and for the launcher's
"exited with code" warnings, and exits 1 unless training finished.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

DONE = "synthforge-train: rank 0 of {size} finished"
RANK_ENV = ("MLX_RANK", "OMPI_COMM_WORLD_RANK")
BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def launched() -> bool:
    """True inside a process started by ``mlx.launch`` (ring/jaccl) or ``mpirun``."""
    return any(name in os.environ for name in RANK_ENV)


def world() -> tuple[int, int]:
    """(rank, size) of this process; (0, 1) when not launched."""
    if not launched():
        return 0, 1
    import mlx.core as mx

    group = mx.distributed.init()
    return group.rank(), group.size()


def same_everywhere(value: int) -> bool:
    """Whether every rank holds the same ``value`` (a collective: every rank must call it)."""
    _, size = world()
    if size == 1:
        return True
    import mlx.core as mx

    seen = mx.distributed.all_gather(mx.array([value], dtype=mx.int64), stream=mx.cpu)
    return bool((seen == value).all().item())


def launcher() -> str:
    """Path of ``mlx.launch`` (next to this Python first, then on PATH)."""
    here = Path(sys.executable).parent / "mlx.launch"
    found = str(here) if here.exists() else shutil.which("mlx.launch")
    if not found:
        from .training import TrainError

        raise TrainError("mlx.launch not found: it ships with mlx (pip install -e .)")
    return found


def launch_command(args: list[str], processes: int, backend: str, hostfile: str = "") -> list[str]:
    """``mlx.launch`` running ``python -m synthforge <args>`` on every rank.

    Ranks sharing this machine share its cores: unless the BLAS thread count is already set,
    each rank's BLAS gets ``cores // processes`` threads (oversubscribed, 2 ranks on 2 cores
    trained at 532 tokens/s here; with one thread each, 860)."""
    cmd = [launcher(), "--backend", backend, "-n", str(processes)]
    if hostfile:
        cmd += ["--hostfile", hostfile]
    elif not any(name in os.environ for name in BLAS_THREADS):
        threads = max(1, (os.cpu_count() or 1) // processes)
        cmd += [arg for name in BLAS_THREADS for arg in ("--env", f"{name}={threads}")]
    return cmd + ["--", sys.executable, "-m", "synthforge", *args]


def relaunch(args: list[str], processes: int, backend: str, hostfile: str = "", echo=print) -> int:
    """Run ``synthforge <args>`` under ``mlx.launch``; 0 only if rank 0 finished and no rank failed."""
    cmd = launch_command(args, processes, backend, hostfile)
    echo(f"distributed: {' '.join(cmd[:cmd.index('--')])} -- synthforge {' '.join(args)}")
    finished, failed = False, []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if line.startswith("synthforge-train: rank 0 of "):
                finished = True
            if "exited with code" in line or "was killed" in line:
                failed.append(line.strip())
    if proc.returncode or failed or not finished:
        why = "; ".join(failed) or (f"mlx.launch exited {proc.returncode}" if proc.returncode
                                     else "rank 0 did not report completion")
        echo(f"distributed training failed: {why}")
        return 1
    return 0
