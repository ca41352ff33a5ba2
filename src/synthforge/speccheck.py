"""Check one category spec before it goes into the pipeline.

Generates ``rows`` rows of one category (template backend), runs the gate's
row-level checks on each, and reports diversity, capability tags, variation
and rendered length (chat template, tools included), so a spec author sees
at once whether the spec is valid, varied and short enough to train on:

    synthforge check-spec --specs data/specs/coding_agent \\
        --tools data/tools/coding_agent.json --category security --rows 200
"""

from __future__ import annotations

import random
import statistics

from . import diversity
from .catalog import load_catalog
from .generate import category_rows
from .model import template_texts
from .params import GenerateParams
from .schema import to_canonical
from .specs import load_spec
from .columns import row_problems


def check_spec(specs_dir, tools_path, category: str, rows: int, seed: int = 42, tools_per_example: int = 2) -> dict:
    """Generate and check ``rows`` rows of ``category``; return the findings."""
    catalog = load_catalog(tools_path)
    spec = load_spec(f"{specs_dir}/{category}.yaml", catalog)
    params = GenerateParams(backend="template", categories={category: rows}, tools_per_example=tools_per_example)
    out = list(category_rows(spec, catalog, rows, seed, params))
    problems = [f"{row['meta']['id']} ({row['meta']['scenario']}): {problem}" for row in out
                for problem in row_problems(to_canonical(row, row_id=row["meta"]["id"]), catalog)]
    lengths = [len(text) for text in template_texts(out)]
    report = diversity.report(out)
    unused = sorted(set(catalog.names) - set(report["tools"]))
    return {"category": category, "rows": len(out), "problems": problems, "metrics": report,
            "rendered_chars": {"median": int(statistics.median(lengths)), "max": max(lengths),
                               "over_3000": sum(n > 3000 for n in lengths)},
            "sample": out[random.Random(seed).randrange(len(out))], "tools_not_called": unused}
