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
    """The subset of a canonical row written to the final splits."""
    out = {"messages": row["messages"]}
    if row.get("tools"):
        out["tools"] = row["tools"]
    if row.get("meta"):
        out["meta"] = row["meta"]
    return out


# --- seed-003 style -----------------------------------------------------------

_CALL_RE = re.compile(r"tool_call:\s*(?P<name>[\w.\-]+)\s*\n\s*arguments:\s*", re.MULTILINE)


def is_seed003(row: dict) -> bool:
    return "conversations" in row and "messages" not in row


def from_seed003(row: dict, *, row_id: str | None = None) -> dict:
    """Convert a seed-003 style row into a canonical row.

    Assistant text of the form ``tool_call: NAME\\narguments: {...}`` becomes
    an OpenAI tool call (``call_1``, ``call_2`` ...); any text before the
    first ``tool_call:`` stays as the message content. The ``label`` and any
    extra top-level keys move into ``meta``.
    """
    turns = row.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise FormatError("'conversations' must be a non-empty list")
    messages, counter = [], 0
    for n, turn in enumerate(turns):
        role, content = _turn(turn, n)
        message = {"role": role, "content": content}
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
