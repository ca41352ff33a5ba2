"""The default generation (params.yaml as shipped) meets the seed's table and our diversity bar."""

import json

import pytest

from synthforge.diversity import report
from synthforge.generate import generate
from synthforge.params import load_params
from synthforge.schema import to_canonical
from synthforge.columns import row_problems

from conftest import ROOT

# Seed report 000's per-category table. It sums to 2,272; the report's headline 2,472 also counts
# the 250 examples it started from, which it did not regenerate.
SEED_TABLE = {  # rows per category (sub-category counts live in params.yaml)
    "tool_usage": 200, "powertools": 100, "superpowers": 150, "agentic_skills": 300, "craftsmanship": 300,
    "collaboration": 200, "problem_solving": 200, "context_memory": 199, "documentation": 200, "security": 200,
    "language_idioms": 223,
}


@pytest.fixture(scope="module")
def default_rows(tmp_path_factory):
    p = load_params(ROOT / "params.yaml")
    out = tmp_path_factory.mktemp("default") / "generated.jsonl"
    generate(ROOT / "data/specs" / p.generate.tools, ROOT / "data/tools" / f"{p.generate.tools}.json", out,
             p.generate, p.base.seed, progress=False)
    return [json.loads(line) for line in out.read_text().splitlines()], p


def test_counts_match_the_seed_table_exactly(default_rows):
    rows, p = default_rows
    m = report(rows)
    assert m["rows"] == sum(SEED_TABLE.values()) == 2272
    assert m["categories"] == SEED_TABLE
    for category, subs in p.generate.categories.items():
        for sub, n in subs.items():
            assert m["subcategories"].get(f"{category}.{sub}", 0) == n, (category, sub)
    parallel = [r for r in rows if r["meta"]["subcategory"] == "parallel_execution"]
    assert len(parallel) == 150
    assert all(any(len(m.get("tool_calls") or []) > 1 for m in r["messages"]) for r in parallel)


def test_every_tool_and_capability_is_covered(default_rows, catalog):
    m = report(default_rows[0])
    assert {name: m["tools"].get(name, 0) for name in catalog.names if m["tools"].get(name, 0) < 5} == {}
    assert {c: n for c, n in m["capabilities"].items() if n < 40} == {}


def test_diversity_bar(default_rows):
    m = report(default_rows[0])
    assert m["unique_prompt_ratio"] >= 0.97
    assert m["distinct_3"] >= 0.5
    assert set(m["variation"]) == {"expertise", "phrasing", "context", "complexity"}


def test_every_row_passes_the_row_checks(default_rows, catalog):
    problems = [f"{row['meta']['id']}: {problem}" for row in default_rows[0]
                for problem in row_problems(to_canonical(row, row_id=row["meta"]["id"]), catalog)]
    assert problems == []
