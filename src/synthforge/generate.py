"""Stage ``generate``: compose synthetic tool-calling conversations from specs.

The template backend needs no model: each row is drawn from a category spec
(``data/specs/<agent>/<category>.yaml``, see :mod:`synthforge.specs`) with its own
RNG seeded by ``(base.seed, category, index)``, so the same params give a
byte-identical file and any row can be rebuilt on its own.

    synthforge generate --specs data/specs/coding_agent --tools data/tools/coding_agent.json \\
        --out data/generated/generated.jsonl --rejected data/generated/rejected.jsonl \\
        --report reports/generate.json --cache data/cache/generate.jsonl

The ``openai`` backend (:mod:`synthforge.generate_llm`) has a model rewrite
each template row; it is cached, concurrent and resumable.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from rich.progress import Progress

from . import diversity, io
from .catalog import Catalog, load_catalog
from .params import GenerateParams
from .specs import Slots, Spec, SpecError, draw_axes, load_spec, subcategory

FAULTS = ("broken_arguments",)


def generate(specs_dir: str | Path, tools_path: str | Path, out_path: str | Path,
             params: GenerateParams, seed: int, progress: bool = True, *,
             rejected_path: str | Path | None = None, report_path: str | Path | None = None,
             cache_path: str | Path | None = None) -> dict:
    """Write the rows of ``params.categories`` to ``out_path``; return the report.

    The ``openai`` backend also writes rejected replies (with reasons) to
    ``rejected_path`` and caches replies in ``cache_path``. ``report_path``
    gets counts plus :mod:`synthforge.diversity` metrics (DVC metrics).
    """
    if params.backend not in BACKENDS:
        raise SpecError(f"generate.backend: {params.backend!r} is not a backend (known: {', '.join(BACKENDS)})")
    unknown = sorted(set(params.faults) - set(FAULTS))
    if unknown:
        raise SpecError(f"generate.faults.{unknown[0]}: unknown fault (known: {', '.join(FAULTS)})")
    if Path(tools_path).stem != params.tools:
        raise SpecError(f"generate.tools is {params.tools!r} but the catalog given is {tools_path}")
    catalog = load_catalog(tools_path)
    specs = {name: load_spec(Path(specs_dir) / f"{name}.yaml", catalog) for name in params.categories}
    stats = diversity.Report()
    rejected, requests, requested = [], {}, sum(category_total(c) for c in params.categories.values())
    if params.backend == "openai":
        from .generate_llm import run

        if cache_path is None:
            raise SpecError("generate.backend openai needs a cache file (--cache)")
        scaffolds = list(_template_rows(specs, catalog, params, seed, progress))
        rows, rejected, requests = run(scaffolds, catalog, params, seed, cache_path, progress)
        io.write_jsonl(out_path, map(stats.add, rows))
    else:  # streamed: 100,000 rows never sit in memory at once
        io.write_jsonl(out_path, map(stats.add, _template_rows(specs, catalog, params, seed, progress)))
    if rejected_path is not None:
        io.write_jsonl(rejected_path, rejected)
    if cache_path is not None and not Path(cache_path).exists():
        io.write_jsonl(cache_path, [])  # DVC expects the (persistent) cache output to exist
    metrics = stats.result()
    report = {"backend": params.backend, "requested": requested, "kept": metrics["rows"],
              "rejected": len(rejected), "requests": requests, **metrics}
    if report_path is not None:
        io.write_json(report_path, report)
    return report


BACKENDS = ("template", "openai")


def _template_rows(specs: dict[str, Spec], catalog: Catalog, params: GenerateParams, seed: int, progress: bool):
    total = sum(category_total(c) for c in params.categories.values())
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("generate", total=total)
        for name, count in params.categories.items():
            for row in category_rows(specs[name], catalog, count, seed, params):
                bar.advance(task)
                yield row


def category_rows(spec: Spec, catalog: Catalog, n: int, seed: int, params: GenerateParams):
    """The ``n`` rows of one category, in index order."""
    plan = scenario_plan(spec, n, random.Random(f"{seed}:{spec.category}:plan"))
    for index, scenario in enumerate(plan):
        rng = random.Random(f"{seed}:{spec.category}:{index}")
        row = compose(spec, scenario, catalog, rng, params.tools_per_example)
        row["meta"]["id"] = f"{spec.category}-{index:06d}"
        inject_faults(row, rng, params.faults)
        yield row


def category_total(count: int | dict[str, int]) -> int:
    return count if isinstance(count, int) else sum(count.values())


def scenario_plan(spec: Spec, count: int | dict[str, int], rng: random.Random) -> list[dict]:
    """The scenario of every row, shuffled.

    ``count`` is the category's rows (apportioned to scenarios by weight) or
    rows per sub-category (each apportioned to its scenarios by weight).
    """
    if isinstance(count, int):
        plan = _apportion(list(spec.scenarios), count)
    else:
        subs = spec.subcategories()
        missing = [s for s in subs if s not in count]
        unknown = [s for s in count if s not in subs]
        if missing or unknown:
            key = f"generate.categories.{spec.category}"
            raise SpecError(f"{key}.{(unknown or missing)[0]}: " + (
                f"no such sub-category in {spec.path} (it has: {', '.join(subs)})" if unknown
                else "the spec's sub-category has no count (give it 0 to skip it)"))
        plan = [s for sub in subs for s in _apportion([x for x in spec.scenarios if subcategory(x) == sub], count[sub])]
    rng.shuffle(plan)
    return plan


def _apportion(scenarios: list[dict], n: int) -> list[dict]:
    """``n`` rows over ``scenarios`` by weight, largest remainder first."""
    weights = [float(s.get("weight", 1)) for s in scenarios]
    total = sum(weights)
    quotas = [n * w / total for w in weights]
    counts = [int(q) for q in quotas]
    by_remainder = sorted(range(len(quotas)), key=lambda i: (counts[i] - quotas[i], i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return [s for s, c in zip(scenarios, counts) for _ in range(c)]


def compose(spec: Spec, scenario: dict, catalog: Catalog, rng: random.Random, tools_per_example: int) -> dict:
    """One conversation from a scenario: messages, the tools it shows, meta."""
    variation = draw_axes(spec, scenario, rng)
    slots = Slots(spec, rng, scenario.get("use", []), variation)
    def text(options: list[str]) -> str:
        value = slots.fill(rng.choice(options))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise SpecError(f"{spec.path}: scenario {scenario['name']!r}: a message text filled to a"
                            f" {type(value).__name__}, not a string: {str(value)[:80]}")
        return value

    messages = [{"role": "system", "content": text(spec.system)}]
    n_calls = 0
    for turn in scenario["turns"]:
        if "user" in turn:
            messages.append({"role": "user", "content": text(turn["user"])})
            continue
        message = {"role": "assistant", "content": text(turn["assistant"])}
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
                            "content": text(call["result"])})
        messages.append(message)
        messages.extend(results)
    called = {c["tool"] for t in scenario["turns"] for c in t.get("calls", [])}
    meta = {"category": spec.category, "subcategory": subcategory(scenario), "scenario": scenario["name"],
            "generator": "template"}
    variation = {axis: value for axis, value in variation.items() if axis in slots.used_axes}
    if variation:
        meta["variation"] = variation
    capabilities = list(scenario.get("capabilities", []))
    for axis, value in variation.items():
        capabilities += (spec.axes[axis][value] or {}).get("capabilities", [])
    if capabilities:
        meta["capabilities"] = list(dict.fromkeys(capabilities))
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
