"""Stage ``train``: one curriculum stage of LoRA training on mlx-lm's trainer.

Each curriculum stage is its own DVC stage, so changing stage 3 does not
re-train stages 1 and 2. A stage:

* loads the base model (``models/base``) and, for stage 2 onward, the
  previous stage's adapters, refusing a rank/scale/layer mismatch (mlx-lm
  loads resumed adapters with ``strict=False`` and would not notice);
* trains the loss on **every assistant turn** (:mod:`synthforge.chat`);
* drops examples longer than ``max_seq_length`` and counts them;
* checkpoints adapters, optimizer state and iteration every ``save_every``
  steps, so an interrupted stage resumes where it stopped;
* logs params, step metrics, the datasets and the adapters to MLflow through
  :mod:`synthforge.tracking`, and writes DVC metrics and loss curves;
* under ``mlx.launch`` trains data-parallel (:mod:`synthforge.distributed`):
  every rank computes, rank 0 alone writes files and MLflow records.

    synthforge train --stage stage2 --base models/base --data data/splits/stage2 \\
        --resume models/adapters/stage1 --out models/adapters/stage2 --report reports/train/stage2
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict
from pathlib import Path

from . import distributed, io
from .params import StageParams, TrainCommon
from .training import TrainError, encode_rows


def adapter_config(common: TrainCommon, num_layers: int, model_name: str) -> dict:
    """``adapter_config.json`` in the form ``mlx_lm.load(adapter_path=...)`` reads."""
    return {
        "fine_tune_type": "lora", "num_layers": num_layers, "model": model_name,
        "lora_parameters": {"rank": common.lora_rank, "scale": common.lora_scale,
                            "dropout": common.lora_dropout},
    }


def check_resume(resume_dir: Path, expected: dict) -> None:
    """Refuse adapters whose rank, scale or layer count differ from this stage's."""
    path = resume_dir / "adapter_config.json"
    if not path.exists():
        raise TrainError(f"{path}: not found; train the previous stage first (dvc repro)")
    found = json.loads(path.read_text(encoding="utf-8"))
    pairs = [("num_layers", found.get("num_layers"), expected["num_layers"])]
    for key in ("rank", "scale", "dropout"):
        pairs.append((f"lora {key}", found.get("lora_parameters", {}).get(key),
                      expected["lora_parameters"][key]))
    for name, was, now in pairs:
        if key_differs(was, now):
            raise TrainError(
                f"{path}: {name} is {was} but this stage is configured with {now};"
                " rank, scale and number of layers must match across curriculum stages"
            )


