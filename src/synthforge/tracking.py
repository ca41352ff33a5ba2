"""MLflow tracking: the only module that imports mlflow.

Every MLX stage (warm-up, each curriculum stage, evaluation) logs one run.
Runs of one pipeline version (the same ``params.yaml`` at the same git
commit) are nested under one parent run, found again by its tag, so stages
that DVC runs as separate processes still group together. A stage that
resumes from another stage's adapters is tagged with that stage's run id.

The default store is ``sqlite:///<project>/mlflow.db`` with artifacts in
``<project>/mlartifacts``; ``MLFLOW_TRACKING_URI`` switches to a team server
(``mlflow server``). A server that does not answer ``/health`` stops the stage
before any compute (:func:`preflight`), unless ``SYNTHFORGE_TRACKING_FALLBACK=local``
says to log to the local store instead, which is then announced. Telemetry is
off. Step metrics are logged in one batch per report interval (a single
``log_metric`` costs ~8 ms against sqlite).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

from mlx_lm.tuner.callbacks import TrainingCallback

EXPERIMENT = "synthforge"
VERSION_TAG = "synthforge.pipeline_version"
STAGE_TAG = "synthforge.stage"
RESUMED_TAG = "synthforge.resumed_from_run"
ROLE_TAG = "synthforge.role"


def _mlflow():
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    try:
        import mlflow
    except ImportError as exc:  # pragma: no cover - mlflow is a hard dependency
        raise RuntimeError("mlflow is not installed: pip install -e .") from exc
    return mlflow


def project_root(start: Path | None = None) -> Path:
    """The folder holding ``dvc.yaml`` (or the current folder)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").exists():
            return folder
    return here


FALLBACK_ENV = "SYNTHFORGE_TRACKING_FALLBACK"
_checked: dict[str, str] = {}  # configured URI -> URI in use, once per process


class TrackingError(RuntimeError):
    """The tracking server cannot be used; the message says what to do."""


def local_uri(root: Path | None = None) -> str:
    return f"sqlite:///{project_root(root) / 'mlflow.db'}"


def configured_uri(root: Path | None = None) -> str:
    """What the environment asks for: ``MLFLOW_TRACKING_URI``, else the project's local store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or local_uri(root)


def tracking_uri(root: Path | None = None) -> str:
    """The URI in use: the configured one, or the local store after a fallback."""
    configured = configured_uri(root)
    return _checked.get(configured, configured)


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def preflight(timeout: float = 5.0) -> str:
    """The tracking URI to use, after checking that a tracking server answers (once per process)."""
    import requests

    configured = configured_uri()
    if configured in _checked or not is_server(configured):
        return tracking_uri()
    try:
        requests.get(configured.rstrip("/") + "/health", timeout=timeout).raise_for_status()
        _checked[configured] = configured
    except requests.RequestException as exc:
        reason = type(exc).__name__ if isinstance(exc, requests.ConnectionError) else str(exc)
        if os.environ.get(FALLBACK_ENV, "").lower() != "local":
            raise TrackingError(
                f"MLflow tracking server {configured} does not answer ({reason}): start it, fix MLFLOW_TRACKING_URI, "
                f"or set {FALLBACK_ENV}=local to log to this project's mlflow.db instead") from None
        _checked[configured] = local_uri()
        print(f"tracking: MLflow server {configured} does not answer ({reason}); logging to {local_uri()} "
              f"instead ({FALLBACK_ENV}=local)", flush=True)
    return tracking_uri()


def git_commit(root: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_root(root), capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def pipeline_version(params_path: str | Path = "params.yaml") -> str:
    """Identity of a pipeline version: the params file and the git commit."""
    digest = hashlib.sha256(Path(params_path).read_bytes())
    digest.update(git_commit().encode())
    return digest.hexdigest()[:16]


def client():
    mlflow = _mlflow()
    mlflow.set_tracking_uri(preflight())
    return mlflow.MlflowClient()


def experiment_id(c) -> str:
    exp = c.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        return exp.experiment_id
    location = None
    if tracking_uri() == local_uri():
        location = (project_root() / "mlartifacts").as_uri()
    return c.create_experiment(EXPERIMENT, artifact_location=location)


def parent_run(c, exp_id: str, version: str) -> str:
    """The parent run of this pipeline version (created on first use)."""
    query = f"tags.`{VERSION_TAG}` = '{version}' and tags.`{ROLE_TAG}` = 'pipeline'"
    found = c.search_runs([exp_id], filter_string=query,
                          max_results=1, order_by=["attributes.start_time DESC"])
    if found:
        return found[0].info.run_id
    run = c.create_run(exp_id, run_name=f"pipeline-{version[:8]}",
                       tags={VERSION_TAG: version, ROLE_TAG: "pipeline", "mlflow.source.git.commit": git_commit()})
    return run.info.run_id


@contextlib.contextmanager
def stage_run(stage: str, params: dict[str, Any], *, resumed_from: str | None = None,
              params_path: str | Path = "params.yaml", enabled: bool = True) -> Iterator["StageRun"]:
    """A run for one stage, nested under its pipeline version's parent run (a :class:`NullRun`
    when not ``enabled``: the ranks other than 0 of a distributed run)."""
    if not enabled:
        yield NullRun()
        return
    c = client()
    exp_id = experiment_id(c)
    version = pipeline_version(params_path)
    parent = parent_run(c, exp_id, version)
    tags = {"mlflow.parentRunId": parent, VERSION_TAG: version, STAGE_TAG: stage, ROLE_TAG: "stage",
            "mlflow.source.git.commit": git_commit()}
    if resumed_from:
        tags[RESUMED_TAG] = resumed_from
    run = c.create_run(exp_id, run_name=stage, tags=tags)
    handle = StageRun(c, run.info.run_id, parent)
    handle.log_params({"git_commit": git_commit(), **params})
    status = "FAILED"
    try:
        yield handle
        status = "FINISHED"
    finally:
        c.set_terminated(run.info.run_id, status)
        c.set_terminated(parent, "FINISHED")


def log_generation(report: dict, params: dict[str, Any], capability_table: str, *,
                   params_path: str | Path = "params.yaml") -> str:
    """A ``generate`` run: counts, diversity metrics, the capability table."""
    scalars = {k: v for k, v in report.items() if isinstance(v, (int, float))}
    metrics = {**scalars, "turns_per_example": report["turns_per_example"]["mean"],
               "category": report["categories"], "capability": report["capabilities"], "tool": report["tools"],
               "requests": report.get("requests") or {}}
    with stage_run("generate", params, params_path=params_path) as run:
        run.log_metrics(metrics)
        run.log_text(json.dumps(report, indent=2), "generate_report.json")
        run.log_text(capability_table, "capabilities.md")
        return run.run_id


def log_enhance(report: dict, params: dict[str, Any], plots_dir: str | Path | None, *,
                params_path: str | Path = "params.yaml") -> str:
    """An ``enhance`` run: counts, mean scores per dimension before/after, the histograms."""
    metrics = {k: report[k] for k in ("rows_in", "kept", "enhanced", "rejected")}
    for group in ("all_rows", "enhanced_rows"):
        g = report[group]
        metrics[group] = {"score_before": g["score_before"], "score_after": g["score_after"],
                          **{f"{d}.{when}": v[when] for d, v in g["dimensions"].items() for when in ("before", "after")}}
    metrics["rejected_reason"] = report["rejected_reasons"]
    metrics["repair"] = report["repairs"]
    with stage_run("enhance", params, params_path=params_path) as run:
        run.log_metrics(metrics)
        run.log_text(json.dumps(report, indent=2), "enhance_report.json")
        if plots_dir is not None and Path(plots_dir).is_dir():
            run.log_artifacts(plots_dir, "enhance")
        return run.run_id


def log_card(facts: dict, card_path: str | Path, figures_dir: str | Path, *,
             params_path: str | Path = "params.yaml") -> str:
    """A ``card`` run: row counts and lineage as metrics, the card and its figures, the data's DVC hash as a tag."""
    metrics = {"rows": facts["rows"], "tokens": facts["tokens"],
               "lineage": {k.split(" (")[0].replace(" ", "_"): v for k, v in facts["lineage"].items() if v is not None}}
    with stage_run("card", {}, params_path=params_path) as run:
        run.log_metrics(metrics)
        run.set_tags({"synthforge.data_dvc_md5": facts["dvc_hash"] or "unknown"})
        run.log_text(Path(card_path).read_text(), "dataset_card.md")
        run.log_artifacts(figures_dir, "card")
        return run.run_id


