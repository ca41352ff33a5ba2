"""The ``synthforge`` command: one sub-command per pipeline stage, plus ``ui``.

Commands only parse options, load ``params.yaml`` and call the stage
function; every path comes from ``dvc.yaml``. Known errors (bad params, bad
input, a failed gate) are shown as one message and exit 1, never a
traceback.

    synthforge --help
    dvc repro                # runs the commands in dvc.yaml
    synthforge ui            # MLflow UI on 127.0.0.1 for this project
    synthforge pull          # data of this commit from the DVC remote (also: push, remote check)
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
from pathlib import Path

import click

from .catalog import CatalogError
from .io import InputError, jsonl_files
from .params import ParamsError, load_params
from .schema import FormatError
from .specs import SpecError

KNOWN_ERRORS: tuple[type[Exception], ...] = (ParamsError, InputError, CatalogError, SpecError, FormatError)

PATH = click.Path(path_type=Path)
EXISTING = click.Path(exists=True, path_type=Path)


def _known_errors() -> tuple[type[Exception], ...]:
    from .llm import BackendError
    from .tracking import TrackingError
    from .training import TrainError

    return KNOWN_ERRORS + (TrainError, BackendError, TrackingError)


def stage_command(fn):
    """Wrap a stage command: ``--params`` option, known errors -> ClickException."""

    @click.option("--params", "params_path", type=EXISTING, default="params.yaml", show_default=True,
                  help="Parameters file.")
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        try:
            return fn(*args, **kwargs)
        except _known_errors() as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


@click.group()
@click.version_option(package_name="synthforge")
def main():
    """synthforge: synthetic tool-calling data and MLX fine-tuning, as a DVC pipeline."""


def _check_tracking(track: bool) -> None:
    """A stage that will log to MLflow checks the tracking server first, before its work."""
    if track:
        from .tracking import preflight

        preflight()


@main.command()
@click.option("--specs", type=EXISTING, required=True, help="Folder of category specs.")
@click.option("--tools", type=EXISTING, required=True, help="Tool catalog (JSON).")
@click.option("--out", type=PATH, required=True, help="Output JSONL.")
@click.option("--rejected", type=PATH, help="Unusable model replies, with reasons (openai backend).")
@click.option("--report", type=PATH, help="Counts and diversity metrics (JSON, DVC metrics).")
@click.option("--capabilities", type=PATH, help="Capability coverage table (Markdown).")
@click.option("--cache", type=PATH, help="Reply cache (JSONL) of the openai backend; makes re-runs free.")
@click.option("--track/--no-track", default=True, show_default=True, help="Log a 'generate' run to MLflow.")
@stage_command
def generate(specs, tools, out, rejected, report, capabilities, cache, track, params_path):
    """Generate conversations from the category specs (template or openai backend)."""
    from dataclasses import asdict

    from . import diversity
    from .generate import generate as run
    from .io import atomic_open

    p = load_params(params_path)
    _check_tracking(track)
    result = run(specs, tools, out, p.generate, p.base.seed, rejected_path=rejected, report_path=report,
                 cache_path=cache)
    table = diversity.capability_table(result)
    if capabilities:
        with atomic_open(capabilities) as fh:
            fh.write(table)
    click.echo(f"generate: {result['requested']} requested = {result['kept']} kept + {result['rejected']} rejected -> {out}")
    click.echo(f"  unique prompts {result['unique_prompt_ratio']}, distinct-2 {result['distinct_2']},"
               f" distinct-3 {result['distinct_3']}, parallel-call rows {result['parallel_call_examples']}")
    if result["requests"]:
        click.echo(f"  requests {result['requests']}")
    if track:
        from .tracking import log_generation

        log_generation(result, {"base.seed": p.base.seed, "generate": asdict(p.generate)}, table,
                       params_path=params_path)


@main.command("check-spec")
@click.option("--specs", type=EXISTING, required=True, help="Folder of category specs.")
@click.option("--tools", type=EXISTING, required=True, help="Tool catalog (JSON).")
@click.option("--category", required=True, help="Category (spec file stem) to check.")
@click.option("--rows", type=click.IntRange(1), default=200, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--show-sample/--no-sample", default=False, help="Print one generated row.")
def check_spec_command(specs, tools, category, rows, seed, show_sample):
    """Generate one category and report validity, diversity and length (for spec authors)."""
    import json

    from .speccheck import check_spec

    result = check_spec(specs, tools, category, rows, seed)
    m = result["metrics"]
    click.echo(f"{category}: {result['rows']} rows, {len(result['problems'])} gate problems")
    for problem in result["problems"][:10]:
        click.echo(f"  {problem}")
    click.echo(f"unique_prompt_ratio {m['unique_prompt_ratio']}  distinct_2 {m['distinct_2']}  distinct_3 {m['distinct_3']}")
    click.echo(f"rendered chars: {result['rendered_chars']}  turns: {m['turns_per_example']}")
    click.echo(f"subcategories: {m['subcategories']}")
    click.echo(f"capabilities: { {k: v for k, v in m['capabilities'].items() if v} }")
    click.echo(f"variation: {m['variation']}")
    click.echo(f"tools called: {m['tools']}")
    if show_sample:
        click.echo(json.dumps(result["sample"], indent=1, ensure_ascii=False))
    if result["problems"]:
        raise SystemExit(1)


def gate_command(fn):
    """A gate stage command: the catalog, suites and report options both gates share, and ``--params``."""
    for option in reversed([
        click.option("--tools", type=EXISTING, required=True, help="Tool catalog (JSON)."),
        click.option("--suite", "suites", type=PATH, multiple=True, required=True, help="Great Expectations suite (JSON)."),
        click.option("--rejected", type=PATH, required=True, help="Quarantined rows with reasons."),
        click.option("--report", type=PATH, required=True, help="JSON report (DVC metrics)."),
        click.option("--docs", type=PATH, default=None, help="Folder for offline Data Docs (HTML)."),
    ]):
        fn = option(fn)
    return stage_command(fn)


@main.command()
@click.option("--input", "inputs", type=PATH, multiple=True, required=True, help="Generated JSONL file(s) to gate.")
@click.option("--import", "imported", type=PATH, multiple=True,
              help="Imported JSONL file(s) or folder(s) of them, e.g. legacy data in data/seed/:"
                   " gated alike; their categories count as expected.")
@click.option("--out", type=PATH, required=True, help="Rows that pass.")
@gate_command
def validate(inputs, imported, tools, suites, out, rejected, report, docs, params_path):
    """Gate raw rows with the expectation suites; exit 1 when a critical expectation fails."""
    from .validate import validate as run

    p = load_params(params_path)
    _gate(lambda: run(list(inputs), tools, list(suites), out, rejected, report, docs, p.validate,
                      p.generate.category_totals(), imported=jsonl_files(imported)), "validate")


@main.command("gate-splits")
@click.option("--data", "data_dir", type=EXISTING, required=True, help="Merged split folder.")
@click.option("--tokenizer", "tokenizer_dir", type=EXISTING, required=True, help="Tokenizer folder (stage tokenizer).")
@click.option("--out", type=PATH, required=True, help="Folder of gated splits (same layout as --data).")
@gate_command
def gate_splits(data_dir, tokenizer_dir, tools, suites, out, rejected, report, docs, params_path):
    """Gate the merged splits with the model's tokenizer before any training."""
    from .gate_splits import gate_splits as run

    p = load_params(params_path)
    _gate(lambda: run(data_dir, tokenizer_dir, tools, list(suites), out, rejected, report, docs, p.validate,
                      max_seq_length=p.train.common.max_seq_length,
                      expected_categories=p.generate.category_totals()), "gate-splits")


