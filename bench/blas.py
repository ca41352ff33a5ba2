"""Benchmark: MLX on a Linux CPU with the bundled reference BLAS and with a fast one, interleaved.

For the embedded default model and a larger tiny model (hidden 256, 4 layers):

1. matmul GFLOP/s at the model's real shapes: every forward projection of one
   layer and the LM head, at ``--rows`` token rows (batch x sequence);
2. training tokens/s of ``synthforge train`` (one LoRA stage, the real data);

plus the machine's peak (cores x clock x FP32 FLOPs per cycle from the CPU's
vector flags) and the best GEMM measured (2048^3), so the figures can be read
against the limit. Every measurement runs in a fresh process, reference
(``SYNTHFORGE_BLAS=off``) and fast (the library ``synthforge`` preloads)
alternating, so machine noise hits both.

Run after ``dvc repro`` (it needs models/base and data/splits):

    python bench/blas.py --iters 20 --iters-larger 6 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from child import run_child, train_synthforge  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LARGER = {"hidden_size": 256, "num_layers": 4, "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 1024}


def shapes(cfg: dict, rows: int) -> dict[str, tuple[int, int, int]]:
    """(M, K, N) of one layer's projections and the LM head."""
    h, i, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = h // cfg["num_attention_heads"] * cfg["num_key_value_heads"]
    return {"q,o": (rows, h, h), "k,v": (rows, h, kv), "gate,up": (rows, h, i), "down": (rows, i, h),
            "lm_head": (rows, h, v)}


def child_matmul(spec: dict) -> dict:
    import mlx.core as mx

    out = {}
    for name, (m, k, n) in spec.items():
        a, b = mx.random.normal((m, k)), mx.random.normal((k, n))
        mx.eval(a @ b)
        reps, tic = 0, time.perf_counter()
        while time.perf_counter() - tic < 0.5 or reps < 3:
            mx.eval(a @ b)
            reps += 1
        out[name] = 2 * m * k * n * reps / (time.perf_counter() - tic) / 1e9
    return out


def peak_gflops() -> tuple[float, str]:
    """Cores x clock x FP32 FLOPs per cycle (two FMA units of the widest vector), from /proc/cpuinfo."""
    info = Path("/proc/cpuinfo").read_text()
    flags = set(next(line for line in info.splitlines() if line.startswith("flags")).split())
    mhz = max(float(line.split(":")[1]) for line in info.splitlines() if line.startswith("cpu MHz"))
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    per_cycle = lanes * 2 * (2 if "fma" in flags or "avx512f" in flags else 1)
    cores = os.cpu_count()
    return cores * mhz / 1e3 * per_cycle, f"{cores} cores x {mhz / 1e3:.2f} GHz x {per_cycle} FLOP/cycle"


def environments() -> dict[str, dict]:
    from synthforge.blas import DONE, fast_library

    lib = fast_library()
    if lib is None:
        raise SystemExit("no fast BLAS found: install libopenblas0-pthread or set SYNTHFORGE_BLAS")
    base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", DONE)}
    return {"reference": {**base, "SYNTHFORGE_BLAS": "off"},
            "fast": {**base, "LD_PRELOAD": lib, DONE: lib}}


def larger_model(work: Path) -> Path:
    """A random-init hidden-256, 4-layer model with the embedded default's tokenizer."""
    from synthforge import model
    from synthforge.params import ModelParams

    out = work / "larger"
    shutil.copytree(ROOT / "models/base", out, ignore=shutil.ignore_patterns("model.safetensors", "config.json"))
    cfg = json.loads((ROOT / "models/base/config.json").read_text())
    p = ModelParams(name="embedded", **LARGER)
    model.init_model(model.model_config(p, cfg["vocab_size"], cfg["eos_token_id"]), 0, out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=2048, help="token rows of the matmuls (batch x sequence)")
    parser.add_argument("--iters", type=int, default=20, help="training iterations of the default model")
    parser.add_argument("--iters-larger", type=int, default=6,
                        help="training iterations of the hidden-256 model (about 30x the compute per token)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--stage", default="stage1")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_matmul(json.loads(args.child))))
        return

    envs = environments()
    peak, how = peak_gflops()
    gemm = {"gemm 2048^3": (2048, 2048, 2048)}
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        bases = {"default": ROOT / "models/base", "hidden256": larger_model(Path(tmp))}
        models = {name: json.loads((base / "config.json").read_text()) for name, base in bases.items()}
        for rep in range(args.repeats):
            for model_name, cfg in models.items():
                for blas, env in envs.items():
                    mm = run_child(__file__, ["--child", json.dumps({**shapes(cfg, args.rows), **gemm})], env=env)

                    def change(raw: dict, iters=args.iters if model_name == "default" else args.iters_larger):
                        raw["train"]["stages"][args.stage]["iters"] = iters
                        raw["train"]["common"].update(steps_per_report=2, save_every=2, steps_per_eval=10**6,
                                                      val_batches=1, samples=0)

                    r = train_synthforge(bases[model_name], ROOT / "data/splits" / args.stage,
                                         Path(tmp) / f"{model_name}-{blas}-{rep}", change, env=env, stage=args.stage)
                    row = {"model": model_name, "blas": blas, "matmul_gflops": mm,
                           "tokens_per_second": statistics.mean(r["tokens_per_second"][1:] or r["tokens_per_second"]),
                           "final_train_loss": r["train_loss"][-1], "wall_s": r["wall_s"], "blas_line": r["blas"]}
                    print(json.dumps(row), flush=True)
                    results.setdefault((model_name, blas), []).append(row)

    print(f"\npeak estimate: {peak:.0f} GFLOP/s ({how}); rows per matmul: {args.rows}; mean of {args.repeats}")
    for model_name in models:
        print(f"\n{model_name}:")
        names = list(results[(model_name, "fast")][0]["matmul_gflops"])
        for name in names + ["tokens/s (training)"]:
            vals = {}
            for blas in envs:
                rows = results[(model_name, blas)]
                vals[blas] = statistics.mean(r["tokens_per_second"] if name.startswith("tokens")
                                             else r["matmul_gflops"][name] for r in rows)
            unit = "" if name.startswith("tokens") else f" GFLOP/s ({vals['fast'] / peak:.0%} of peak)"
            print(f"  {name:22s} reference {vals['reference']:9.1f}  fast {vals['fast']:9.1f}{unit}"
                  f"  x{vals['fast'] / vals['reference']:.1f}")


if __name__ == "__main__":
    main()