class StageRun:
    """Thin logging handle on one run (batched calls only)."""

    def __init__(self, c, run_id: str, parent_id: str):
        self.client, self.run_id, self.parent_id = c, run_id, parent_id

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        flat = flatten(params)
        items = [Param(k, str(v)[:6000]) for k, v in flat.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i: i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in flatten(metrics).items()
                 if isinstance(v, (int, float))]
        if items:
            self.client.log_batch(self.run_id, metrics=items)

    def log_dataset(self, path: str | Path, rows: list[dict], digest: str, context: str) -> None:
        """Log a JSONL dataset as a run input with an explicit digest."""
        mlflow = _mlflow()
        import pandas as pd

        from . import io

        frame = pd.DataFrame({
            "id": [str(r.get("meta", {}).get("id", i)) for i, r in enumerate(rows)],
            "category": [str(r.get("meta", {}).get("category", "")) for r in rows],
            "messages": [io.dumps(r["messages"]) for r in rows],
        })
        from mlflow.entities import DatasetInput, InputTag

        with warnings.catch_warnings():  # "source can be interpreted in multiple ways": both are local files
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_pandas(frame, source=str(path), name=str(path), digest=digest[:36])
        tag = InputTag(key="mlflow.data.context", value=context)
        self.client.log_inputs(self.run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=[tag])])

    def log_artifacts(self, folder: str | Path, artifact_path: str) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def set_tags(self, tags: dict[str, str]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, v)


class NullRun:
    """The handle of a process that must not record anything: every logging call does nothing."""

    run_id = ""

    def __getattr__(self, name: str):
        if name.startswith(("log_", "set_")):
            return lambda *args, **kwargs: None
        raise AttributeError(name)


class MLflowCallback(TrainingCallback):
    """mlx-lm ``TrainingCallback`` that logs step metrics, one batch per report.

    ``step_offset`` continues the step axis across curriculum stages so the
    stages line up as one curve in the MLflow chart view.
    """

    TRAIN_KEYS = ("train_loss", "learning_rate", "tokens_per_second", "iterations_per_second",
                  "trained_tokens", "peak_memory")

    def __init__(self, run: StageRun, step_offset: int = 0):
        self.run, self.offset = run, step_offset

    def on_train_loss_report(self, info: dict) -> None:
        self.run.log_metrics({k: info[k] for k in self.TRAIN_KEYS if k in info},
                             step=self.offset + info["iteration"])

    def on_val_loss_report(self, info: dict) -> None:
        self.run.log_metrics({"val_loss": info["val_loss"]}, step=self.offset + info["iteration"])


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
