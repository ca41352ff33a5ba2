"""Diversity metrics on hand-made rows (known answers) and the generate stage's report."""

import json

import mlflow
import yaml
from click.testing import CliRunner

from synthforge.cli import main
from synthforge.diversity import capability_table, report

from conftest import CATALOG, ROOT, SPECS


def row(user, *assistant, category="c", calls=0, caps=()):
    messages = [{"role": "user", "content": user}]
    for text in assistant:
        messages.append({"role": "assistant", "content": text})
    if calls:
        messages.append({"role": "assistant", "content": "", "tool_calls": [
            {"id": f"c{i}", "type": "function", "function": {"name": "read", "arguments": "{}"}} for i in range(calls)]})
    return {"messages": messages, "meta": {"category": category, "subcategory": "s", "capabilities": list(caps)}}


def test_known_values():
    rows = [row("a b", "x y z", calls=2, caps=["planning_decomposition"]),
            row("a b", "x y z w", category="d"),
            row("other", "Q R", calls=1)]
    m = report(rows)
    assert m["unique_prompt_ratio"] == round(2 / 3, 4)
    # bigrams: (x y)(y z) | (x y)(y z)(z w) | (q r) -> 4 distinct of 6
    assert m["distinct_2"] == round(4 / 6, 4)
    # trigrams: (x y z) | (x y z)(y z w) -> 2 distinct of 3
    assert m["distinct_3"] == round(2 / 3, 4)
    assert m["parallel_call_examples"] == 1
    assert m["tools"] == {"read": 3}
    assert m["categories"] == {"c": 2, "d": 1}
    assert m["capabilities"]["planning_decomposition"] == 1 and len(m["capabilities"]) == 17
    assert m["turns_per_example"] == {"mean": round(8 / 3, 2), "max": 3}
    table = capability_table(m, minimum=1)
    assert "| 1 | planning decomposition | 1 | full |" in table
    assert "| 17 | uncertainty handling | 0 | missing |" in table


def test_generate_stage_writes_report_capabilities_and_an_mlflow_run(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["generate"]["categories"] = {"tool_usage": 20, "powertools": 10}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    args = ["generate", "--specs", str(SPECS), "--tools", str(CATALOG), "--out", str(tmp_path / "g.jsonl"),
            "--rejected", str(tmp_path / "rej.jsonl"), "--report", str(tmp_path / "report.json"),
            "--capabilities", str(tmp_path / "caps.md"), "--cache", str(tmp_path / "cache.jsonl"),
            "--params", str(params)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "30 requested = 30 kept + 0 rejected" in result.output
    rep = json.loads((tmp_path / "report.json").read_text())
    rows = [json.loads(line) for line in (tmp_path / "g.jsonl").read_text().splitlines()]
    assert rep == {**rep, **report(rows)}  # the stage's report is the data's own metrics
    assert (tmp_path / "rej.jsonl").read_text() == "" and (tmp_path / "cache.jsonl").exists()
    assert "| 3 | tool orchestration |" in (tmp_path / "caps.md").read_text()
    runs = mlflow.search_runs(experiment_names=["synthforge"], filter_string="tags.`synthforge.stage` = 'generate'")
    assert len(runs) == 1
    assert runs.iloc[0]["metrics.distinct_3"] == rep["distinct_3"]
    assert runs.iloc[0]["metrics.category.tool_usage"] == 20
