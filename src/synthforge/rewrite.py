"""Rewriters of weak rows for stage ``enhance``: the rule repairs, or a model.

``RuleRewriter`` (``enhance.rewriter: rules``) applies the repairs of
:mod:`synthforge.repairs` that fit the row; it is deterministic, so it gets
one attempt. ``LLMRewriter`` (``enhance.rewriter: openai``) asks an
OpenAI-compatible server (``enhance.openai``, the generation backend's
client and cache) to rewrite the row, given the weaknesses the scorer
found; it gets ``enhance.max_attempts`` attempts, each with its own seed.
A reply that is not a usable row (no JSON, no messages, a lost context
object, a call the gate's structural rules refuse) is a failed attempt
with its reason, never a crash.

Both return, per row, ``(rewritten row, what was done)`` or the reason
there is no rewrite.

    rewriter = RuleRewriter(catalog, single=True)
    results = rewriter.rewrite(rows, scores, attempt=1)
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

from .catalog import Catalog
from .columns import CONTEXT_KEYS, row_problems
from .llm import Client, ask_all, cache_key, json_object
from .params import EnhanceParams
from .repairs import repairs_for, strip_metadata
from .schema import FormatError, row_digest, to_canonical, tool_names
from .scoring import overall

PROMPT_VERSION = "rewrite-v1"

SYSTEM = """You improve training examples for a tool-calling coding assistant.
You get one example as JSON and the weaknesses a grader found in it.
Reply with exactly one JSON object and nothing else: the improved example, of the form
{"messages": [...], "context": {...}}. Rules:
- Keep the final tool call's tool and intent; arguments must stay valid for the tool's JSON schema.
- Use only facts the example already contains; do not invent files, numbers or results.
- The user's request must read like a developer typing, never pasted JSON or "Result: ...".
- When the example has a context object, keep its keys: sessionMemory (concrete prior facts),
  toolContext (text saying WHY this tool is the next step), primaryGoal, subgoal (a distinct,
  more specific step that the call serves)."""

Result = tuple[dict, list[str]] | str


class RuleRewriter:
    attempts = 1

    def __init__(self, catalog: Catalog, *, single: bool, min_score: float):
        self.catalog, self.single, self.min_score = catalog, single, min_score

    def rewrite(self, rows: list[dict], scores: list[dict], attempt: int) -> list[Result]:
        out: list[Result] = []
        for row, score in zip(rows, scores):
            new = copy.deepcopy(row)
            applied = [fn.__name__ for fn in repairs_for(new, single=self.single) if fn(new, self.catalog)]
            if applied and applied != ["strip_metadata"]:
                out.append((new, applied))
            else:
                out.append(f"score {overall(score)} is weak (enhance.min_score {self.min_score}) and no repair applies")
        return out

    @property
    def stats(self) -> dict:
        """Request counts (none)."""
        return {}


class LLMRewriter:
    def __init__(self, p: EnhanceParams, catalog: Catalog, *, cache_path: str | Path, seed: int,
                 progress: bool = True):
        from dataclasses import replace

        self.params = replace(p.openai, temperature=p.rewrite_temperature)
        self.catalog, self.seed, self.progress, self.attempts = catalog, seed, progress, p.max_attempts
        self.client = Client(self.params, secret=os.environ.get(self.params.api_key_env))
        self.cache_path = Path(cache_path)

    def rewrite(self, rows: list[dict], scores: list[dict], attempt: int) -> list[Result]:
        p = self.params
        sampling = {"temperature": p.temperature, "max_tokens": p.max_tokens}
        prompts = [prompt(r, s) for r, s in zip(rows, scores)]
        seeds = [(self.seed * 1_000_003 + attempt * 7_919 + i) % 2**31 for i in range(len(rows))]
        keys = [cache_key(self.client.model, PROMPT_VERSION, sampling, s, row_digest(r).hex(), q)
                for r, s, q in zip(rows, seeds, prompts)]
        answers = ask_all(self.client, self.cache_path, prompts, keys, lambda i: seeds[i], p.concurrency,
                          f"rewrite (openai, attempt {attempt})", self.progress)
        out: list[Result] = []
        for row, entry in zip(rows, answers):
            if "error" in entry:
                out.append(f"rewrite {entry['error']}")
                continue
            try:
                out.append((parse_reply(entry["reply"], row, self.catalog), [f"llm:{PROMPT_VERSION}"]))
            except FormatError as exc:
                out.append(f"rewrite unusable: {exc}")
        return out

    @property
    def stats(self) -> dict:
        return vars(self.client.stats)


def prompt(row: dict, scores: dict) -> list[dict]:
    """The rewriting prompt for one row (versioned by :data:`PROMPT_VERSION`)."""
    weak = [f"- {d} {s['score']}/5: {s['reason']}" for d, s in scores.items() if s["score"] < 5]
    shown = {"context": (row.get("meta") or {}).get("context"), "messages": row["messages"],
             "tools": [t["function"] for t in row.get("tools") or []]}
    text = ("Example:\n" + json.dumps({k: v for k, v in shown.items() if v}, ensure_ascii=False)
            + "\nWeaknesses:\n" + "\n".join(weak))
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]


def parse_reply(text: str, original: dict, catalog: Catalog) -> dict:
    """The rewritten row from a reply, or :class:`FormatError` saying why it is unusable."""
    data = json_object(text)
    messages = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise FormatError("reply has no 'messages' list")
    first = original["messages"][0]
    if first.get("role") == "system" and messages[0].get("role") != "system":
        messages = [first, *messages]
    meta = copy.deepcopy(original.get("meta") or {})
    if isinstance(meta.get("context"), dict):
        context = data.get("context")
        if not (isinstance(context, dict) and all(isinstance(context.get(k), str) for k in CONTEXT_KEYS)):
            raise FormatError(f"reply lost the context object (needs text {', '.join(CONTEXT_KEYS)})")
        meta["context"] = {k: context[k] for k in CONTEXT_KEYS}
    row = {"messages": messages, "tools": _tools(original, messages, catalog), "meta": meta}
    row = to_canonical(row)
    strip_metadata(row, catalog)
    if problems := row_problems(row, catalog):
        raise FormatError(problems[0])
    return row


def _tools(original: dict, messages: list[dict], catalog: Catalog) -> list[dict]:
    """The original's tool definitions plus the catalog's for any tool the rewrite newly calls."""
    tools = list(original.get("tools") or [])
    have = set(tool_names(tools))
    called = [c.get("function", {}).get("name") for m in messages for c in (m.get("tool_calls") or [])
              if isinstance(c, dict) and isinstance(c.get("function"), dict)]
    return tools + [catalog.by_name[n] for n in dict.fromkeys(called) if n in catalog and n not in have]
