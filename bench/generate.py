"""Benchmark: template-backend generation throughput and peak memory.

Runs ``generate`` (template backend, the repo's specs and params) at the
default size and scaled up, each size in a fresh subprocess so its peak RSS
is its own. Scaling keeps every sub-category's share (largest remainder).
The time includes writing the JSONL and computing the diversity report.

    python bench/generate.py --sizes 2472 100000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def scaled(categories: dict, total: int) -> dict:
    flat = [((c, s), n) for c, subs in categories.items()
            for s, n in (subs.items() if isinstance(subs, dict) else [(None, subs)])]
    whole = sum(n for _, n in flat)
    quotas = [(k, total * n / whole) for k, n in flat]
    counts = {k: int(q) for k, q in quotas}
    for k, q in sorted(quotas, key=lambda kq: counts[kq[0]] - kq[1])[: total - sum(counts.values())]:
        counts[k] += 1
    out: dict = {}
    for (c, s), n in counts.items():
        if s is None:
            out[c] = n
        else:
            out.setdefault(c, {})[s] = n
    return out


def child(size: int, out: Path) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from dataclasses import replace

    from synthforge.generate import generate
    from synthforge.params import load_params

    p = load_params(ROOT / "params.yaml")
    params = replace(p.generate, backend="template", categories=scaled(p.generate.categories, size))
    tic = time.perf_counter()
    report = generate(ROOT / "data/specs" / params.tools, ROOT / "data/tools" / f"{params.tools}.json",
                      out / "rows.jsonl", params, p.base.seed, progress=False, report_path=out / "report.json")
    wall = time.perf_counter() - tic
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": report["rows"], "seconds": round(wall, 2), "rows_per_s": round(report["rows"] / wall),
                      "peak_rss_mb": round(peak_mb), "mb_written": round((out / "rows.jsonl").stat().st_size / 2**20, 1),
                      "distinct_3": report["distinct_3"], "unique_prompt_ratio": report["unique_prompt_ratio"]}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2472, 100_000])
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.child, a.out)
    for size in a.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            res = subprocess.run([sys.executable, __file__, "--child", str(size), "--out", tmp],
                                 check=True, capture_output=True, text=True)
            print(res.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
