"""Use an optimized BLAS for MLX on Linux CPUs when one is installed.

The ``mlx[cpu]`` wheel bundles the netlib *reference* BLAS, which is tens of
times slower than OpenBLAS on matrix products. When Debian's
``libopenblas0-pthread`` (or a library named by ``SYNTHFORGE_BLAS``) is
present, the ``synthforge`` command re-executes itself once with that
library in ``LD_PRELOAD`` before MLX is imported. Never on macOS (MLX uses
Metal and Accelerate there), never when the library is missing, never twice.

Settings (environment):
    SYNTHFORGE_BLAS=off         keep the bundled reference BLAS
    SYNTHFORGE_BLAS=/path/libblas.so.3   use this CBLAS library
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

SETTING = "SYNTHFORGE_BLAS"
DONE = "SYNTHFORGE_BLAS_PRELOADED"
CANDIDATES = (
    "/usr/lib/{arch}-linux-gnu/openblas-pthread/libblas.so.3",
    "/usr/lib/{arch}-linux-gnu/openblas-openmp/libblas.so.3",
)


def fast_library() -> str | None:
    """The optimized BLAS to preload, or None (off, missing, or not Linux)."""
    if sys.platform != "linux":
        return None
    setting = os.environ.get(SETTING, "").strip()
    if setting.lower() in ("off", "0", "false", "reference"):
        return None
    if setting:
        return setting if Path(setting).is_file() else None
    arch = platform.machine()
    for pattern in CANDIDATES:
        path = pattern.format(arch=arch)
        if Path(path).is_file():
            return path
    return None


def preloaded() -> str | None:
    """The fast BLAS already in ``LD_PRELOAD`` of this process, if any."""
    lib = fast_library()
    preload = os.environ.get("LD_PRELOAD", "").split(":")
    return lib if lib and lib in preload else None


def reexec_with_fast_blas(argv: list[str]) -> None:
    """Replace this process with itself, the fast BLAS preloaded (at most once)."""
    lib = fast_library()
    if lib is None or os.environ.get(DONE) or preloaded():
        return
    env = dict(os.environ)
    env["LD_PRELOAD"] = ":".join(p for p in (lib, env.get("LD_PRELOAD", "")) if p)
    env[DONE] = lib
    script = argv[0] if argv else ""
    if script and os.access(script, os.X_OK) and not script.endswith(".py"):
        os.execve(script, argv, env)
    os.execve(sys.executable, [sys.executable, "-m", "synthforge", *argv[1:]], env)


def notice() -> str:
    """One line saying which BLAS MLX uses here."""
    if sys.platform == "darwin":
        return "BLAS: Accelerate/Metal (macOS)"
    lib = preloaded()
    if lib:
        return f"BLAS: {lib} (preloaded)"
    if os.environ.get(SETTING, "").lower() in ("off", "0", "false", "reference"):
        return f"BLAS: reference (slow; {SETTING}=off)"
    return "BLAS: reference (slow) - install libopenblas0-pthread, see README"