def _gate(call, name: str) -> None:
    from rich import print as rprint

    from .gate import GateError
    from .gatereport import summary

    try:
        verdict, report = call()
    except GateError as exc:
        if exc.verdict is not None and exc.report is not None:
            rprint(summary(exc.verdict, exc.report, name))
        raise click.ClickException(str(exc)) from None
    rprint(summary(verdict, report, name))


@main.command()
@click.option("--input", "input_path", type=EXISTING, required=True, help="Gated rows (stage validate).")
@click.option("--tools", type=EXISTING, required=True, help="Tool catalog (JSON).")
@click.option("--suite", "suites", type=EXISTING, multiple=True, required=True,
              help="Suite whose critical row expectations every rewrite must pass.")
@click.option("--out", type=PATH, required=True, help="Kept and enhanced rows, with lineage.")
@click.option("--rejected", type=PATH, required=True, help="Rows left out, with the reason.")
@click.option("--kto", "kto_path", type=PATH, help="KTO pairs: original (false), accepted rewrite (true).")
@click.option("--report", type=PATH, required=True, help="JSON report (DVC metrics).")
@click.option("--plots", "plots_dir", type=PATH, help="Folder for score histograms (CSV for DVC plots, PNG).")
@click.option("--cache", type=PATH, help="Reply cache of the LLM judge (enhance.judge: openai).")
@click.option("--track/--no-track", default=True, show_default=True, help="Log an 'enhance' run to MLflow.")
@stage_command
def enhance(input_path, tools, suites, out, rejected, kto_path, report, plots_dir, cache, track, params_path):
    """Score every example, rewrite the weak ones, keep a rewrite only if better and still gated."""
    from dataclasses import asdict

    from .enhance import enhance as run
    from .gate import GateError

    p = load_params(params_path)
    _check_tracking(track)
    try:
        r = run(input_path, tools, list(suites), out, rejected, report, p.enhance, p.validate, kto_path=kto_path,
                plots_dir=plots_dir, cache_path=cache, seed=p.base.seed)
    except GateError as exc:
        raise click.ClickException(f"enhance: the critical gate cannot run: {exc}") from None
    e = r["enhanced_rows"]
    click.echo(f"enhance: in {r['rows_in']} = kept {r['kept']} + enhanced {r['enhanced']} + rejected {r['rejected']}"
               f" ({r['scorer']})")
    click.echo(f"  enhanced rows: mean score {e['score_before']:.2f} -> {e['score_after']:.2f};"
               f" all rows {r['all_rows']['score_before']:.2f} -> {r['all_rows']['score_after']:.2f}")
    if r["rejected_reasons"]:
        click.echo(f"  rejected: {r['rejected_reasons']} (reasons in {rejected})")
    if track:
        from .tracking import log_enhance

        log_enhance(r, {"base.seed": p.base.seed, "enhance": asdict(p.enhance)}, plots_dir, params_path=params_path)


