"""Canonical chat rows and conversions from other formats.

Canonical row (what every stage reads and writes, and what ``mlx_lm`` loads
unchanged from ``train.jsonl`` / ``valid.jsonl`` / ``test.jsonl``)::

    {"messages": [{"role": "system" | "user" | "assistant" | "tool", ...}],
     "tools": [{"type": "function", "function": {"name", "description", "parameters"}}],
     "meta": {"id": ..., "category": ..., ...}}

Assistant messages may carry OpenAI ``tool_calls`` whose ``arguments`` are a
JSON string or an object; ``tool`` messages answer them by ``tool_call_id``.
``meta`` holds lineage and labels; ``mlx_lm`` ignores it.

The seed-003 style (``conversations`` with ``role/content`` or
``from/value``, a ``label``, assistant text ``tool_call: NAME\\narguments:
{...}``) is converted by :func:`from_seed003`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any, Iterator

ROLES = ("system", "user", "assistant", "tool")
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                  "assistant": "assistant", "tool": "tool", "function": "tool", "observation": "tool"}


class FormatError(ValueError):
    """A row cannot be read as a chat example; the message says why."""


def tool_calls(message: dict) -> list[dict]:
    """The ``tool_calls`` of a message (an empty list when it has none)."""
    calls = message.get("tool_calls") or []
    return calls if isinstance(calls, list) else []


def call_name(call: dict) -> str | None:
    fn = call.get("function") if isinstance(call, dict) else None
    name = fn.get("name") if isinstance(fn, dict) else None
    return name if isinstance(name, str) else None


def call_arguments(call: dict) -> Any:
    fn = call.get("function") if isinstance(call, dict) else None
    return fn.get("arguments") if isinstance(fn, dict) else None


def parse_arguments(arguments: Any) -> dict:
    """Arguments as an object; a JSON string is decoded. Raises ``FormatError``."""
    if isinstance(arguments, dict):
        return arguments
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments)
        except json.JSONDecodeError as exc:
            raise FormatError(f"arguments are not valid JSON ({exc.msg} at column {exc.colno})") from None
        if isinstance(value, dict):
            return value
        raise FormatError(f"arguments decode to {type(value).__name__}, expected an object")
    raise FormatError(f"arguments are {type(arguments).__name__}, expected an object or a JSON string")


def iter_calls(messages: list[dict]) -> Iterator[tuple[int, dict]]:
    """Every (message index, tool call) in a conversation."""
    for i, message in enumerate(messages):
        for call in tool_calls(message):
            yield i, call


def called_tools(row: dict) -> list[str]:
    """Names of the tools a row calls, in order."""
    return [name for _, c in iter_calls(row.get("messages", [])) if (name := call_name(c))]


def tool_names(tools: list[dict]) -> list[str]:
    """Names of the tool definitions of a row."""
    return [t["function"]["name"] for t in tools if isinstance(t, dict) and "function" in t]


def string_leaves(value: Any) -> list[str]:
    """Every string inside ``value`` (nested dicts and lists), in document order."""
    out, stack = [], [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            stack.extend(reversed(list(v.values())))
        elif isinstance(v, list):
            stack.extend(reversed(v))
    return out


def row_digest(row: dict) -> bytes:
    """Content hash of a row's messages and tools: rows with equal digests are exact duplicates."""
    text = json.dumps([row["messages"], row.get("tools")], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def for_template(messages: list[dict]) -> list[dict]:
    """Messages ready for a chat template: tool-call arguments become objects.

    Qwen's template renders ``arguments | tojson``; a JSON string would be
    encoded twice.
    """
    out = copy.deepcopy(messages)
    for message in out:
        for call in tool_calls(message):
            fn = call.get("function", {})
            fn["arguments"] = parse_arguments(fn.get("arguments", {}))
    return out


def mlx_row(row: dict) -> dict:
    """The subset of a canonical row written to the final splits (a context object rendered in)."""
    out = {"messages": render_context(row["messages"], (row.get("meta") or {}).get("context"))}
    if row.get("tools"):
        out["tools"] = row["tools"]
    if row.get("meta"):
        out["meta"] = row["meta"]
    return out


def render_context(messages: list[dict], context: Any) -> list[dict]:
    """Messages with a seed-003 context object made visible to the model.

    ``sessionMemory``, ``primaryGoal`` and ``subgoal`` are what an agent
    harness hands the model, so they join the system message (one is added
    when the row has none). ``toolContext`` says why the tool is used: it
    becomes the text of the first assistant tool-call turn when that turn has
    none, so the model learns to say why before it acts. Rows without a
    context object are returned unchanged.
    """
    if not isinstance(context, dict):
        return messages
    lines = [f"{label}: {text.strip()}" for key, label in CONTEXT_LABELS
             if isinstance(text := context.get(key), str) and text.strip()]
    out = [dict(m) for m in messages]
    if lines:
        block = "Context\n" + "\n".join(lines)
        if out and out[0].get("role") == "system":
            out[0]["content"] = f"{(out[0].get('content') or '').rstrip()}\n\n{block}".lstrip()
        else:
            out.insert(0, {"role": "system", "content": block})
    why = context.get("toolContext")
    turn = next((m for m in out if m.get("role") == "assistant" and tool_calls(m)), None)
    if isinstance(why, str) and why.strip() and turn is not None and not (turn.get("content") or "").strip():
        turn["content"] = why.strip()
    return out


CONTEXT_LABELS = (("sessionMemory", "Session memory"), ("primaryGoal", "Goal"), ("subgoal", "Current step"))


# --- seed-003 style -----------------------------------------------------------

_CALL_RE = re.compile(r"tool_call:\s*(?P<name>[\w.\-]+)\s*\n\s*arguments:\s*", re.MULTILINE)


def is_seed003(row: dict) -> bool:
    return "conversations" in row and "messages" not in row


def from_seed003(row: dict, *, row_id: str | None = None) -> dict:
    """Convert a seed-003 style row into a canonical row.

    Assistant text of the form ``tool_call: NAME\\narguments: {...}`` becomes
    an OpenAI tool call (``call_1``, ``call_2`` ...); any text before the
    first ``tool_call:`` stays as the message content. A user turn
    ``Result: {...}`` right after a one-call assistant turn is that call's
    result and becomes a ``tool`` message. The ``label`` and any extra
    top-level keys (the ``context`` object among them) move into ``meta``.
    """
    turns = row.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise FormatError("'conversations' must be a non-empty list")
    messages, counter = [], 0
    for n, turn in enumerate(turns):
        role, content = _turn(turn, n)
        message = {"role": role, "content": content}
        if result := _result_of(messages, role, content):
            messages.append(result)
            continue
        if role == "assistant":
            text, calls = _split_calls(content, counter)
            counter += len(calls)
            message = {"role": "assistant", "content": text}
            if calls:
                message["tool_calls"] = calls
        messages.append(message)
    meta = {k: v for k, v in row.items() if k not in ("conversations", "tools")}
    meta["source_format"] = "seed003"
    if row_id:
        meta["id"] = row_id
    out = {"messages": messages, "meta": meta}
    if isinstance(row.get("tools"), list):
        out["tools"] = row["tools"]
    return out


def _result_of(messages: list[dict], role: str, content: str) -> dict | None:
    """A ``Result: {...}`` user turn right after a one-call assistant turn is that call's tool result."""
    previous = messages[-1] if messages else {}
    calls = tool_calls(previous)
    if role != "user" or previous.get("role") != "assistant" or len(calls) != 1:
        return None
    text = content.strip()
    if not text.startswith("Result:"):
        return None
    return {"role": "tool", "tool_call_id": calls[0]["id"], "content": text.removeprefix("Result:").strip()}


def _turn(turn: Any, n: int) -> tuple[str, str]:
    if not isinstance(turn, dict):
        raise FormatError(f"conversations[{n}] is {type(turn).__name__}, expected an object")
    role = turn.get("role", turn.get("from"))
    content = turn.get("content", turn.get("value"))
    mapped = SHAREGPT_ROLES.get(role) if isinstance(role, str) else None
    if mapped is None:
        raise FormatError(f"conversations[{n}] has unknown role {role!r}")
    if not isinstance(content, str):
        raise FormatError(f"conversations[{n}] content is {type(content).__name__}, expected text")
    return mapped, content


def _split_calls(text: str, start: int) -> tuple[str, list[dict]]:
    matches = list(_CALL_RE.finditer(text))
    if not matches:
        return text, []
    decoder = json.JSONDecoder()
    calls = []
    for k, m in enumerate(matches):
        end = matches[k + 1].start() if k + 1 < len(matches) else len(text)
        body = text[m.end():end].strip()
        try:
            args, _ = decoder.raw_decode(body)
        except json.JSONDecodeError:
            args = body  # kept as a string: the gate reports it as unparseable
        calls.append({
            "id": f"call_{start + k + 1}",
            "type": "function",
            "function": {"name": m.group("name"),
                         "arguments": args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)},
        })
    return text[: matches[0].start()].strip(), calls


def to_canonical(row: dict, *, row_id: str | None = None) -> dict:
    """Any supported row format -> canonical. Raises ``FormatError``."""
    if is_seed003(row):
        return from_seed003(row, row_id=row_id)
    if not isinstance(row.get("messages"), list):
        raise FormatError("row has neither 'messages' nor 'conversations'")
    return row
