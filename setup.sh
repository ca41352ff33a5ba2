#!/usr/bin/env bash
# Set up synthforge from scratch: a virtualenv in .venv with the project and its
# test extra, plus (on Debian/Ubuntu as root) OpenBLAS, which makes MLX training
# on Linux CPUs several times faster, and Chromium, which one test uses to open the
# Data Docs offline. Safe to run again. SYNTHFORGE_MLX=cuda installs MLX's CUDA
# backend instead of the CPU one (Linux with an NVIDIA GPU).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
if [ "$(uname -s)" = "Linux" ] && [ ! -e "/usr/lib/$(uname -m)-linux-gnu/openblas-pthread/libblas.so.3" ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "setup: installing libopenblas0-pthread (fast BLAS for MLX on CPU)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas0-pthread) >/dev/null \
      || echo "setup: could not install libopenblas0-pthread; training will use the slow reference BLAS"
  else
    echo "setup: for faster CPU training run: sudo apt-get install libopenblas0-pthread (optional)"
  fi
fi
if [ "$(uname -s)" = "Linux" ] && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "setup: installing chromium (headless browser for the Data Docs test only)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) >/dev/null \
      || echo "setup: could not install chromium; tests/test_datadocs.py will skip its browser check"
  else
    echo "setup: to run the Data Docs browser test run: sudo apt-get install chromium (optional)"
  fi
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ "${SYNTHFORGE_MLX:-cpu}" = "cuda" ]; then
  # mlx-cpu and mlx-cuda-12 install the same files under mlx/: drop the CPU build, then restore CUDA's copies
  .venv/bin/python -m pip install -q -e ".[test,cuda]"
  .venv/bin/python -m pip uninstall -q -y mlx-cpu
  version="$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("mlx"))')"
  .venv/bin/python -m pip install -q --force-reinstall --no-deps "mlx-cuda-12==$version"
  .venv/bin/python -c 'import mlx.core as mx; print("setup: MLX default device:", mx.default_device())'
else
  .venv/bin/python -m pip install -q -e ".[test]"
fi
echo "setup: done (.venv)"