@main.command()
@click.option("--input", "inputs", type=EXISTING, multiple=True, required=True)
@click.option("--out", type=PATH, required=True, help="Folder for train/valid/test and stage sets.")
@click.option("--report", type=PATH, required=True)
@stage_command
def merge(inputs, out, report, params_path):
    """Dedupe, shuffle (base.seed) and split; write one folder per curriculum stage."""
    from .merge import merge as run

    p = load_params(params_path)
    r = run(list(inputs), out, report, p.merge, p.base.seed)
    click.echo(f"merge: {r['rows']} rows ({r['duplicates']} duplicates removed) ->"
               f" train {r['train']}, valid {r['valid']}, test {r['test']}")


@main.command()
@click.option("--train", "train_path", type=EXISTING, required=True, help="Training split to learn the vocabulary from.")
@click.option("--out", type=PATH, required=True, help="Tokenizer folder.")
@stage_command
def tokenizer(train_path, out, params_path):
    """Train the embedded model's tokenizer (or reference model.name's)."""
    from .model import build_tokenizer

    p = load_params(params_path)
    click.echo(f"tokenizer: {build_tokenizer(train_path=train_path, out_dir=out, p=p.model)}")


@main.command()
@click.option("--data", "data_dir", type=EXISTING, required=True, help="Gated split folder.")
@click.option("--tokenizer", "tokenizer_dir", type=EXISTING, required=True, help="Tokenizer folder (stage tokenizer).")
@click.option("--reports", "reports_dir", type=EXISTING, required=True, help="Folder of the data stages' JSON reports.")
@click.option("--lock", "lock_path", type=PATH, default=Path("dvc.lock"), show_default=True,
              help="dvc.lock, for the data's DVC hash.")
