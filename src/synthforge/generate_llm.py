"""The ``openai`` generation backend: a model writes each row from a scaffold.

Every row starts as the template backend's row (same spec, scenario, tools,
variation and seed): that *scaffold* goes into a versioned prompt and the
model rewrites the conversation in its own words. The reply is parsed and run
through the gate's row-level checks; an unusable reply is rejected with its
reason (counted, never a crash). Replies are cached per row under a key of
(model, prompt version, sampling params, seed, row id, prompt), so a re-run
makes zero requests and a killed run resumes where it stopped.

Used by :func:`synthforge.generate.generate` when ``generate.backend: openai``.
"""

from __future__ import annotations

import json
import os
from .catalog import Catalog
from .llm import Client, ask_all, cache_key, json_object
from .params import GenerateParams
from .schema import FormatError, to_canonical
from .columns import row_problems

PROMPT_VERSION = "gen-v1"

SYSTEM = """You write training data for a tool-calling assistant.
Reply with exactly one JSON object and nothing else:
{"messages": [...]} in the OpenAI chat format. Roles: system, user, assistant, tool.
An assistant message that calls tools has "tool_calls": [{"id": "call_1", "type": "function",
"function": {"name": NAME, "arguments": {...}}}]; every call is answered by a following
{"role": "tool", "tool_call_id": ID, "content": RESULT}. Arguments must be valid for the tool's
JSON schema. The conversation ends with an assistant message."""


def prompt(scaffold: dict) -> list[dict]:
    """The chat prompt for one row (versioned by :data:`PROMPT_VERSION`)."""
    meta = scaffold["meta"]
    lines = [
        f"Category: {meta['category']} / {meta['subcategory']}.",
        f"Capabilities to show: {', '.join(meta.get('capabilities', [])) or 'tool use'}.",
        f"Variation: {json.dumps(meta.get('variation', {}))}.",
        "Tools available (JSON schema): " + json.dumps([t["function"] for t in scaffold["tools"]], ensure_ascii=False),
        "Outline to follow (rewrite every message in your own words, keep the tool calls' intent, "
        "invent realistic, concise tool results):",
        json.dumps(scaffold["messages"], ensure_ascii=False),
    ]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def parse_reply(text: str, scaffold: dict, catalog: Catalog) -> dict:
    """A row from the model's reply, or :class:`FormatError` saying why it is unusable."""
    data = json_object(text)
    messages = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(messages, list) or not messages:
        raise FormatError("reply has no 'messages' list")
    if not (isinstance(messages[0], dict) and messages[0].get("role") == "system"):
        messages = [scaffold["messages"][0], *messages]
    called = {c.get("function", {}).get("name") for m in messages if isinstance(m, dict)
              for c in (m.get("tool_calls") or []) if isinstance(c, dict)}
    offered = {t["function"]["name"] for t in scaffold["tools"]}
    tools = scaffold["tools"] + [catalog.by_name[n] for n in sorted(called - offered, key=str) if n in catalog]
    row = {"messages": messages, "tools": tools,
           "meta": {**scaffold["meta"], "generator": "openai", "prompt_version": PROMPT_VERSION}}
    canonical = to_canonical(row, row_id=row["meta"]["id"])
    problems = row_problems(canonical, catalog)
    if problems:
        raise FormatError(problems[0])
    return canonical


def run(scaffolds: list[dict], catalog: Catalog, params: GenerateParams, seed: int, cache_path,
        progress: bool = True) -> tuple[list[dict], list[dict], dict]:
    """Rows kept, rows rejected (with reasons) and request stats, in scaffold order."""
    p = params.openai
    client = Client(p, secret=os.environ.get(p.api_key_env))
    sampling = {"temperature": p.temperature, "max_tokens": p.max_tokens}
    prompts = [prompt(s) for s in scaffolds]
    keys = [cache_key(client.model, PROMPT_VERSION, sampling, seed, s["meta"]["id"], q) for s, q in zip(scaffolds, prompts)]
    answers = ask_all(client, cache_path, prompts, keys, lambda i: (seed * 1_000_003 + i) % 2**31, p.concurrency,
                      "generate (openai)", progress)
    kept, rejected = [], []
    for scaffold, entry in zip(scaffolds, answers):
        try:
            if "error" in entry:
                raise FormatError(entry["error"])
            kept.append(parse_reply(entry["reply"], scaffold, catalog))
        except FormatError as exc:
            rejected.append({"id": scaffold["meta"]["id"], "reason": str(exc), "reply": entry.get("reply")})
    return kept, rejected, vars(client.stats)
