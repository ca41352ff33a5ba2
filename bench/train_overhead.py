"""Benchmark: training throughput of ``synthforge train`` against bare mlx-lm.

Same base model, same data folder, same batch size, LoRA rank and iterations;
the two are interleaved (A B A B ...) so machine noise hits both. For each run
it reports the in-loop iterations/s (mean over report windows after the first,
which includes compilation), tokens/s (iterations/s x mean real tokens per
batch, the same factor for both), and the whole command's wall time.
synthforge's own iterations/s come from the MLflow run it logs; bare mlx-lm's
from a ``TrainingCallback`` passed to ``mlx_lm.lora.train_model``. Both use the
same BLAS (the one ``synthforge`` preloads for itself on Linux).

Run after ``dvc repro`` (it needs models/base and data/splits):

    python bench/train_overhead.py --iters 40 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # synthforge from this checkout

MAX_SEQ = 4096  # both keep every example (synthforge drops longer ones, mlx-lm truncates)

BARE = r"""
import json, sys, types
from mlx_lm.lora import CONFIG_DEFAULTS, train_model
from mlx_lm.tuner.callbacks import TrainingCallback
from mlx_lm.tuner.datasets import load_dataset
from mlx_lm.utils import load
cfg = json.loads(sys.argv[1])
args = types.SimpleNamespace(**{**CONFIG_DEFAULTS, **cfg})
model, tok = load(args.model)
train_set, valid_set, _ = load_dataset(args, tok)
class Rec(TrainingCallback):
    def __init__(self): self.its = []
    def on_train_loss_report(self, info): self.its.append(info["iterations_per_second"])
rec = Rec()
train_model(args, model, train_set, valid_set, training_callback=rec)
print("ITS " + json.dumps(rec.its))
"""


def fast_library() -> str | None:
    from synthforge.blas import fast_library as find

    return find()


def mean_tokens_per_example(base: Path, data: Path) -> float:
    from synthforge import model
    from synthforge.training import encode_rows

    _, tokenizer = model.load(base)
    examples = encode_rows(tokenizer, data / "train.jsonl", 10**9).examples
    return statistics.mean(len(e) for e in examples)


def run_synthforge(base: Path, data: Path, iters: int, batch: int, rank: int, work: Path) -> tuple[list[float], float]:
    params = work / "params.yaml"
    text = Path("params.yaml").read_text()
    import yaml

    raw = yaml.safe_load(text)
    raw["train"]["common"].update(batch_size=batch, lora_rank=rank, steps_per_report=10, max_seq_length=MAX_SEQ,
                                  steps_per_eval=10**6, save_every=10**6 - 10**6 % 10, samples=0)
    raw["train"]["stages"]["stage1"] = {"iters": iters, "learning_rate": 2.0e-4}
    params.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    tic = time.perf_counter()
    subprocess.run(["synthforge", "train", "--stage", "stage1", "--base", str(base), "--data", str(data),
                    "--out", str(work / "sf-adapters"), "--report", str(work / "sf-report"),
                    "--checkpoints", str(work / "ckpt"), "--params", str(params)],
                   check=True, env=env, capture_output=True)
    wall = time.perf_counter() - tic
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    run_id = json.loads((work / "sf-report" / "run.json").read_text())["run_id"]
    its = [m.value for m in sorted(client.get_metric_history(run_id, "iterations_per_second"), key=lambda m: m.step)]
    return its, wall


def run_bare(base: Path, data: Path, iters: int, batch: int, rank: int, work: Path) -> tuple[list[float], float]:
    cfg = {"model": str(base), "train": True, "data": str(data), "iters": iters, "batch_size": batch,
           "num_layers": -1, "lora_parameters": {"rank": rank, "scale": 20.0, "dropout": 0.0},
           "learning_rate": 2.0e-4, "steps_per_report": 10, "steps_per_eval": 10**6, "val_batches": 1,
           "save_every": 10**6, "adapter_path": str(work / "bare-adapters"), "max_seq_length": MAX_SEQ,
           "mask_prompt": False, "seed": 42}
    env = dict(os.environ)
    lib = fast_library()  # the same BLAS that the synthforge command preloads for itself
    if lib:
        env["LD_PRELOAD"] = ":".join(p for p in (lib, env.get("LD_PRELOAD", "")) if p)
    tic = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", BARE, json.dumps(cfg)], check=True, capture_output=True, text=True,
                         env=env)
    wall = time.perf_counter() - tic
    line = next(l for l in out.stdout.splitlines() if l.startswith("ITS "))
    return json.loads(line[4:]), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, default=Path("models/base"))
    ap.add_argument("--data", type=Path, default=Path("data/splits/stage3"))
    ap.add_argument("--iters", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    tokens_per_batch = mean_tokens_per_example(a.base, a.data) * a.batch_size
    results = {"synthforge": [], "mlx_lm": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.repeats):
            for name, fn in (("synthforge", run_synthforge), ("mlx_lm", run_bare)):
                work = Path(tmp) / f"{name}-{rep}"
                work.mkdir()
                its, wall = fn(a.base.resolve(), a.data.resolve(), a.iters, a.batch_size, a.rank, work)
                steady = statistics.mean(its[1:] or its)
                results[name].append({"it_per_s": steady, "tokens_per_s": steady * tokens_per_batch, "wall_s": wall})
                print(f"{name:10s} rep {rep}: {steady:.3f} it/s, {steady * tokens_per_batch:,.0f} tok/s, wall {wall:.1f} s",
                      flush=True)
    summary = {k: {m: statistics.mean(r[m] for r in v) for m in ("it_per_s", "tokens_per_s", "wall_s")}
               for k, v in results.items()}
    ratio = summary["synthforge"]["tokens_per_s"] / summary["mlx_lm"]["tokens_per_s"]
    print(json.dumps({"tokens_per_batch": tokens_per_batch, **summary, "ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