@click.option("--out", type=PATH, required=True, help="The card (Markdown).")
@click.option("--figures", "figures_dir", type=PATH, required=True, help="Folder for the card's PNGs.")
@click.option("--track/--no-track", default=True, show_default=True, help="Log a 'card' run to MLflow.")
@stage_command
def card(data_dir, tokenizer_dir, reports_dir, lock_path, out, figures_dir, track, params_path):
    """Write the dataset card: categories, lineage, gates, token lengths, tools, scores."""
    from .card import build_card

    _check_tracking(track)
    facts = build_card(data_dir, tokenizer_dir, reports_dir, lock_path, out, figures_dir)
    click.echo(f"card: {sum(facts['rows'].values())} rows, DVC hash {facts['dvc_hash'] or '(not in dvc.lock yet)'} -> {out}")
    if track:
        from .tracking import log_card

        log_card(facts, out, figures_dir, params_path=params_path)


@main.command("build-model")
@click.option("--tokenizer", "tokenizer_dir", type=EXISTING, required=True, help="Folder of stage tokenizer.")
@click.option("--train", "train_path", type=EXISTING, required=True)
@click.option("--valid", "valid_path", type=EXISTING, required=True)
@click.option("--out", type=PATH, required=True)
@click.option("--report", type=PATH, required=True, help="Folder for metrics, curves and run id.")
@stage_command
def build_model(tokenizer_dir, train_path, valid_path, out, report, params_path):
    """Build the embedded tiny model and warm it up (or reference a real model)."""
    from .model import build_model as run

    p = load_params(params_path)
    m = run(tokenizer_dir=tokenizer_dir, train_path=train_path, valid_path=valid_path, out_dir=out,
            report_dir=report, p=p.model, seed=p.base.seed, params_path=params_path)
    click.echo(f"build-model: {m}")


@main.command()
@click.option("--stage", required=True, help="Curriculum stage name (a key of train.stages).")
@click.option("--base", "base_dir", type=EXISTING, required=True)
@click.option("--data", "data_dir", type=EXISTING, required=True)
@click.option("--resume", "resume_dir", type=EXISTING, default=None, help="Previous stage's adapters.")
@click.option("--prev-run", "prev_run", type=PATH, default=None, help="run.json of the stage resumed from.")
@click.option("--out", type=PATH, required=True)
@click.option("--report", type=PATH, required=True)
@click.option("--checkpoints", type=PATH, default=Path("models/checkpoints"), show_default=True)
@stage_command
def train(stage, base_dir, data_dir, resume_dir, prev_run, out, report, checkpoints, params_path):
    """Train one curriculum stage of LoRA adapters (data-parallel under mlx.launch: README, 'Distributed training')."""
    from . import distributed
    from .train import train_stage

    p = load_params(params_path)
    if stage not in p.train.stages:
        raise click.ClickException(f"--stage {stage}: not in train.stages ({', '.join(p.train.stages)})")
    dist = p.train.distributed
    if (dist.processes > 1 or dist.hostfile) and not distributed.launched():
        args = ["train", "--stage", stage, "--base", base_dir, "--data", data_dir, "--out", out, "--report", report,
                "--checkpoints", checkpoints, "--params", params_path]
        args += ["--resume", resume_dir] if resume_dir else []
        args += ["--prev-run", prev_run] if prev_run else []
        sys.exit(distributed.relaunch([str(a) for a in args], dist.processes, dist.backend, dist.hostfile,
                                      echo=click.echo))
    m = train_stage(stage=stage, base_dir=base_dir, data_dir=data_dir, out_dir=out, report_dir=report,
                    checkpoint_dir=checkpoints / stage, common=p.train.common, sp=p.train.stages[stage],
                    seed=p.base.seed, resume_dir=resume_dir, prev_run_file=prev_run, params_path=params_path)
    rank, size = distributed.world()
    if rank == 0:
        click.echo(f"train {stage}: val_loss {m['val_loss']:.4f}, {m['dropped_too_long']} dropped as too long")
        if size > 1:
            click.echo(distributed.DONE.format(size=size))


