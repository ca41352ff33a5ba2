"""Benchmark: tokens/s of `synthforge train` with 1 process and with 2 ring ranks (mlx.launch).

The same curriculum stage, base model, data, global batch and iterations, run as
``train.distributed.processes: 1`` and ``2``, interleaved (1 2 1 2 ...) so machine
noise hits both. Reported per run: the trainer's tokens/s (all ranks together;
the mean over the report windows after the first, which includes compilation),
the whole command's wall time, and the final train loss of both set-ups.

Run after ``dvc repro`` (it needs models/base and data/splits):

    python bench/distributed.py --stage stage1 --iters 30 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from child import train_synthforge  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def one_run(work: Path, processes: int, args) -> dict:
    def change(raw: dict) -> None:
        raw["train"]["stages"][args.stage]["iters"] = args.iters
        raw["train"]["distributed"] = {"processes": processes, "backend": "ring", "hostfile": ""}

    r = train_synthforge(ROOT / "models/base", ROOT / "data/splits" / args.stage, work, change, stage=args.stage)
    speeds = r["tokens_per_second"]
    return {"processes": processes, "tokens_per_second": statistics.mean(speeds[1:] or speeds),
            "wall_s": r["wall_s"], "final_train_loss": r["train_loss"][-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="stage1")
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for processes in (1, 2):
                r = one_run(Path(tmp) / f"{processes}-{rep}", processes, args)
                print(json.dumps(r), flush=True)
                results.append(r)
    print(f"\n{'ranks':>5} {'tokens/s':>10} {'wall s':>8} {'final loss':>10}   (mean of {args.repeats}, {os.cpu_count()} CPUs)")
    for processes in (1, 2):
        rs = [r for r in results if r["processes"] == processes]
        print(f"{processes:>5} {statistics.mean(r['tokens_per_second'] for r in rs):>10.0f}"
              f" {statistics.mean(r['wall_s'] for r in rs):>8.1f} {statistics.mean(r['final_train_loss'] for r in rs):>10.4f}")


if __name__ == "__main__":
    main()
