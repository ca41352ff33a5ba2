"""Training parts shared by the warm-up and the curriculum stages.

Encoding splits (with too-long examples dropped and counted), the optimizer
and its schedule, and the callbacks handed to mlx-lm's trainer: a fan-out,
loss-curve collection for DVC plots, and checkpoints (adapters, optimizer
state, iteration) that let an interrupted run resume where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import NamedTuple

from . import io
from .chat import encode
from .schema import FormatError


class TrainError(RuntimeError):
    """A stage cannot start or continue; the message says why and what to do."""


class Split(NamedTuple):
    """One split read once: its encoded examples, how many were too long, and the rows."""

    examples: list
    dropped: int
    rows: list[dict]


def encode_rows(tokenizer, path: Path, max_seq_length: int, rows: list[dict] | None = None) -> Split:
    """Read (unless ``rows`` were already read from ``path``) and encode a split; examples over
    ``max_seq_length`` are dropped and counted."""
    rows = io.read_rows(path) if rows is None else rows
    kept, dropped = [], 0
    for n, row in enumerate(rows, start=1):
        try:
            example = encode(tokenizer, row)
        except FormatError as exc:
            raise TrainError(f"{path}:{n}: {exc}") from None
        if len(example) > max_seq_length:
            dropped += 1
        elif example.trained:
            kept.append(example)
    return Split(kept, dropped, rows)


def fingerprint(*parts) -> str:
    """Identity of a training run's inputs, to decide whether a checkpoint applies."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def folder_digest(folder: Path) -> dict[str, str]:
    """md5 of each file of a folder (name and size only for files over 64 MB)."""
    out = {}
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = f.stat().st_size
        out[str(f.relative_to(folder))] = io.file_md5(f) if size < 64 << 20 else f"size:{size}"
    return out


def build_optimizer(learning_rate: float, iters: int, warmup_fraction: float, *, weight_decay: float = 0.0):
    """Adam(W) with linear warm-up then cosine decay over ``iters`` steps."""
    import mlx.optimizers as optim

    warm = max(1, int(iters * warmup_fraction))
    schedule = optim.join_schedules(
        [optim.linear_schedule(learning_rate * 0.01, learning_rate, warm),
         optim.cosine_decay(learning_rate, max(1, iters - warm), learning_rate * 0.1)],
        [warm],
    )
    if weight_decay:
        return optim.AdamW(learning_rate=schedule, weight_decay=weight_decay)
    return optim.Adam(learning_rate=schedule)


class Fanout:
    """Calls every callback of a list (mlx-lm's trainer takes one)."""

    def __init__(self, *callbacks):
        self.callbacks = [c for c in callbacks if c is not None]

    def on_train_loss_report(self, info: dict) -> None:
        for c in self.callbacks:
            c.on_train_loss_report(info)

    def on_val_loss_report(self, info: dict) -> None:
        for c in self.callbacks:
            c.on_val_loss_report(info)


class Curves:
    """Collects the loss curves for DVC plots and the final metrics."""

    def __init__(self, offset: int = 0):
        self.offset, self.train, self.val, self.last = offset, [], [], {}

    def on_train_loss_report(self, info: dict) -> None:
        self.train.append({"step": self.offset + info["iteration"], "train_loss": info["train_loss"]})
        self.last = info

    def on_val_loss_report(self, info: dict) -> None:
        self.val.append({"step": self.offset + info["iteration"], "val_loss": info["val_loss"]})

    def write(self, folder: Path) -> None:
        for name, rows in (("train_loss", self.train), ("val_loss", self.val)):
            with io.atomic_open(folder / f"{name}.csv") as fh:
                fh.write(f"step,{name}\n")
                fh.writelines(f"{r['step']},{r[name]:.6f}\n" for r in rows)