@main.command()
@click.option("--base", "base_dir", type=EXISTING, required=True)
@click.option("--data", "data_dir", type=EXISTING, required=True)
@click.option("--adapters", multiple=True, required=True, help="NAME=FOLDER, in curriculum order.")
@click.option("--prev-run", "prev_run", type=PATH, default=None)
@click.option("--report", type=PATH, required=True)
@stage_command
def evaluate(base_dir, data_dir, adapters, prev_run, report, params_path):
    """Losses and tool-call accuracy of the base model and every stage."""
    from .evaluate import evaluate as run

    p = load_params(params_path)
    named = {}
    for item in adapters:
        name, _, folder = item.partition("=")
        if not folder:
            raise click.ClickException(f"--adapters {item!r}: expected NAME=FOLDER")
        named[name] = Path(folder)
    r = run(base_dir=base_dir, data_dir=data_dir, adapters=named, report_path=report, p=p.evaluate,
            max_seq_length=p.train.common.max_seq_length, prev_run_file=prev_run, params_path=params_path)
    for name in ["base", *named]:
        m = r[name]
        click.echo(f"evaluate {name}: valid_loss {m['valid_loss']:.4f} test_loss {m['test_loss']:.4f}"
                   f" parse {m['call_parse_rate']:.2f} tool_name {m['tool_name_accuracy']:.2f}"
                   f" (balanced {m['tool_name_accuracy_balanced']:.2f})"
                   f" args_valid {m['args_valid_rate']:.2f}")
    base = r["majority_baseline"]
    click.echo(f"evaluate: always '{base['tool']}' would score tool_name {base['tool_name_accuracy']:.2f}")


@main.command()
@click.option("--port", default=5000, show_default=True)
def ui(port):
    """Start the MLflow UI on 127.0.0.1 against this project's tracking store."""
    from .tracking import project_root, tracking_uri

    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri(),
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    click.echo(f"MLflow UI for {project_root()} at http://127.0.0.1:{port} (Ctrl-C to stop)")
    with contextlib.suppress(KeyboardInterrupt):
        subprocess.run(cmd, env=env, check=False)


def _remote_call(fn, *args):
    from .remote import RemoteError

    try:
        return fn(*args)
    except RemoteError as exc:
        raise click.ClickException(str(exc)) from None


REMOTE_OPTION = click.option("-r", "--remote", "name", help="DVC remote (default: core.remote of .dvc/config).")


@main.group()
def remote():
    """DVC remote storage: see README, 'Remote storage'."""


@remote.command("check")
@REMOTE_OPTION
@click.option("--for", "purpose", type=click.Choice(["push", "pull"]), default="push", show_default=True)
def remote_check(name, purpose):
    """Check that the remote is reachable, has credentials and a bucket (nothing is written)."""
    from . import remote as storage

    click.echo(f"ok: {_remote_call(storage.prepare, Path.cwd(), name, purpose).line}")


@main.command()
@REMOTE_OPTION
def push(name):
    """Check the remote, then `dvc push` the pipeline's outputs (never those marked push: false)."""
    from .remote import push as push_outputs

    c = _remote_call(push_outputs, Path.cwd(), name)
    click.echo(f"pushed to {c.line}")
    _say_local_only(c.outs.local_only, "kept on this machine (push: false)")


@main.command()
@REMOTE_OPTION
def pull(name):
    """Check the remote, then pull every output a push can have stored, and check each arrived."""
    from .remote import pull as pull_outputs

    c = _remote_call(pull_outputs, Path.cwd(), name)
    click.echo(f"pulled {len(c.outs.pushable)} outputs from {c.line}")
    _say_local_only(c.outs.local_only, "not on any remote (push: false)",
                    "; `dvc repro --allow-missing` skips the stages that made them")


def _say_local_only(paths: list[str], what: str, tail: str = "") -> None:
    if paths:
        click.echo(f"{what}: {', '.join(paths)}{tail}")


MLX_COMMANDS = {"build-model", "train", "evaluate"}


def entry():
    """Console entry point: preload a fast BLAS for MLX stages, then run the CLI."""
    from . import blas

    if len(sys.argv) > 1 and sys.argv[1] in MLX_COMMANDS:
        blas.reexec_with_fast_blas(sys.argv)
        click.echo(blas.notice(), err=True)
    main(prog_name="synthforge")