def key_differs(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return not math.isclose(a, b)
    return a != b


def load_adapter_weights(model, path: Path) -> None:
    """Load resumed adapters after checking every key and shape against the model."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    weights = mx.load(str(path))
    params = dict(tree_flatten(model.trainable_parameters()))
    missing = sorted(set(params) - set(weights))
    extra = sorted(set(weights) - set(params))
    wrong = [k for k in params if k in weights and weights[k].shape != params[k].shape]
    if missing or extra or wrong:
        detail = (f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}" if extra
                  else f"{wrong[0]} has shape {tuple(weights[wrong[0]].shape)}, model expects {tuple(params[wrong[0]].shape)}")
        raise TrainError(f"{path}: adapters do not fit this model/LoRA config: {detail}")
    model.load_weights(list(weights.items()), strict=False)


def stage_params_dict(stage: str, common: TrainCommon, sp: StageParams) -> dict:
    return {"stage": stage, **asdict(common), **asdict(sp)}


def train_stage(*, stage: str, base_dir: Path, data_dir: Path, out_dir: Path, report_dir: Path,
                checkpoint_dir: Path, common: TrainCommon, sp: StageParams, seed: int,
                resume_dir: Path | None = None, prev_run_file: Path | None = None,
                params_path: Path = Path("params.yaml")) -> dict:
    """Train one curriculum stage; write adapters, metrics and curves; return metrics."""
    import mlx.core as mx
    from mlx_lm.tuner.utils import linear_to_lora_layers

    from . import model as base_model
    from . import tracking
    from .training import Checkpointer, Curves, Fanout, build_optimizer, eval_loss, fingerprint, fit
    from .training import folder_digest

    rank, size = distributed.world()
    primary = rank == 0
    if primary:
        tracking.preflight()  # an unreachable MLflow server fails here, before any compute
    mx.random.seed(seed)  # the same LoRA initialisation on every rank
    model, tokenizer = base_model.load(base_dir)
    num_layers = len(model.layers) if common.lora_layers == -1 else common.lora_layers
    if num_layers > len(model.layers):
        raise TrainError(f"train.common.lora_layers={num_layers} but the model has {len(model.layers)} layers")
    config = adapter_config(common, num_layers, base_model.resolve(base_dir))
    if resume_dir:
        check_resume(resume_dir, config)
    model.freeze()
    linear_to_lora_layers(model, num_layers, config["lora_parameters"])
    if resume_dir:
        load_adapter_weights(model, resume_dir / "adapters.safetensors")

    train, valid = (encode_rows(tokenizer, data_dir / f"{n}.jsonl", common.max_seq_length) for n in ("train", "valid"))
    train_set, val_set = train.examples, valid.examples
    inputs = {f"{data_dir}/{n}": io.file_md5(data_dir / n) for n in ("train.jsonl", "valid.jsonl")}
    prev = json.loads(prev_run_file.read_text()) if prev_run_file and prev_run_file.exists() else {}
    fp = fingerprint(stage_params_dict(stage, common, sp), seed, inputs, folder_digest(base_dir),
                     folder_digest(resume_dir) if resume_dir else None)
    optimizer = build_optimizer(sp.learning_rate, sp.iters, common.warmup_fraction)
    done = resume_point(checkpoint_dir, fp, model, optimizer)
    offset = int(prev.get("last_step", 0))
    if primary:
        out_dir.mkdir(parents=True, exist_ok=True)
        report_dir.mkdir(parents=True, exist_ok=True)

    params = {**stage_params_dict(stage, common, sp), "model": config["model"], "seed": seed,
              "dvc_md5": inputs, "resumed_from_adapters": str(resume_dir or ""),
              "examples.train": len(train_set), "examples.valid": len(val_set),
              "dropped_too_long.train": train.dropped, "dropped_too_long.valid": valid.dropped,
              "resumed_at_iteration": done, **distributed_params(common, sp, size)}
    with tracking.stage_run(stage, params, resumed_from=prev.get("run_id"), params_path=params_path,
                            enabled=primary) as run:
        if primary:
            run.log_dataset(data_dir / "train.jsonl", train.rows, inputs[f"{data_dir}/train.jsonl"], "training")
            run.log_dataset(data_dir / "valid.jsonl", valid.rows, inputs[f"{data_dir}/valid.jsonl"], "validation")
        curves = Curves(offset + done)
        checkpointer = Checkpointer(checkpoint_dir, model, optimizer, common.save_every, done, fp=fp) if primary else None
        callback = Fanout(curves, tracking.MLflowCallback(run, offset + done), checkpointer)
        if done < sp.iters:
            fit(model, optimizer, train_set, val_set, iters=sp.iters, batch_size=common.batch_size,
                max_seq_length=common.max_seq_length, seed=seed, skip=done,
                steps_per_report=common.steps_per_report, steps_per_eval=common.steps_per_eval,
                val_batches=common.val_batches, grad_checkpoint=common.grad_checkpoint,
                adapter_file=out_dir / "adapters.safetensors", callback=callback)
        metrics = {
            "val_loss": eval_loss(model, val_set, common.batch_size, common.max_seq_length),  # every rank: a collective
            "train_loss": curves.last.get("train_loss", float("nan")),
            "tokens_per_second": curves.last.get("tokens_per_second", float("nan")),
            "iters": sp.iters, "resumed_at_iteration": done,
            "examples_train": len(train_set), "examples_valid": len(val_set),
            "dropped_too_long": train.dropped + valid.dropped, "rows_train": len(train.rows), "rows_valid": len(valid.rows),
        }
        if not primary:
            return metrics
        io.write_json(out_dir / "adapter_config.json", config)
        run.log_metrics({"final_val_loss": metrics["val_loss"]}, step=offset + sp.iters)
        run.log_artifacts(out_dir, "adapters")
        run.log_text(samples(model, tokenizer, data_dir / "valid.jsonl", common.samples), "samples.md")
        curves.write(report_dir)
        io.write_json(report_dir / "metrics.json", metrics)
        io.write_json(report_dir / "run.json", {"run_id": run.run_id, "last_step": offset + sp.iters})
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return metrics


def distributed_params(common: TrainCommon, sp: StageParams, size: int) -> dict:
    """What data parallelism does to the optimisation: the global batch is split, not multiplied."""
    return {"distributed.world_size": size, "distributed.per_rank_batch_size": common.batch_size // size,
            "effective_batch_size": common.batch_size, "effective_learning_rate": sp.learning_rate}


def resume_point(checkpoint_dir: Path, fp: str, model, optimizer) -> int:
    """Iterations already done by a matching checkpoint, used only if every rank sees the same one."""
    from .training import checkpoint_iteration, load_checkpoint

    found = checkpoint_iteration(checkpoint_dir, fp)
    if not distributed.same_everywhere(found):
        print(f"{checkpoint_dir}: not every rank sees this checkpoint; training from iteration 0", flush=True)
        return 0
    if found or distributed.world()[0] == 0:  # rank 0 also clears a stale checkpoint
        return load_checkpoint(checkpoint_dir, fp, model, optimizer)
    return 0


def samples(model, tokenizer, path: Path, n: int) -> str:
    """A few generations on validation prompts, as Markdown."""
    from .chat import prompt_for_first_call
    from .toolcalls import generate_reply

    parts = ["# Sample generations\n"]
    for row in io.read_rows(path):
        if len(parts) > n:
            break
        found = prompt_for_first_call(row)
        if found is None:
            continue
        prompt, expected = found
        reply = generate_reply(model, tokenizer, prompt, row.get("tools"), max_tokens=96)
        parts.append(f"## {row.get('meta', {}).get('id', '')}\n\n**user:** {prompt[-1]['content']}\n\n"
                     f"**expected:** `{json.dumps(expected['tool_calls'][0]['function'])}`\n\n**model:**\n```\n{reply}\n```\n")
    return "\n".join(parts)
