"""Stage ``generate``: compose synthetic tool-calling conversations from specs.

The template backend needs no model: each row is drawn from a category spec
(``data/specs/<category>.yaml``, see :mod:`synthforge.specs`) with its own
RNG seeded by ``(base.seed, category, index)``, so the same params give a
byte-identical file and any row can be rebuilt on its own.

    synthforge generate --specs data/specs --tools data/tools/coding_agent.json \\
        --out data/generated/generated.jsonl
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from rich.progress import Progress

from . import io
from .catalog import Catalog, load_catalog
from .params import GenerateParams
from .specs import Slots, Spec, SpecError, load_spec

FAULTS = ("broken_arguments",)


def generate(specs_dir: str | Path, tools_path: str | Path, out_path: str | Path,
             params: GenerateParams, seed: int, progress: bool = True) -> dict:
    """Write ``params.categories`` rows per category to ``out_path``; return counts."""
    if params.backend != "template":
        raise SpecError(f"generate.backend: {params.backend!r} is not available (use 'template')")
    unknown = sorted(set(params.faults) - set(FAULTS))
    if unknown:
        raise SpecError(f"generate.faults.{unknown[0]}: unknown fault (known: {', '.join(FAULTS)})")
    catalog = load_catalog(tools_path)
    specs = {name: load_spec(Path(specs_dir) / f"{name}.yaml", catalog) for name in params.categories}
    total = sum(params.categories.values())
    counts: dict[str, int] = {}

    def rows():
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("generate", total=total)
            for name, n in params.categories.items():
                for row in category_rows(specs[name], catalog, n, seed, params):
                    counts[name] = counts.get(name, 0) + 1
                    bar.advance(task)
                    yield row

    written = io.write_jsonl(out_path, rows())
    return {"rows": written, "categories": counts}


def category_rows(spec: Spec, catalog: Catalog, n: int, seed: int, params: GenerateParams):
    """The ``n`` rows of one category, in index order."""
    plan = scenario_plan(spec, n, random.Random(f"{seed}:{spec.category}:plan"))
    for index, scenario in enumerate(plan):
        rng = random.Random(f"{seed}:{spec.category}:{index}")
        row = compose(spec, scenario, catalog, rng, params.tools_per_example)
        row["meta"]["id"] = f"{spec.category}-{index:06d}"
        inject_faults(row, rng, params.faults)
        yield row


def scenario_plan(spec: Spec, n: int, rng: random.Random) -> list[dict]:
    """Apportion ``n`` rows to scenarios by weight (largest remainder), shuffled."""
    weights = [float(s.get("weight", 1)) for s in spec.scenarios]
    total = sum(weights)
    quotas = [n * w / total for w in weights]
    counts = [int(q) for q in quotas]
    by_remainder = sorted(range(len(quotas)), key=lambda i: (counts[i] - quotas[i], i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    plan = [s for s, c in zip(spec.scenarios, counts) for _ in range(c)]
    rng.shuffle(plan)
    return plan


def compose(spec: Spec, scenario: dict, catalog: Catalog, rng: random.Random, tools_per_example: int) -> dict:
    """One conversation from a scenario: messages, the tools it shows, meta."""
    slots = Slots(spec, rng, scenario.get("use", []))
    messages = [{"role": "system", "content": slots.fill(rng.choice(spec.system))}]
    n_calls = 0
    for turn in scenario["turns"]:
        if "user" in turn:
            messages.append({"role": "user", "content": slots.fill(rng.choice(turn["user"]))})
            continue
        message = {"role": "assistant", "content": slots.fill(rng.choice(turn["assistant"]))}
        results = []
        for call in turn.get("calls", []):
            n_calls += 1
            call_id = f"call_{n_calls}"
            args = slots.fill(call.get("args", {}))
            message.setdefault("tool_calls", []).append({
                "id": call_id, "type": "function",
                "function": {"name": call["tool"], "arguments": json.dumps(args, ensure_ascii=False)},
            })
            results.append({"role": "tool", "tool_call_id": call_id,
                            "content": slots.fill(rng.choice(call["result"]))})
        messages.append(message)
        messages.extend(results)
    called = {c["tool"] for t in scenario["turns"] for c in t.get("calls", [])}
    meta = {"category": spec.category, "subcategory": scenario["name"], "generator": "template"}
    if scenario.get("capabilities"):
        meta["capabilities"] = list(scenario["capabilities"])
    return {"messages": messages, "tools": pick_tools(catalog, called, rng, tools_per_example), "meta": meta}


def pick_tools(catalog: Catalog, called: set[str], rng: random.Random, k: int) -> list[dict]:
    """The called tools plus random distractors up to ``k``, in catalog order."""
    others = [n for n in catalog.names if n not in called]
    chosen = set(called) | set(rng.sample(others, max(0, min(k - len(called), len(others)))))
    return [catalog.by_name[n] for n in catalog.names if n in chosen]


def inject_faults(row: dict, rng: random.Random, faults: dict[str, float]) -> None:
    """Break a row on purpose (a gate test); ``meta.fault`` records what was done."""
    if faults.get("broken_arguments", 0) and rng.random() < faults["broken_arguments"]:
        for message in row["messages"]:
            for call in message.get("tool_calls", []):
                call["function"]["arguments"] = call["function"]["arguments"][:-1]
                row["meta"]["fault"] = "broken_arguments"
                return
