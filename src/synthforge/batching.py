"""Batches and loss for mlx-lm's trainer, with per-token masks.

``mlx_lm.tuner.trainer.train`` calls ``loss(model, *batch)`` with whatever
``iterate_batches`` yields; here a batch is ``(tokens, mask)`` and the loss
averages cross-entropy over masked-in target tokens only.

Batches are built from examples sorted by their real length (mlx-lm's own
sort uses the number of keys of a row), shuffled per epoch with a seeded
RNG, and sharded by rank under ``mx.distributed``. ``skip`` fast-forwards the
training stream so a resumed run sees the batches it would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .chat import Encoded


def masked_loss(model, tokens: mx.array, mask: mx.array):
    """Mean cross-entropy over trained target tokens; returns (loss, n_tokens)."""
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    weights = mask[:, 1:].astype(mx.float32)
    logits = model(inputs)
    ce = nn.losses.cross_entropy(logits, targets) * weights
    ntoks = weights.sum()
    return ce.astype(mx.float32).sum() / ntoks, ntoks


@dataclass
class Batcher:
    """An ``iterate_batches`` for the trainer: seeded, resumable, rank-aware."""

    seed: int
    skip: int = 0
    pad_multiple: int = 8

    def __call__(self, dataset: list[Encoded], batch_size: int, max_seq_length: int,
                 loop: bool = False, comm_group=None, **_):
        rank, size = (comm_group.rank(), comm_group.size()) if comm_group is not None else (0, 1)
        if batch_size % size:
            raise ValueError(f"batch size {batch_size} is not divisible by the {size} ranks")
        if len(dataset) < batch_size:
            raise ValueError(f"{len(dataset)} examples are fewer than one batch of {batch_size}")
        order = sorted(range(len(dataset)), key=lambda i: len(dataset[i]))
        batches = [order[i: i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
        rng = np.random.RandomState(self.seed)
        skip = self.skip if loop else 0
        while True:
            for b in rng.permutation(len(batches)):
                if skip:
                    skip -= 1
                    continue
                yield self.collate([dataset[j] for j in batches[b][rank::size]], max_seq_length)
            if not loop:
                return

    def collate(self, examples: list[Encoded], max_seq_length: int):
        longest = max(len(e) for e in examples)
        if longest > max_seq_length:
            raise ValueError(f"an example of {longest} tokens exceeds max_seq_length={max_seq_length};"
                             " long examples must be dropped before batching")
        width = -(-longest // self.pad_multiple) * self.pad_multiple
        tokens = np.zeros((len(examples), width), np.int32)
        mask = np.zeros((len(examples), width), np.bool_)
        for k, e in enumerate(examples):
            tokens[k, : len(e)] = e.ids
            mask[k, : len(e)] = e.mask
        return mx.array(tokens), mx.array(mask)


def split_by_length(examples: list[Encoded], max_seq_length: int) -> tuple[list[Encoded], int]:
    """Examples that fit, and how many were dropped for being too long."""
    kept = [e for e in examples if len(e) <= max_seq_length]
    return kept, len(examples) - len(kept)
