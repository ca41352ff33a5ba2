"""Generate a reply and score the tool calls in it.

A reply in the Qwen2.5 style carries calls as
``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``. Scoring
compares the first generated call with the first expected call: does it
parse, is the tool name right, are the arguments valid for the tool's JSON
Schema, are they exactly the expected ones. The tool name is also read from
a call that opens well but does not parse (cut off by the token budget, or
broken arguments): choosing the tool and writing valid JSON are separate
skills, and ``call_parse_rate`` keeps the strict measure.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import jsonschema

from .chat import render
from .schema import call_arguments, call_name, parse_arguments, FormatError

CALL_RE = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
OPENING_RE = re.compile(r'<tool_call>\s*\{\s*"name"\s*:\s*"([^"\\]+)"')


def generate_reply(model, tokenizer, messages: list[dict], tools: list[dict] | None, max_tokens: int) -> str:
    """Greedy continuation of a conversation with the model's chat template."""
    from mlx_lm.generate import generate

    prompt = render(tokenizer, messages, tools, generation_prompt=True)
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    return generate(model, tokenizer, ids, max_tokens=max_tokens, verbose=False)


def parse_calls(text: str) -> list[dict]:
    """The well-formed ``{"name", "arguments"}`` objects in a reply."""
    calls = []
    for body in CALL_RE.findall(text):
        try:
            obj = json.loads(body)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("name"), str):
            calls.append(obj)
    return calls


@dataclass(frozen=True)
class CallScore:
    parsed: bool
    name_ok: bool
    args_valid: bool
    args_exact: bool


def score_reply(reply: str, expected: dict, tools: list[dict] | None) -> CallScore:
    """Score a reply against the first expected tool call of a turn."""
    want = expected["tool_calls"][0]
    calls = parse_calls(reply)
    if not calls:
        opening = OPENING_RE.search(reply)
        return CallScore(False, bool(opening) and opening.group(1) == call_name(want), False, False)
    got = calls[0]
    name_ok = got["name"] == call_name(want)
    args = got.get("arguments")
    try:
        want_args = parse_arguments(call_arguments(want))
    except FormatError:
        want_args = None
    return CallScore(True, name_ok, _valid(got["name"], args, tools), name_ok and args == want_args)


def _valid(name: str, args, tools: list[dict] | None) -> bool:
    schema = next((t["function"].get("parameters", {}) for t in tools or []
                   if t.get("function", {}).get("name") == name), None)
    if schema is None or not isinstance(args, dict):
        return False
    return jsonschema.Draft202012Validator(schema).is_valid(args)
