"""Stage ``evaluate``: losses and tool-call accuracy of the base and every stage.

For the base model and each curriculum stage's adapters it computes the
masked loss (assistant turns only) on the valid and test splits, the test
perplexity, and generation-based tool-call metrics on held-out test prompts:
the conversation up to the first assistant turn that calls a tool is given
to the model, and the first call it generates is checked (parses, right tool
name, arguments valid against the tool's schema, arguments exact). Tool-name
accuracy is also given balanced over the expected tools, next to the accuracy
of always naming the most common one (``majority_baseline``): held-out prompts
are dominated by a few tools, so plain accuracy alone can reward a model that
learned only the majority.

    synthforge evaluate --base models/base --data data/splits \\
        --adapters stage1=models/adapters/stage1 --adapters stage2=... --report reports/evaluate.json
"""

from __future__ import annotations

import math
from pathlib import Path

from rich.progress import Progress

from . import io
from .chat import prompt_for_first_call
from .params import EvaluateParams


def held_out_prompts(path: Path, limit: int) -> list[tuple[list[dict], dict, list[dict] | None]]:
    """(prompt messages, expected assistant turn, tools) for the first ``limit`` usable rows."""
    out = []
    for row in io.read_rows(path):
        found = prompt_for_first_call(row)
        if found:
            out.append((found[0], found[1], row.get("tools")))
        if len(out) >= limit:
            break
    return out


def expected_tool(expected: dict) -> str:
    """Name of the first tool the expected assistant turn calls."""
    return expected["tool_calls"][0]["function"]["name"]


def balanced_accuracy(tools: list[str], correct: list[bool]) -> float:
    """Mean over expected tools of each tool's accuracy: always naming the most common tool scores
    1/(number of tools), however common it is."""
    per_tool: dict[str, list[bool]] = {}
    for tool, ok in zip(tools, correct):
        per_tool.setdefault(tool, []).append(ok)
    return sum(sum(v) / len(v) for v in per_tool.values()) / len(per_tool) if per_tool else 0.0


def majority_baseline(tools: list[str]) -> dict:
    """The tool-name accuracy of always answering the most common expected tool."""
    if not tools:
        return {"tool": "", "tool_name_accuracy": 0.0}
    top = max(sorted(set(tools)), key=tools.count)
    return {"tool": top, "tool_name_accuracy": tools.count(top) / len(tools)}


def evaluate_model(name: str, base_dir: Path, adapter_dir: Path | None, data_dir: Path, prompts: list,
                   p: EvaluateParams, max_seq_length: int, progress: Progress | None = None) -> dict:
    """All metrics of one model (base, or base + adapters); ``prompts`` from :func:`held_out_prompts`."""
    from . import model as base_model
    from .toolcalls import generate_reply, score_reply
    from .training import encode_rows, eval_loss

    model, tokenizer = base_model.load(base_dir, adapter_dir)
    model.eval()
    metrics = {}
    for split in ("valid", "test"):
        examples = encode_rows(tokenizer, data_dir / f"{split}.jsonl", max_seq_length).examples
        metrics[f"{split}_loss"] = eval_loss(model, examples, p.batch_size, max_seq_length, p.loss_batches)
    metrics["test_perplexity"] = math.exp(min(metrics["test_loss"], 50.0))
    task = progress.add_task(f"evaluate {name}", total=len(prompts)) if progress else None
    scores = []
    for messages, expected, tools in prompts:
        reply = generate_reply(model, tokenizer, messages, tools, p.max_tokens)
        scores.append(score_reply(reply, expected, tools))
        if progress:
            progress.advance(task)
    n = max(1, len(scores))
    metrics.update({
        "prompts": len(scores),
        "call_parse_rate": sum(s.parsed for s in scores) / n,
        "tool_name_accuracy": sum(s.name_ok for s in scores) / n,
        "tool_name_accuracy_balanced": balanced_accuracy([expected_tool(e) for _, e, _ in prompts],
                                                         [s.name_ok for s in scores]),
        "args_valid_rate": sum(s.args_valid for s in scores) / n,
        "args_exact_rate": sum(s.args_exact for s in scores) / n,
    })
    return metrics


def evaluate(*, base_dir: Path, data_dir: Path, adapters: dict[str, Path], report_path: Path,
             p: EvaluateParams, max_seq_length: int, prev_run_file: Path | None = None,
             params_path: Path = Path("params.yaml")) -> dict:
    """Evaluate base and every stage; write the report and log an MLflow run."""
    import json
    from dataclasses import asdict

    from .tracking import stage_run

    prev = json.loads(prev_run_file.read_text()) if prev_run_file and prev_run_file.exists() else {}
    inputs = {str(data_dir / f): io.file_md5(data_dir / f) for f in ("valid.jsonl", "test.jsonl")}
    params = {"stage": "evaluate", **asdict(p), "max_seq_length": max_seq_length, "dvc_md5": inputs,
              "adapters": {k: str(v) for k, v in adapters.items()}}
    prompts = held_out_prompts(data_dir / "test.jsonl", p.max_prompts)
    report = {}
    with stage_run("evaluate", params, resumed_from=prev.get("run_id"), params_path=params_path) as run:
        with Progress(transient=True) as progress:
            for name, folder in {"base": None, **adapters}.items():
                report[name] = evaluate_model(name, base_dir, folder, data_dir, prompts, p, max_seq_length,
                                              progress)
        final = list(adapters)[-1] if adapters else "base"
        report["final"] = final
        report["majority_baseline"] = majority_baseline([expected_tool(e) for _, e, _ in prompts])
        report["improvement"] = {
            "val_loss": report["base"]["valid_loss"] - report[final]["valid_loss"],
            "tool_name_accuracy": report[final]["tool_name_accuracy"] - report["base"]["tool_name_accuracy"],
        }
        run.log_metrics({f"{k}.{m}": v for k, d in report.items() if isinstance(d, dict) for m, v in d.items()})
        io.write_json(report_path, report)
        run.log_text(json.dumps(report, indent=2), "evaluate.json")
    return report
