"""Typed sections of ``params.yaml``.

Each pipeline stage reads one section (plus ``base``) into a frozen
dataclass. Unknown keys, missing keys and wrong types are errors that name
the key, so a typo in ``params.yaml`` fails before any compute is spent.

    >>> from synthforge.params import load_params
    >>> p = load_params("params.yaml")
    >>> p.train.stages["stage1"].iters
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ParamsError(ValueError):
    """A params.yaml value is missing, unknown or of the wrong type."""


@dataclass(frozen=True)
class BaseParams:
    seed: int = field(default=42, metadata={"help": "Seed shared by every stage."})


@dataclass(frozen=True)
class OpenAIParams:
    base_url: str = field(default="http://127.0.0.1:8080/v1", metadata={"help": "OpenAI-compatible endpoint (env SYNTHFORGE_LLM_BASE_URL overrides)."})
    model: str = field(default="default_model", metadata={"help": "Model name sent to the server ('default_model' = what mlx_lm.server was started with; env SYNTHFORGE_LLM_MODEL overrides)."})
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "Environment variable holding the key; the key is never logged."})
    temperature: float = 0.7
    max_tokens: int = 1536
    concurrency: int = field(default=4, metadata={"help": "Requests in flight at once."})
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_s: float = field(default=1.0, metadata={"help": "First retry delay; doubles per attempt (with jitter)."})


@dataclass(frozen=True)
class GenerateParams:
    backend: str = field(metadata={"help": "Row generator: 'template' (deterministic, no model) or 'openai'."})
    categories: dict[str, int | dict[str, int]] = field(metadata={"help": "Rows per category spec, or per sub-category of it."})
    tools: str = field(default="coding_agent", metadata={"help": "Agent: dvc.yaml reads data/tools/<tools>.json and data/specs/<tools>/."})
    tools_per_example: int = field(default=4, metadata={"help": "Tools rendered per row: those it calls plus distractors."})
    faults: dict[str, float] = field(default_factory=dict, metadata={"help": "Fraction of rows deliberately broken, per fault kind (for testing the gates)."})
    openai: OpenAIParams = field(default_factory=OpenAIParams, metadata={"help": "Settings of the 'openai' backend."})

    def category_totals(self) -> dict[str, int]:
        """Rows asked for per category (sub-category counts summed)."""
        return {name: sum(n.values()) if isinstance(n, dict) else n for name, n in self.categories.items()}


@dataclass(frozen=True)
class ValidateParams:
    max_rejected_fraction: float = field(metadata={"help": "The gate fails when a larger share of rows is rejected."})
    category_tolerance: float = field(default=0.05, metadata={"help": "Kept rows per category may differ from generate.categories by this share."})
    min_tool_examples: int = field(default=5, metadata={"help": "Every catalog tool is called in at least this many kept rows."})
    max_tool_share: float = field(default=0.4, metadata={"help": "Warning when one tool takes a larger share of all tool calls."})
    min_user_chars: int = field(default=8, metadata={"help": "Warning for user messages shorter than this."})
    min_session_memory_chars: int = field(default=50, metadata={"help": "Warning for context.sessionMemory shorter than this."})
    max_line_bytes: int = field(default=1048576, metadata={"help": "Longer input lines are rejected unread."})
    allowed_email_domains: list[str] = field(
        default_factory=lambda: ["example.com", "example.org", "example.net"],
        metadata={"help": "E-mail addresses at these domains (and their subdomains) are not personal data."})


@dataclass(frozen=True)
class EnhanceParams:
    min_score: float = field(metadata={"help": "Rows scoring under this mean (1-5) are rewritten; a rewrite is kept only if it scores higher and passes the critical gate."})
    min_dimension: int = field(default=2, metadata={"help": "Rows scoring under this on any dimension are rewritten too (e.g. 1: a placeholder argument)."})
    require_min_score: bool = field(default=True, metadata={"help": "A rewrite must also reach min_score and min_dimension, not only score higher."})
    judge: str = field(default="rules", metadata={"help": "Scorer: 'rules' (deterministic, documented in synthforge.scoring) or 'openai' (an LLM judge)."})
    rewriter: str = field(default="rules", metadata={"help": "Rewriter of weak rows: 'rules' (the repairs in synthforge.repairs) or 'openai' (a model)."})
    max_attempts: int = field(default=2, metadata={"help": "Rewrites tried per row by the 'openai' rewriter (rules: always 1)."})
    rewrite_temperature: float = field(default=0.7, metadata={"help": "Sampling temperature of the 'openai' rewriter (the judge uses openai.temperature)."})
    single_turn: str = field(default="context", metadata={"help": "'context': context-object rows are a single-turn dataset (multi-turn ones are folded into one turn); 'none': leave turns alone."})
    kto: bool = field(default=True, metadata={"help": "Write KTO pairs (original false, accepted rewrite true)."})
    openai: OpenAIParams = field(default_factory=OpenAIParams, metadata={"help": "The judge's OpenAI-compatible server (enhance.judge: openai)."})


@dataclass(frozen=True)
class MergeParams:
    valid_fraction: float = field(metadata={"help": "Share of rows in valid.jsonl."})
    test_fraction: float = field(metadata={"help": "Share of rows in test.jsonl."})
    curriculum: dict[str, list[str]] = field(metadata={"help": "Categories per curriculum stage; 'all' means every category."})
    near_duplicate_threshold: float = field(default=0.8, metadata={"help": "Rows whose text + tool-call signatures reach this estimated Jaccard similarity (MinHash) are near-duplicates and stay on one side of the split."})


@dataclass(frozen=True)
class WarmupParams:
    iters: int = field(metadata={"help": "Full-parameter warm-up iterations of the embedded model."})
    learning_rate: float = field(metadata={"help": "Peak learning rate (10% linear warm-up, then cosine)."})
    batch_size: int = field(default=8, metadata={"help": "Warm-up batch size."})
    val_batches: int = field(default=10, metadata={"help": "Validation batches per evaluation during warm-up (-1 = all)."})


@dataclass(frozen=True)
class ModelParams:
    name: str = field(metadata={"help": "'embedded' builds the tiny default; otherwise an MLX model id or path."})
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 256
    vocab_size: int = 2048
    max_seq_length: int = field(default=1024, metadata={"help": "Longest rendered example used for the warm-up."})
    warmup: WarmupParams = field(default_factory=lambda: WarmupParams(iters=0, learning_rate=3.0e-3))


@dataclass(frozen=True)
class TrainCommon:
    batch_size: int = field(metadata={"help": "Examples per step."})
    max_seq_length: int = field(metadata={"help": "Longer examples are dropped (and counted), never truncated."})
    lora_rank: int = 16
    lora_scale: float = 20.0
    lora_dropout: float = 0.0
    lora_layers: int = field(default=-1, metadata={"help": "Blocks that get LoRA, from the last; -1 = all."})
    grad_checkpoint: bool = False
    steps_per_report: int = 10
    steps_per_eval: int = 50
    save_every: int = field(default=50, metadata={"help": "Checkpoint (adapters + optimizer + iteration) interval."})
    val_batches: int = field(default=-1, metadata={"help": "Validation batches per evaluation; -1 = the whole set."})
    warmup_fraction: float = field(default=0.1, metadata={"help": "Share of a stage's iterations with linear LR warm-up."})
    samples: int = field(default=3, metadata={"help": "Sample generations logged per stage."})


@dataclass(frozen=True)
class StageParams:
    iters: int
    learning_rate: float


@dataclass(frozen=True)
class DistributedParams:
    processes: int = field(default=1, metadata={"help": "Ranks per host; > 1 makes `synthforge train` start "
                                                        "itself through mlx.launch (README, 'Distributed training')."})
    backend: str = field(default="ring", metadata={"help": "mlx.launch backend: ring, mpi, nccl, jaccl."})
    hostfile: str = field(default="", metadata={"help": "mlx.launch hostfile for several machines; '' = this one."})


@dataclass(frozen=True)
class TrainParams:
    common: TrainCommon
    stages: dict[str, StageParams]
    distributed: DistributedParams = field(default_factory=DistributedParams)


@dataclass(frozen=True)
class EvaluateParams:
    max_prompts: int = field(metadata={"help": "Held-out prompts used for tool-call metrics."})
    max_tokens: int = field(default=96, metadata={"help": "Generation budget per prompt."})
    loss_batches: int = field(default=-1, metadata={"help": "Batches of valid/test used for loss (a fixed seeded subset); -1 = all."})
    batch_size: int = 8


@dataclass(frozen=True)
class Params:
    base: BaseParams
    generate: GenerateParams
    validate: ValidateParams
    enhance: EnhanceParams
    merge: MergeParams
    model: ModelParams
    train: TrainParams
    evaluate: EvaluateParams


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and check the whole of ``params.yaml``."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    params = build(Params, raw, str(path))
    _check_cross_sections(params, str(path))
    return params


def build(cls: type, raw: Any, where: str) -> Any:
    """Build dataclass ``cls`` from ``raw``, checking keys and types."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: expected a mapping, got {_kind(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ParamsError(
            f"{where}.{unknown[0]}: unknown key (allowed: {', '.join(fields)})"
        )
    values = {}
    for name, f in fields.items():
        key = f"{where}.{name}"
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ParamsError(f"{key}: missing required key")
            continue
        values[name] = _convert(hints[name], raw[name], key)
    return cls(**values)


