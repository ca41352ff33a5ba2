"""Derived columns of the data gate: one flat record per input line.

Great Expectations checks tables, not nested conversations, so every line of
an input file becomes one record of plain values (:data:`COLUMNS`); the
suites in ``expectations/`` state the rules on those columns. A record also
carries notes: a readable detail per failing column (``message 3: call 'read'
arguments break its schema: ...``), used as the rejection reason.

Columns measure; suites judge. ``tokens`` is a count, and the rule
``tokens <= max_seq_length`` lives in the suite with the value passed as a
suite parameter. Token columns are filled only when a tokenizer is given
(the splits gate); they are None otherwise, and GX ignores None values.

    >>> flat = Flattener(Rules(catalog=load_catalog("data/tools/coding_agent.json")))
    >>> record, notes, row = flat.line(line)        # line: an io.Line
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import io
from .catalog import Catalog
from .schema import (ROLES, FormatError, call_arguments, call_name, parse_arguments, row_digest, string_leaves,
                     to_canonical, tool_calls)

COLUMNS = {  # name -> what it holds
    "parse_error": "why the line is not a readable chat row (None when it is)",
    "role_order_ok": "optional system first, a user before any assistant, tool results only after a tool call",
    "last_role": "role of the last message",
    "unanswered_calls": "tool calls before the last message without a tool result",
    "orphan_results": "tool results answering no earlier call",
    "args_invalid_json": "tool-call arguments that are not a JSON object",
    "args_schema_errors": "tool-call arguments that break the tool's JSON Schema",
    "unknown_tools": "calls to tools missing from the catalog",
    "empty_content": "system, user and tool messages, and assistant messages without calls, that are empty",
    "shortest_user_chars": "characters of the shortest user message",
    "secrets": "credentials found by detect-secrets (private keys, cloud keys, tokens)",
    "emails": "e-mail addresses outside the allowed domains",
    "duplicate_of": "file:line of an earlier row with the same messages and tools (None for the first)",
    "context_valid": "context object (seed-003 style) has sessionMemory, toolContext, primaryGoal, subgoal",
    "session_memory_chars": "characters of context.sessionMemory",
    "tool_context_type": "JSON type of context.toolContext",
    "tokens": "tokens under the target model's chat template",
    "trainable_tokens": "tokens trained after masking (assistant turns)",
    "eot_untrained": "assistant turns whose end-of-turn token is not trained",
    "category": "meta.category",
    "imported": "converted from another format (legacy data): its category counts as expected, not as extra",
}
CONTEXT_KEYS = ("sessionMemory", "toolContext", "primaryGoal", "subgoal")
Note = Callable[[str, str], None]


@dataclass(frozen=True)
class Rules:
    """What flattening needs: the catalog, optional secret scanner and tokenizer."""

    catalog: Catalog
    scanner: Any = None  # sensitive.Scanner; secrets/emails columns are None without one
    tokenizer: Any = None  # a tokenizer with a chat template; token columns are None without one
    max_line_bytes: int = 1 << 20


class Flattener:
    """Turns lines into records; remembers content hashes to flag exact duplicates."""

    def __init__(self, rules: Rules):
        self.rules = rules
        self.seen: dict[bytes, str] = {}
        self._eos = _eos_id(rules.tokenizer) if rules.tokenizer is not None else None

    def line(self, line: io.Line) -> tuple[dict, dict[str, list[str]], dict | None]:
        """(record, notes per column, canonical row or None when unreadable)."""
        try:
            if line.error:
                raise FormatError(line.error)
            if len(line.text) > self.rules.max_line_bytes:
                raise FormatError(f"line is {len(line.text.encode('utf-8')):,} bytes"
                                  f" (> validate.max_line_bytes {self.rules.max_line_bytes:,})")
            row = canonical(line, self.rules.catalog)
        except FormatError as exc:
            return {"parse_error": str(exc), "category": "unreadable"}, {"parse_error": [str(exc)]}, None
        record, notes = self.row(row)
        key = row_digest(row)
        if (first := self.seen.get(key)) is not None:
            record["duplicate_of"] = first
            notes["duplicate_of"] = [f"same messages and tools as {first}"]
        else:
            self.seen[key] = line.where
        return record, notes, row

    def row(self, row: dict) -> tuple[dict, dict[str, list[str]]]:
        """Record and notes of one canonical row (no duplicate check)."""
        messages = [m if isinstance(m, dict) else {"role": None} for m in row["messages"]]
        notes: dict[str, list[str]] = {}

        def note(column: str, text: str) -> None:
            notes.setdefault(column, []).append(text)

        order = role_order_problem(messages)
        if order:
            note("role_order_ok", order)
        last = messages[-1].get("role") if messages else ""
        last = last if isinstance(last, str) else repr(last)
        if last != "assistant":
            note("last_role", f"last message is {last or 'missing'!r}, expected 'assistant'")
        arguments = check_calls(messages, self.rules.catalog, note)
        shortest = check_text(messages, note)
        meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
        record = {"role_order_ok": not order, "last_role": sys.intern(last),
                  **{c: len(notes.get(c, ())) for c in COUNTED}, "shortest_user_chars": shortest,
                  "category": sys.intern(str(meta.get("category") or "unknown")),
                  "imported": bool(meta.get("source_format"))}
        if self.rules.scanner is not None:
            record.update(self._sensitive(messages, arguments, note))
        record.update(context_columns(meta.get("context"), note))
        if self.rules.tokenizer is not None:
            record.update(self._tokens(row, note))
        return record, notes

    def _sensitive(self, messages: list[dict], arguments: list[tuple[int, Any]], note: Note) -> dict:
        found = {"secret": 0, "email": 0}
        for i, text in message_texts(messages, arguments):
            for f in self.rules.scanner.scan(text):
                found[f.kind] = found.get(f.kind, 0) + 1
                note("secrets" if f.kind == "secret" else "emails", f"message {i}: {f.type} ({f.redacted})")
        return {"secrets": found["secret"], "emails": found["email"]}

    def _tokens(self, row: dict, note: Note) -> dict:
        from .chat import encode

        try:
            enc = encode(self.rules.tokenizer, row)
        except Exception as exc:  # a template that cannot render the row: report it on the row
            note("trainable_tokens", f"the chat template cannot render this row: {' '.join(str(exc).split())[:200]}")
            return {"tokens": None, "trainable_tokens": 0, "eot_untrained": None}
        turns = sum(1 for m in row["messages"] if isinstance(m, dict) and m.get("role") == "assistant")
        eot = sum(1 for t, m in zip(enc.ids, enc.mask) if m and t == self._eos)
        if turns > eot:
            note("eot_untrained", f"{turns - eot} of {turns} assistant turns have no trained end-of-turn token")
        return {"tokens": len(enc.ids), "trainable_tokens": enc.trained, "eot_untrained": turns - eot}


COUNTED = ("unanswered_calls", "orphan_results", "args_invalid_json", "args_schema_errors",
           "unknown_tools", "empty_content")


def canonical(line: io.Line, catalog: Catalog | None = None) -> dict:
    """The canonical row of a parsed line.

    A seed-003 row gets an id from its file and line (``legacy_tools-000012``)
    and ``meta.source`` (``file:line``); when it lists no tools, the catalog's
    definitions of the tools it calls are attached, plus one distractor
    picked by a hash of the id, so the model still has to choose.
    """
    row = to_canonical(line.row, row_id=None if "id" in line.row else f"{Path(line.path).stem}-{line.lineno:06d}")
    if row is line.row:
        return row
    row["meta"]["source"] = line.where
    if catalog is not None and not row.get("tools"):
        row["tools"] = offered_tools(row, catalog)
    return row


def offered_tools(row: dict, catalog: Catalog) -> list[dict]:
    """Catalog definitions of the tools ``row`` calls, plus one distractor chosen by a hash of its id."""
    called = list(dict.fromkeys(n for n in called_tools(row) if n in catalog))
    others = [n for n in catalog.names if n not in called]
    if others:
        digest = hashlib.blake2b(str(row["meta"].get("id")).encode(), digest_size=4).digest()
        called.append(others[int.from_bytes(digest, "big") % len(others)])
    return [catalog.by_name[n] for n in called]


def _eos_id(tokenizer) -> int | None:
    eos = getattr(tokenizer, "eos_token_id", None)
    return eos if isinstance(eos, int) else None


def role_order_problem(messages: list[dict]) -> str | None:
    """Why the roles are out of order, or None when they are fine."""
    if not messages:
        return "conversation has no messages"
    seen_user = False
    for i, m in enumerate(messages):
        role, prev = m.get("role"), messages[i - 1] if i else {}
        if role not in ROLES:
            return f"message {i} has role {role!r} (expected one of {', '.join(ROLES)})"
        if role == "system" and i:
            return f"message {i} is a system message after the start"
        if role == "assistant" and not seen_user:
            return f"message {i} is an assistant message before any user message"
        if role == "tool" and prev.get("role") != "tool" and not (prev.get("role") == "assistant" and tool_calls(prev)):
            return f"message {i} is a tool result not following an assistant tool call"
        seen_user = seen_user or role == "user"
    return None


def check_calls(messages: list[dict], catalog: Catalog, note: Note) -> list[tuple[int, Any]]:
    """Notes for unanswered calls, orphan results, unknown tools and bad arguments.

    Returns (message index, arguments) of every call: the parsed object, or the raw value when it does not parse.
    """
    answered_at = {_id(m.get("tool_call_id")): i for i, m in enumerate(messages) if m.get("role") == "tool"}
    seen: set = set()
    arguments = []
    for i, m in enumerate(messages):
        if m.get("role") == "tool":
            if (cid := _id(m.get("tool_call_id"))) is None or cid not in seen:
                note("orphan_results", f"message {i}: tool result {m.get('tool_call_id')!r} answers no earlier call")
            continue
        for call in tool_calls(m):
            cid, name = _id(call.get("id")) if isinstance(call, dict) else None, call_name(call)
            seen.add(cid)
            if i < len(messages) - 1 and (cid is None or answered_at.get(cid, -1) <= i):
                note("unanswered_calls", f"message {i}: call {name!r} ({cid}) has no tool result")
            arguments.append((i, check_call(i, name, call, catalog, note)))
    return arguments


def _id(value: Any) -> str | int | None:
    return value if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def check_call(i: int, name: str | None, call: Any, catalog: Catalog, note: Note) -> Any:
    """Notes for one call; its arguments parsed (or raw when they do not parse)."""
    if name not in catalog:
        note("unknown_tools", f"message {i}: call {name!r} names no tool of catalog {catalog.name!r}")
    try:
        args = parse_arguments(call_arguments(call))
    except FormatError as exc:
        note("args_invalid_json", f"message {i}: call {name!r} {exc}")
        return call_arguments(call)
    if name in catalog and (errors := catalog.check_arguments(name, args)):
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        note("args_schema_errors", f"message {i}: call {name!r} arguments break its schema:"
                                   f" {errors[0].removeprefix(f'{name}: ')}{more}")
    return args


def check_text(messages: list[dict], note: Note) -> int | None:
    """Notes for empty required content; the length of the shortest user message."""
    shortest = None
    for i, m in enumerate(messages):
        role, n = m.get("role"), len(text_of(m.get("content")).strip())
        if role == "user":
            shortest = n if shortest is None else min(shortest, n)
        if n == 0 and (role in ("system", "user", "tool") or (role == "assistant" and not tool_calls(m))):
            note("empty_content", f"message {i}: {role} message is empty")
    return shortest


def text_of(content: Any) -> str:
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return content if isinstance(content, str) else ""


def message_texts(messages: list[dict], arguments: list[tuple[int, Any]]):
    """(message index, text) of every content and every string in the calls' ``arguments`` (from check_calls)."""
    for i, m in enumerate(messages):
        if text := text_of(m.get("content")):
            yield i, text
    for i, args in arguments:
        for text in string_leaves(args):
            yield i, text


