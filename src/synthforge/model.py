"""Stages ``tokenizer`` and ``build-model``: the embedded default base model, or a reference to a real one.

With ``model.name: embedded`` it builds a tiny Qwen2-architecture MLX model
that needs no download: a byte-level BPE tokenizer trained with
``tokenizers`` on the training split (stage ``tokenizer``, so the splits
gate can count tokens before any training), a ChatML chat template that renders
``tools`` and ``tool_calls`` as Qwen2.5 does, random weights from
``base.seed``, then a short warm-up that trains *all* parameters (embeddings
included) on the training split, because LoRA on a random base barely
learns. The folder loads with ``mlx_lm.load``.

With any other ``model.name`` (an MLX model id or path) it only writes
``reference.json`` naming it; training and evaluation load that model.

    synthforge tokenizer --train data/merged/train.jsonl --out models/tokenizer
    synthforge build-model --tokenizer models/tokenizer --train data/splits/train.jsonl \\
        --valid data/splits/valid.jsonl --out models/base --report reports/build-model
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from importlib import resources
from pathlib import Path

from . import io
from .params import ModelParams

REFERENCE = "reference.json"
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MARKUP = ["<tool_call>", "</tool_call>", "<tools>", "</tools>", "<tool_response>", "</tool_response>"]


def chat_template() -> str:
    return resources.files("synthforge").joinpath("assets/chat_template.jinja").read_text(encoding="utf-8")


def resolve(base_dir: str | Path) -> str:
    """What ``mlx_lm.load`` should open for a built base folder."""
    ref = Path(base_dir) / REFERENCE
    if ref.exists():
        return json.loads(ref.read_text(encoding="utf-8"))["model"]
    return str(base_dir)


def load(base_dir: str | Path, adapter_path: str | Path | None = None):
    """Load (model, tokenizer) of a base folder, optionally with adapters."""
    from mlx_lm.utils import load as mlx_load

    return mlx_load(resolve(base_dir), adapter_path=str(adapter_path) if adapter_path else None)


def write_reference(out_dir: Path, name: str) -> None:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    io.write_json(out_dir / REFERENCE, {"model": name})


# --- tokenizer ---------------------------------------------------------------

def template_texts(rows: list[dict]):
    """Rendered training text (with an HF-compatible jinja env) to train BPE on."""
    import jinja2

    from .schema import for_template

    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda x, indent=None: json.dumps(x, ensure_ascii=False, indent=indent)
    template = env.from_string(chat_template())
    for row in rows:
        yield template.render(messages=for_template(row["messages"]), tools=row.get("tools"),
                              add_generation_prompt=False)


def train_tokenizer(rows: list[dict], vocab_size: int, out_dir: Path) -> int:
    """Train a byte-level BPE tokenizer; write HF tokenizer files; return eos id."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(template_texts(rows), trainer=trainer)
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in MARKUP])
    tok.save(str(out_dir / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": chat_template(),
        "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": None,
        "model_max_length": 32768, "clean_up_tokenization_spaces": False,
    }
    io.write_json(out_dir / "tokenizer_config.json", config)
    return tok.token_to_id("<|im_end|>")


# --- model --------------------------------------------------------------------

def model_config(p: ModelParams, vocab_size: int, eos_id: int) -> dict:
    return {
        "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"],
        "hidden_size": p.hidden_size, "num_hidden_layers": p.num_layers,
        "intermediate_size": p.intermediate_size, "num_attention_heads": p.num_heads,
        "num_key_value_heads": p.num_kv_heads, "vocab_size": vocab_size,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 4096,
        "tie_word_embeddings": True, "eos_token_id": eos_id,
    }


def init_model(config: dict, seed: int, out_dir: Path) -> None:
    """Random-init a Qwen2 model from ``config`` and save it to ``out_dir``."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import qwen2

    mx.random.seed(seed)
    model = qwen2.Model(qwen2.ModelArgs.from_dict(config))
    mx.eval(model.parameters())
    mx.save_safetensors(str(out_dir / "model.safetensors"), dict(tree_flatten(model.parameters())))
    io.write_json(out_dir / "config.json", config)


# --- the stage ---------------------------------------------------------------

def build_tokenizer(*, train_path: Path, out_dir: Path, p: ModelParams) -> dict:
    """Stage ``tokenizer``: train the embedded model's BPE tokenizer (or reference a real model)."""
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if p.name != "embedded":
        write_reference(tmp, p.name)
        info = {"embedded": False, "model": p.name}
    else:
        tmp.mkdir(parents=True)
        train_tokenizer(io.read_rows(train_path), p.vocab_size, tmp)
        from tokenizers import Tokenizer

        info = {"embedded": True, "vocab_size": Tokenizer.from_file(str(tmp / "tokenizer.json")).get_vocab_size()}
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return info


