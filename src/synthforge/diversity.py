"""Dataset diversity and coverage metrics, computed from the rows themselves.

Used by ``generate`` (written as DVC metrics and logged to MLflow) and
runnable on any JSONL file:

    python -m synthforge.diversity data/generated/generated.jsonl

Definitions (documented so the numbers can be compared across runs):

- ``unique_prompt_ratio``: distinct first user messages / rows.
- ``distinct_2`` / ``distinct_3``: corpus-level distinct-n (Li et al., 2016)
  of assistant text: distinct n-grams / all n-grams, over every assistant
  message's ``content``, lower-cased and split on whitespace, n-grams taken
  within one message. Corpus-level is the strict form: a phrase repeated
  across rows counts once.
- ``parallel_call_examples``: rows with an assistant turn of two or more calls.
- ``turns_per_example``: user + assistant messages per row (mean and max).
- ``capabilities``: rows tagged with each of seed report 000's 17 capabilities.
"""

from __future__ import annotations

import json
import sys
from array import array
from collections import Counter
from typing import Iterable

from .specs import CAPABILITIES


class Distinct:
    """Running corpus-level distinct-n counters.

    N-grams are kept as 64-bit hashes in flat arrays (8 bytes each), so a
    100,000-row corpus fits in a few hundred MB; a hash collision could only
    under-count distinct n-grams, by a negligible amount.
    """

    def __init__(self, *ns: int):
        self.grams = {n: array("q") for n in ns}

    def add(self, text: str) -> None:
        tokens = text.lower().split()
        for n, grams in self.grams.items():
            grams.extend(hash(g) for g in zip(*(tokens[i:] for i in range(n))))

    def ratio(self, n: int) -> float:
        import numpy as np

        grams = self.grams[n]
        if not grams:
            return 0.0
        return round(len(np.unique(np.frombuffer(grams, dtype=np.int64))) / len(grams), 4)


def first_user(row: dict) -> str:
    return next((m.get("content") or "" for m in row.get("messages", []) if m.get("role") == "user"), "")


class Report:
    """Accumulates the metrics row by row (generation streams its rows through it)."""

    def __init__(self):
        self.distinct, self.by_category = Distinct(2, 3), {}
        self.prompts: set[int] = set()
        self.tools, self.categories, self.subcategories, self.capabilities = Counter(), Counter(), Counter(), Counter()
        self.variation: dict[str, Counter] = {}
        self.parallel, self.turns, self.max_turns, self.rows = 0, 0, 0, 0

    def add(self, row: dict) -> dict:
        meta = row.get("meta", {})
        category = meta.get("category", "?")
        self.rows += 1
        self.categories[category] += 1
        self.subcategories[f"{category}.{meta.get('subcategory', '?')}"] += 1
        self.capabilities.update(meta.get("capabilities", []))
        for axis, value in (meta.get("variation") or {}).items():
            self.variation.setdefault(axis, Counter())[value] += 1
        self.prompts.add(hash(first_user(row)))
        per_category = self.by_category.setdefault(category, Distinct(3))
        messages = row.get("messages", [])
        turns = sum(m.get("role") in ("user", "assistant") for m in messages)
        self.turns, self.max_turns = self.turns + turns, max(self.max_turns, turns)
        parallel = False
        for message in messages:
            if message.get("role") != "assistant":
                continue
            calls = message.get("tool_calls") or []
            parallel |= len(calls) > 1
            self.tools.update(c.get("function", {}).get("name", "?") for c in calls)
            if message.get("content"):
                self.distinct.add(message["content"])
                per_category.add(message["content"])
        self.parallel += parallel
        return row

    def result(self) -> dict:
        n = self.rows
        return {
            "rows": n,
            "unique_prompt_ratio": round(len(self.prompts) / n, 4) if n else 0.0,
            "distinct_2": self.distinct.ratio(2),
            "distinct_3": self.distinct.ratio(3),
            "parallel_call_examples": self.parallel,
            "turns_per_example": {"mean": round(self.turns / n, 2) if n else 0.0, "max": self.max_turns},
            "categories": dict(self.categories),
            "subcategories": dict(self.subcategories),
            "tools": dict(sorted(self.tools.items())),
            "capabilities": {c: self.capabilities.get(c, 0) for c in CAPABILITIES},
            "variation": {axis: dict(sorted(c.items())) for axis, c in sorted(self.variation.items())},
            "distinct_3_by_category": {c: d.ratio(3) for c, d in sorted(self.by_category.items())},
        }


def report(rows: Iterable[dict]) -> dict:
    """All metrics of ``rows`` (see the module docstring)."""
    acc = Report()
    for row in rows:
        acc.add(row)
    return acc.result()


def capability_table(metrics: dict, minimum: int = 40) -> str:
    """Seed report 000's capability table, from the data (Markdown)."""
    lines = ["| # | Capability | Examples | Status |", "|---|---|---|---|"]
    for i, (name, count) in enumerate(metrics["capabilities"].items(), start=1):
        status = "full" if count >= minimum else ("partial" if count else "missing")
        lines.append(f"| {i} | {name.replace('_', ' ')} | {count} | {status} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    from . import io

    for path in argv:
        print(json.dumps(report(io.read_rows(path)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