def context_columns(context: Any, note: Note) -> dict:
    """Columns of a seed-003 context object (all None when the row has none)."""
    if context is None:
        return {}
    if not isinstance(context, dict):
        note("context_valid", f"context is {type(context).__name__}, expected an object")
        return {"context_valid": False}
    missing = [k for k in CONTEXT_KEYS if k not in context]
    wrong = [k for k in ("sessionMemory", "primaryGoal", "subgoal") if k in context and not isinstance(context[k], str)]
    if missing or wrong:
        note("context_valid", f"context lacks {', '.join(missing) or '-'}; not text: {', '.join(wrong) or '-'}")
    memory, tool_context = context.get("sessionMemory"), context.get("toolContext")
    if isinstance(memory, str):
        note("session_memory_chars", f"sessionMemory has {len(memory.strip())} characters: {memory.strip()[:60]!r}")
    if tool_context is not None and not isinstance(tool_context, str):
        note("tool_context_type", f"toolContext is {_json_type(tool_context)}, expected text that says why")
    return {"context_valid": not (missing or wrong),
            "session_memory_chars": len(memory.strip()) if isinstance(memory, str) else None,
            "tool_context_type": _json_type(tool_context) if "toolContext" in context else None}


def _json_type(value: Any) -> str:
    names = {str: "string", dict: "object", list: "array", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def called_tools(row: dict | None) -> tuple[str, ...]:
    """Every tool call's name in a canonical row, sorted (for the tools table)."""
    if row is None:
        return ()
    names = [call_name(c) for m in row["messages"] if isinstance(m, dict) for c in tool_calls(m)]
    return tuple(sorted(sys.intern(n) for n in names if n))


STRUCTURAL = ("role_order_ok", "last_role", *COUNTED)


def row_problems(row: dict, catalog: Catalog) -> list[str]:
    """The structural findings (critical row rules without GX) for one canonical row, as ``column: reason``."""
    _, notes = Flattener(Rules(catalog=catalog)).row(row)
    return [f"{column}: {notes[column][0]}" for column in STRUCTURAL if column in notes]