def build_model(*, tokenizer_dir: Path, train_path: Path, valid_path: Path, out_dir: Path, report_dir: Path,
                p: ModelParams, seed: int, params_path: Path = Path("params.yaml")) -> dict:
    """Build the embedded model on ``tokenizer_dir``'s tokenizer (or a reference to a real one)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    if p.name != "embedded":
        write_reference(out_dir, p.name)
        metrics = {"embedded": False, "model": p.name}
        io.write_json(report_dir / "metrics.json", metrics)
        return metrics
    if not (tokenizer_dir / "tokenizer.json").exists():
        raise FileNotFoundError(f"{tokenizer_dir}: no tokenizer.json; run stage tokenizer with model.name: embedded")
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(tokenizer_dir, tmp)
    rows = io.read_rows(train_path)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tmp / "tokenizer.json"))
    init_model(model_config(p, tok.get_vocab_size(), tok.token_to_id("<|im_end|>")), seed, tmp)
    metrics = warm_up(tmp, train_path, valid_path, report_dir, p, seed, params_path, train_rows=rows)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return metrics


def warm_up(folder: Path, train_path: Path, valid_path: Path, report_dir: Path, p: ModelParams,
            seed: int, params_path: Path, train_rows: list[dict] | None = None) -> dict:
    """Train every parameter (embeddings included) on all tokens of the training split."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from .chat import Encoded
    from .tracking import MLflowCallback, stage_run
    from .training import Curves, Fanout, build_optimizer, encode_rows, eval_loss, fit

    w = p.warmup
    mx.random.seed(seed)
    model, tokenizer = load(folder)
    model.unfreeze()
    train = encode_rows(tokenizer, train_path, p.max_seq_length, train_rows)
    train_set, dropped = train.examples, train.dropped
    val_set = encode_rows(tokenizer, valid_path, p.max_seq_length).examples
    lm_set = [Encoded(e.ids, [True] * len(e.ids)) for e in train_set]
    inputs = {str(train_path): io.file_md5(train_path), str(valid_path): io.file_md5(valid_path)}
    params = {"stage": "warmup", "model": asdict(p), "seed": seed, "vocab_size_trained": tokenizer.vocab_size,
              "dvc_md5": inputs, "examples.train": len(train_set), "dropped_too_long": dropped}
    with stage_run("warmup", params, params_path=params_path) as run:
        run.log_dataset(train_path, train.rows, inputs[str(train_path)], "training")
        curves = Curves()
        if w.iters:
            optimizer = build_optimizer(w.learning_rate, w.iters, 0.1, weight_decay=0.01)
            fit(model, optimizer, lm_set, val_set, iters=w.iters, batch_size=w.batch_size,
                max_seq_length=p.max_seq_length, seed=seed, steps_per_report=10,
                steps_per_eval=max(10, w.iters // 4), val_batches=w.val_batches, adapter_file=folder / "warmup.tmp.safetensors",
                callback=Fanout(curves, MLflowCallback(run)))
            (folder / "warmup.tmp.safetensors").unlink(missing_ok=True)
        mx.save_safetensors(str(folder / "model.safetensors"), dict(tree_flatten(model.parameters())))
        metrics = {"val_loss": eval_loss(model, val_set, w.batch_size, p.max_seq_length),
                   "train_loss": curves.last.get("train_loss", float("nan")), "iters": w.iters,
                   "parameters": sum(v.size for _, v in tree_flatten(model.parameters())),
                   "vocab_size": tokenizer.vocab_size, "examples_train": len(train_set)}
        run.log_metrics({"final_val_loss": metrics["val_loss"]}, step=w.iters)
        run.log_artifacts(folder, "model")
        curves.write(report_dir)
        io.write_json(report_dir / "metrics.json", metrics)
        io.write_json(report_dir / "run.json", {"run_id": run.run_id, "last_step": w.iters})
    return metrics