class Checkpointer:
    """Saves adapters + optimizer state + iteration every ``every`` steps."""

    def __init__(self, folder: Path, model, optimizer, every: int, done: int, print_fn=print, *, fp: str):
        self.folder, self.model, self.optimizer = folder, model, optimizer
        self.every, self.done, self.fp, self.print = every, done, fp, print_fn

    def on_train_loss_report(self, info: dict) -> None:
        iteration = self.done + info["iteration"]
        if iteration % self.every == 0:
            self.save(iteration)

    def on_val_loss_report(self, info: dict) -> None:
        pass

    def save(self, iteration: int) -> None:
        import mlx.core as mx
        from mlx.utils import tree_flatten

        tmp = self.folder.with_name(self.folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        mx.save_safetensors(str(tmp / "adapters.safetensors"), dict(tree_flatten(self.model.trainable_parameters())))
        mx.save_safetensors(str(tmp / "optimizer.safetensors"), dict(tree_flatten(self.optimizer.state)))
        io.write_json(tmp / "state.json", {"iteration": iteration, "fingerprint": self.fp})
        shutil.rmtree(self.folder, ignore_errors=True)
        tmp.rename(self.folder)


def checkpoint_iteration(folder: Path, fp: str) -> int:
    """Iterations recorded by the checkpoint in ``folder`` if it belongs to this run (``fp``), else 0."""
    state_file = folder / "state.json"
    if not state_file.exists():
        return 0
    state = json.loads(state_file.read_text(encoding="utf-8"))
    return int(state["iteration"]) if state.get("fingerprint") == fp else 0


def load_checkpoint(folder: Path, fp: str, model, optimizer) -> int:
    """Restore a matching checkpoint; return the iterations already done (0 if none; a stale one is removed)."""
    import mlx.core as mx
    from mlx.utils import tree_unflatten

    done = checkpoint_iteration(folder, fp)
    if not done:
        if (folder / "state.json").exists():
            shutil.rmtree(folder, ignore_errors=True)
        return 0
    model.load_weights(str(folder / "adapters.safetensors"), strict=False)
    optimizer.state = tree_unflatten(list(mx.load(str(folder / "optimizer.safetensors")).items()))
    return done


def fit(model, optimizer, train_set: list, val_set: list, *, iters: int, batch_size: int,
        max_seq_length: int, seed: int, skip: int = 0, steps_per_report: int = 10,
        steps_per_eval: int = 50, val_batches: int = -1, grad_checkpoint: bool = False,
        adapter_file: Path, callback=None) -> None:
    """Run mlx-lm's trainer with per-token masks for ``iters - skip`` more steps."""
    from mlx_lm.tuner.trainer import TrainingArgs, train

    from .batching import Batcher, masked_loss

    if len(train_set) < batch_size:
        raise TrainError(f"only {len(train_set)} training examples fit; need at least one batch of {batch_size}")
    args = TrainingArgs(
        batch_size=batch_size, iters=iters - skip, val_batches=val_batches,
        steps_per_report=steps_per_report, steps_per_eval=steps_per_eval,
        steps_per_save=10**9, max_seq_length=max_seq_length,
        adapter_file=str(adapter_file), grad_checkpoint=grad_checkpoint,
    )
    train(model, optimizer, train_set, val_set if len(val_set) >= batch_size else None, args=args,
          loss=masked_loss, iterate_batches=Batcher(seed=seed, skip=skip), training_callback=callback)


def eval_loss(model, examples: list, batch_size: int, max_seq_length: int, num_batches: int = -1) -> float:
    """Mean masked loss over full batches of ``examples`` (all, or the first ``num_batches`` of a
    fixed seeded order, so every model is scored on the same subset); nan if none."""
    from mlx_lm.tuner.trainer import evaluate

    from .batching import Batcher, masked_loss

    batch_size = min(batch_size, len(examples))
    if not batch_size:
        return float("nan")
    return evaluate(model, examples, batch_size=batch_size, num_batches=num_batches, max_seq_length=max_seq_length,
                    loss=masked_loss, iterate_batches=Batcher(seed=0))
