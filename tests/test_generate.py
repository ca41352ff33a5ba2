"""The template generator: deterministic, catalog-valid, seed-sensitive."""

import json

import pytest
import yaml
from click.testing import CliRunner

from synthforge.cli import main
from synthforge.generate import generate
from synthforge.params import GenerateParams
from synthforge.schema import parse_arguments
from synthforge.specs import SpecError

from conftest import CATALOG, ROOT, SPECS

ALL = {"tool_usage": 30, "powertools": 20, "agentic_skills": 20, "superpowers": 10, "collaboration": 20}


def run(tmp_path, name="out.jsonl", seed=42, **kw):
    params = GenerateParams(backend="template", categories=kw.pop("categories", ALL), **kw)
    out = tmp_path / name
    result = generate(SPECS, CATALOG, out, params, seed=seed, progress=False)
    return out, result


def test_same_params_give_identical_bytes_and_other_seed_differs(tmp_path):
    a, _ = run(tmp_path, "a.jsonl")
    b, _ = run(tmp_path, "b.jsonl")
    c, _ = run(tmp_path, "c.jsonl", seed=43)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_counts_and_calls_are_valid(tmp_path, catalog):
    out, result = run(tmp_path)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert result["categories"] == ALL and len(rows) == sum(ALL.values())
    for row in rows:
        offered = {t["function"]["name"] for t in row["tools"]}
        answered = {m["tool_call_id"] for m in row["messages"] if m["role"] == "tool"}
        for m in row["messages"]:
            for call in m.get("tool_calls", []):
                name = call["function"]["name"]
                assert name in offered
                assert call["id"] in answered
                assert catalog.check_arguments(name, parse_arguments(call["function"]["arguments"])) == []
        assert row["messages"][-1]["role"] == "assistant"
        assert row["meta"]["category"] in ALL


def test_parallel_calls_are_answered_one_message_each(tmp_path):
    out, _ = run(tmp_path, categories={"tool_usage": 40})
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    parallel = [r for r in rows if any(len(m.get("tool_calls", [])) > 1 for m in r["messages"])]
    assert len(parallel) > 20
    for row in parallel:
        for i, m in enumerate(row["messages"]):
            calls = m.get("tool_calls", [])
            if calls:
                answers = row["messages"][i + 1: i + 1 + len(calls)]
                assert [a["tool_call_id"] for a in answers] == [c["id"] for c in calls]


def test_fault_injection_breaks_arguments(tmp_path):
    out, _ = run(tmp_path, categories={"powertools": 50}, faults={"broken_arguments": 0.5})
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    broken = [r for r in rows if r["meta"].get("fault") == "broken_arguments"]
    assert 10 < len(broken) < 40
    for row in broken:
        with pytest.raises(Exception):
            json.loads(next(c for m in row["messages"] for c in m.get("tool_calls", []))["function"]["arguments"])


def test_cli_generate_and_unknown_category(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["generate"]["categories"] = {name: 5 for name in ALL}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    out = tmp_path / "g.jsonl"
    args = ["generate", "--specs", str(SPECS), "--tools", str(CATALOG), "--out", str(out),
            "--params", str(tmp_path / "params.yaml")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 25
    raw["generate"]["categories"] = {"tool_usage": 5, "nonexistent": 5}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "nonexistent.yaml: spec file not found" in result.output


def test_subcategory_counts_are_exact_and_checked(tmp_path):
    counts = {"parallel_execution": 9, "single_tool": 2, "multi_turn": 1, "error_recovery": 3, "parameters": 0}
    out, _ = run(tmp_path, categories={"tool_usage": counts})
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    seen = {}
    for row in rows:
        seen[row["meta"]["subcategory"]] = seen.get(row["meta"]["subcategory"], 0) + 1
    assert seen == {k: v for k, v in counts.items() if v}
    # parallel_execution has several scenario shapes; its 9 rows are spread over them by weight
    shapes = {r["meta"]["scenario"] for r in rows if r["meta"]["subcategory"] == "parallel_execution"}
    assert len(shapes) >= 2
    with pytest.raises(SpecError, match=r"generate\.categories\.tool_usage\.parallel: no such sub-category"):
        run(tmp_path, categories={"tool_usage": {**counts, "parallel": 1}})
    with pytest.raises(SpecError, match=r"generate\.categories\.tool_usage\.parameters: the spec's sub-category has no count"):
        run(tmp_path, categories={"tool_usage": {k: v for k, v in counts.items() if k != "parameters"}})


def test_switching_the_catalog_regenerates_for_another_agent(tmp_path):
    from synthforge.catalog import load_catalog

    vault = load_catalog(ROOT / "data/tools/note_vault.json")
    categories = {path.stem: 12 for path in sorted((ROOT / "data/specs/note_vault").glob("[!_]*.yaml"))}
    assert len(categories) >= 3
    params = GenerateParams(backend="template", tools="note_vault", categories=categories, tools_per_example=2)
    out = tmp_path / "vault.jsonl"
    generate(ROOT / "data/specs/note_vault", ROOT / "data/tools/note_vault.json", out, params, seed=42, progress=False)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 12 * len(categories)
    called = set()
    for row in rows:
        assert {t["function"]["name"] for t in row["tools"]} <= set(vault.names)
        for m in row["messages"]:
            for call in m.get("tool_calls", []):
                called.add(call["function"]["name"])
                assert vault.check_arguments(call["function"]["name"], parse_arguments(call["function"]["arguments"])) == []
    assert called and called <= set(vault.names)
    with pytest.raises(SpecError, match="generate.tools is 'note_vault' but the catalog given is"):
        generate(SPECS, CATALOG, out, params, seed=42, progress=False)
