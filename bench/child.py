"""Helpers for benchmarks that measure each contender in a fresh subprocess.

    result = run_child(__file__, ["--child", "plain", ...])   # the child's last stdout line, as JSON
    peak_rss_mb()                                            # inside the child: its own peak RSS
    train_synthforge(base, data, work, change)               # one `synthforge train`, its step metrics
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak RSS. Not ru_maxrss on Linux: it is kept across fork and exec, so a child would
    report the parent's peak (the parent made the data)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: KB, bytes on macOS
    return peak / (2**20 if sys.platform == "darwin" else 1024)


def run_child(script: str, args: list[str], env: dict | None = None) -> dict:
    """Run ``script args`` with this interpreter (and ``env``); its last stdout line is a JSON result."""
    proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, check=False, env=env)
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def train_synthforge(base: Path, data: Path, work: Path, change, env: dict | None = None,
                     stage: str = "stage1") -> dict:
    """Run ``synthforge train`` once with this checkout's params.yaml changed by ``change(raw)``, its MLflow
    store in ``work``; return the per-report step metrics (tokens/s, iterations/s, train loss) and the wall time."""
    import time

    import mlflow
    import yaml

    work.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    change(raw)
    (work / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    uri = f"sqlite:///{work / 'mlflow.db'}"
    env = {**(env if env is not None else os.environ), "MLFLOW_TRACKING_URI": uri}
    cmd = [sys.executable, "-m", "synthforge", "train", "--stage", stage, "--base", str(base), "--data", str(data),
           "--out", str(work / "adapters"), "--report", str(work / "report"), "--checkpoints", str(work / "ckpt"),
           "--params", str(work / "params.yaml")]
    tic = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - tic
    if proc.returncode:
        raise SystemExit(f"synthforge train failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    run_id = json.loads((work / "report" / "run.json").read_text())["run_id"]
    client = mlflow.MlflowClient(tracking_uri=uri)
    history = {key: [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]
               for key in ("tokens_per_second", "iterations_per_second", "train_loss")}
    return {**history, "wall_s": wall, "blas": proc.stderr.split("BLAS: ", 1)[-1].splitlines()[0] if "BLAS: " in proc.stderr else ""}