def _convert(hint: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key)
    origin = typing.get_origin(hint)
    if origin is dict:
        _, val_hint = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ParamsError(f"{key}: expected a mapping, got {_kind(value)}")
        return {str(k): _convert(val_hint, v, f"{key}.{k}") for k, v in value.items()}
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ParamsError(f"{key}: expected a list, got {_kind(value)}")
        return [_convert(item_hint, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(hint):
            try:
                return _convert(option, value, key)
            except ParamsError as exc:
                errors.append(str(exc))
        raise ParamsError(errors[0])
    return _scalar(hint, value, key)


def _scalar(hint: Any, value: Any, key: str) -> Any:
    if hint is type(None):
        if value is None:
            return None
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            raise ParamsError(
                f"{key}: expected a number, got the string {value!r}"
                " (YAML reads 1e-5 as a string: write 1.0e-5)"
            )
    elif hint is str:
        if isinstance(value, str):
            return value
    name = getattr(hint, "__name__", str(hint))
    raise ParamsError(f"{key}: expected {name}, got {_kind(value)} {value!r}")


def _kind(value: Any) -> str:
    return type(value).__name__


def _check_cross_sections(p: Params, where: str) -> None:
    curriculum, stages = list(p.merge.curriculum), list(p.train.stages)
    if curriculum != stages:
        raise ParamsError(
            f"{where}: merge.curriculum stages {curriculum} and train.stages {stages}"
            " must name the same stages in the same order"
        )
    common = p.train.common
    dist = p.train.distributed
    if dist.backend not in ("ring", "mpi", "nccl", "jaccl", "jaccl-ring"):
        raise ParamsError(f"{where}.train.distributed.backend: {dist.backend!r} is not one of ring, mpi, nccl, jaccl")
    if dist.processes < 1:
        raise ParamsError(f"{where}.train.distributed.processes: {dist.processes} must be at least 1")
    if common.batch_size % dist.processes:
        raise ParamsError(f"{where}.train.common.batch_size: {common.batch_size} is not divisible by "
                          f"train.distributed.processes ({dist.processes}); each rank takes an equal share")
    if common.save_every % common.steps_per_report:
        raise ParamsError(
            f"{where}.train.common.save_every: {common.save_every} must be a multiple"
            f" of train.common.steps_per_report ({common.steps_per_report})"
        )
    for name, count in p.generate.categories.items():
        for sub, n in (count.items() if isinstance(count, dict) else [(None, count)]):
            if n < 0:
                key = f"{name}.{sub}" if sub else name
                raise ParamsError(f"{where}.generate.categories.{key}: must be >= 0, got {n}")
    choices = {"judge": ("rules", "openai"), "rewriter": ("rules", "openai"), "single_turn": ("context", "none")}
    for key, allowed in choices.items():
        if getattr(p.enhance, key) not in allowed:
            raise ParamsError(f"{where}.enhance.{key}: must be one of {', '.join(allowed)},"
                              f" got {getattr(p.enhance, key)!r}")
    if p.enhance.max_attempts < 1:
        raise ParamsError(f"{where}.enhance.max_attempts: must be >= 1, got {p.enhance.max_attempts}")
    if not 1 <= p.enhance.min_score <= 5:
        raise ParamsError(f"{where}.enhance.min_score: must be in [1, 5], got {p.enhance.min_score}")
    if not 0 < p.merge.near_duplicate_threshold <= 1:
        raise ParamsError(f"{where}.merge.near_duplicate_threshold: must be in (0, 1], got {p.merge.near_duplicate_threshold}")
    fractions = p.merge.valid_fraction + p.merge.test_fraction
    if not 0 <= fractions < 1:
        raise ParamsError(
            f"{where}.merge: valid_fraction + test_fraction must be in [0, 1), got {fractions}"
        )
