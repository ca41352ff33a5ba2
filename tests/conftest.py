"""Shared fixtures: isolated MLflow/DVC state, the repo's data, tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "data" / "tools" / "coding_agent.json"
SPECS = ROOT / "data" / "specs" / "coding_agent"


@pytest.fixture(autouse=True)
def isolated_state(tmp_path_factory, monkeypatch):
    """Every test gets its own MLflow store and no DVC/MLflow/HF telemetry or hub access."""
    home = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.setenv("DVC_GLOBAL_CONFIG_DIR", str(home / "dvc-global"))
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", str(home / "dvc-site"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    return home


@pytest.fixture
def catalog():
    from synthforge.catalog import load_catalog

    return load_catalog(CATALOG)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def generated_rows(tmp_path_factory) -> list[dict]:
    """A small generated dataset over two categories (deterministic)."""
    from synthforge.generate import generate
    from synthforge.params import GenerateParams

    out = tmp_path_factory.mktemp("gen") / "rows.jsonl"
    generate(SPECS, CATALOG, out, GenerateParams(backend="template", categories={"powertools": 40, "tool_usage": 40},
                                                 tools_per_example=2), seed=7, progress=False)
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, generated_rows) -> Path:
    """A random-init embedded model (tokenizer + weights, no warm-up)."""
    from tokenizers import Tokenizer

    from synthforge import model
    from synthforge.params import ModelParams

    out = tmp_path_factory.mktemp("tiny-model")
    eos = model.train_tokenizer(generated_rows, 512, out)
    vocab = Tokenizer.from_file(str(out / "tokenizer.json")).get_vocab_size()
    p = ModelParams(name="embedded", hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64)
    model.init_model(model.model_config(p, vocab, eos), 0, out)
    return out
