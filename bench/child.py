"""Helpers for benchmarks that measure each contender in a fresh subprocess.

    result = run_child(__file__, ["--child", "plain", ...])   # the child's last stdout line, as JSON
    peak_rss_mb()                                            # inside the child: its own peak RSS
"""

from __future__ import annotations

import json
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


def run_child(script: str, args: list[str]) -> dict:
    """Run ``script args`` with this interpreter; its last stdout line is a JSON result."""
    proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
