"""Rule-based repairs of weak examples, one small function per defect.

Each repair takes a canonical row (changed in place) and the catalog, and
returns True when it changed something. Its docstring lists the fields it
reads and writes. They only use facts already in the row (its messages,
tool results, context object and the catalog's tool descriptions); they
never invent a file, a number or a result. Used by stage ``enhance``::

    >>> applied = [fn.__name__ for fn in repairs_for(row) if fn(row, catalog)]
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from .catalog import Catalog
from .schema import FormatError, call_arguments, call_name, parse_arguments, string_leaves, tool_calls
from .scoring import (CONCRETE, CONTINUATION, GENERIC_GOAL, GENERIC_MEMORY, PLACEHOLDER, REASON, WORD,
                      content_words, norm_words)

STALE_META = ("quality_scores", "label", "_index", "_line_number")
Repair = Callable[[dict, Catalog], bool]


def strip_metadata(row: dict, catalog: Catalog) -> bool:
    """Reads and writes ``meta``: drops ``quality_scores``, ``label``, ``_index`` and ``_line_number``.

    They are the old dataset's own scores, quality label and positions: stale
    once the row is re-scored (``meta.scores`` and ``meta.lineage`` say what
    holds now), and not training data.
    """
    meta = row.get("meta") or {}
    stale = [k for k in STALE_META if k in meta]
    for key in stale:
        del meta[key]
    return bool(stale)


def single_turn(row: dict, catalog: Catalog) -> bool:
    """Reads: the messages of a multi-turn row (calls answered by tool results), ``context.sessionMemory``.

    Writes: ``messages`` = the system message, the first user request and the
    final assistant call; ``context.sessionMemory`` gains one sentence per
    earlier call and what it returned, so the final call still follows from
    facts the model can see.
    """
    messages, context = row["messages"], _context(row)
    assistant = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    if len(assistant) < 2 or context is None or not tool_calls(messages[assistant[-1]]):
        return False
    results = {m.get("tool_call_id"): m.get("content") or "" for m in messages if m.get("role") == "tool"}
    steps = [f"Already ran {_call_phrase(c)}, which returned {summary(results.get(c.get('id'), ''))}."
             for i in assistant[:-1] for c in tool_calls(messages[i])]
    memory = context.get("sessionMemory") if isinstance(context.get("sessionMemory"), str) else ""
    keep = "" if GENERIC_MEMORY.match(memory.strip()) else memory.strip()
    context["sessionMemory"] = " ".join(filter(None, [keep, *steps]))
    first_user = next(m for m in messages if m.get("role") == "user")
    system = [m for m in messages[:1] if m.get("role") == "system"]
    row["messages"] = [*system, first_user, messages[assistant[-1]]]
    return True


def natural_request(row: dict, catalog: Catalog) -> bool:
    """Reads: the last user message, the call answering it, the tool's description, ``context.subgoal``
    and ``context.primaryGoal``.

    Writes: that user message. A ``Result: {...}`` or JSON continuation
    becomes a request that says what the last step turned up, asks for the
    call's action on its main argument, and why (the subgoal). A natural
    request of under six words gains the goal it serves, from the context.
    Goals this module derived from the call itself are never used.
    """
    messages = row["messages"]
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    call = next((c for m in messages[users[-1] + 1:] for c in tool_calls(m)), None) if users else None
    if call is None:
        return False
    text, context = messages[users[-1]].get("content") or "", _context(row) or {}
    sub, goal = context.get("subgoal"), context.get("primaryGoal")
    derived = isinstance(sub, str) and sub.startswith(_upper_first(_verb_phrase(call, catalog)))
    why = sub if _specific(sub) and not derived else goal if _specific(goal) else None
    if CONTINUATION.match(text):
        found = summary(re.sub(r"^\s*Result\s*:\s*", "", text))
        parts = [f"The last step turned up {found}." if found != "nothing usable" else "",
                 f"Next, please {_action(call, catalog)}.",
                 f"I'm trying to {_lower_first(why)}." if why else ""]
    elif len(WORD.findall(text)) < 6 and why and norm_words(why) != norm_words(text):
        parts = [text.strip().rstrip(".") + ".", f"I'm trying to {_lower_first(why)}."]
    else:
        return False
    messages[users[-1]] = {**messages[users[-1]], "content": " ".join(p for p in parts if p)}
    return True


def fill_session_memory(row: dict, catalog: Catalog) -> bool:
    """Reads: ``context.sessionMemory``, ``context.primaryGoal``, ``context.subgoal``, text of
    ``context.toolContext``, the user request.

    Writes: ``context.sessionMemory``, when it is empty, generic or under 50
    characters: what was there, the goal being worked on, what the user
    asked, and the concrete things (paths, identifiers, numbers) the
    conversation and the context mention. Never the call's own arguments:
    the memory must not hand the model its answer.
    """
    context = _context(row)
    if context is None:
        return False
    memory = context.get("sessionMemory") if isinstance(context.get("sessionMemory"), str) else ""
    if len(memory.strip()) >= 50 and not GENERIC_MEMORY.match(memory.strip()):
        return False
    keep = "" if GENERIC_MEMORY.match(memory.strip()) else memory.strip().rstrip(".")
    goal, request = context.get("primaryGoal"), _request(row)
    asked = _first_sentence(request) if not CONTINUATION.match(request) else ""
    texts = [request, *(v for k in ("toolContext", "subgoal") if isinstance(v := context.get(k), str))]
    things = [t for t in _concrete(" ".join(texts), limit=4) if t not in keep]
    parts = [keep + "." if keep else "",
             f"Working on: {_lower_first(goal)}." if _specific(goal) else "",
             f"The user asked: {asked.rstrip('.')}." if asked and norm_words(asked) != norm_words(str(goal)) else "",
             f"In play: {_join(things)}." if things else ""]
    text = " ".join(p for p in parts if p)
    if not text or text == memory.strip():
        return False
    context["sessionMemory"] = text
    return True


def ground_placeholders(row: dict, catalog: Catalog) -> bool:
    """Reads: the final call's arguments; the request, tool results and context text.

    Writes: each placeholder argument value (``path/to/file.py``,
    ``your_function``, ``<pattern>``) for which the conversation names
    exactly one concrete value of the same shape (a path for a path, an
    identifier for a name). With none or several candidates it is left
    alone: a guess would be worse than the placeholder.
    """
    call = _final_call(row)
    if call is None:
        return False
    args = _args(call)
    context = _context(row) or {}
    texts = [m.get("content") or "" for m in row["messages"] if m.get("role") in ("user", "tool")]
    texts += [v for v in context.values() if isinstance(v, str)]
    found = _concrete(" ".join(texts), limit=50)
    changed = False
    for key, value in args.items():
        if not (isinstance(value, str) and PLACEHOLDER.search(value.strip())):
            continue
        pathlike = _pathlike(value) or "." in value
        same = [t for t in found if _pathlike(t) == pathlike and not t[0].isdigit()]
        if len(same) == 1:
            args[key], changed = same[0], True
    if changed:
        call["function"]["arguments"] = json.dumps(args, ensure_ascii=False)
    return changed


def explain_tool_context(row: dict, catalog: Catalog) -> bool:
    """Reads: ``context.toolContext``, ``context.subgoal``, ``context.primaryGoal``, the final call.

    Writes: ``context.toolContext``, when it is not text or does not say why
    (text that already gives a reason is left alone): why this tool, on this
    argument, is the next step, from the subgoal and the goal. An object's
    own ``why``/``reason`` text is kept when it gives one.
    """
    context = _context(row)
    value = (context or {}).get("toolContext")
    if context is None or (isinstance(value, str) and REASON.search(value)):
        return False
    call = _final_call(row)
    if call is None:
        return False
    own = [v for k, v in value.items() if k in ("why", "reason", "rationale") and isinstance(v, str)
           and REASON.search(v)] if isinstance(value, dict) else []
    sub, goal = context.get("subgoal"), context.get("primaryGoal")
    derived = isinstance(sub, str) and sub.startswith(_upper_first(_verb_phrase(call, catalog)))
    target = _main_argument(call)
    head = f"Calling {call_name(call)}" + (f" on {_short(target)}" if target else "")
    if own:
        why = own[0].strip().rstrip(".")
    elif _specific(sub) and not derived:
        why = f"the current step is to {_lower_first(sub)}"
    elif _specific(goal):
        why = f"it is the next step towards the goal ({_lower_first(goal)})"
    else:
        why = "the next step depends on what it shows"
    tail = f", a step towards the goal ({_lower_first(goal)})" if _specific(goal) and "goal" not in why else (
        ", so the following step works from what the workspace shows rather than a guess")
    context["toolContext"] = f"{head} because {why}{tail}."
    return True


def fix_goals(row: dict, catalog: Catalog) -> bool:
    """Reads: ``context.primaryGoal``, ``context.subgoal``, the user request, the final call.

    Writes: ``context.primaryGoal`` when it is generic or missing (the
    request's first sentence, if the request is natural), and
    ``context.subgoal`` when it is missing, generic, repeats the goal or
    shares nothing with the call (the call's action on its main argument).
    """
    context, call = _context(row), _final_call(row)
    if context is None or call is None:
        return False
    changed = False
    goal, sub = context.get("primaryGoal"), context.get("subgoal")
    request = _request(row)
    if not _specific(goal) and not CONTINUATION.match(request) and (first := _first_sentence(request)):
        context["primaryGoal"], goal, changed = first.rstrip("."), first.rstrip("."), True
    anchors = content_words(f"{request} {' '.join(string_leaves(_args(call)))} {call_name(call) or ''}")
    if not _specific(sub) or norm_words(str(sub)) == norm_words(str(goal)) or not content_words(str(sub)) & anchors:
        target = _main_argument(call)
        what = _upper_first(_verb_phrase(call, catalog))
        context["subgoal"] = f"{what}: {target}" if target else what
        changed = True
    return changed


def explain_tool_calls(row: dict, catalog: Catalog) -> bool:
    """Reads: assistant ``tool_calls``, the tools' descriptions.

    Writes: the ``content`` of chat tool-call turns that have no explanation
    (under four words): which tool it uses and what that tool does.
    """
    if _context(row) is not None:
        return False
    descriptions = {t["function"]["name"]: t["function"].get("description", "") for t in row.get("tools") or []}
    changed = False
    for message in row["messages"]:
        calls = tool_calls(message)
        if message.get("role") != "assistant" or not calls or len((message.get("content") or "").split()) >= 4:
            continue
        parts = [f"`{call_name(c)}` ({_lower_first(_description(call_name(c), descriptions, catalog))})"
                 for c in calls]
        lead = "I'll use " if len(parts) == 1 else "These are independent, so I'll run them in parallel: "
        message["content"] = lead + " and ".join(parts) + "."
        changed = True
    return changed


CONTEXT_REPAIRS: tuple[Repair, ...] = (single_turn, ground_placeholders, fill_session_memory, fix_goals,
                                       natural_request, explain_tool_context, strip_metadata)
CHAT_REPAIRS: tuple[Repair, ...] = (explain_tool_calls, strip_metadata)


def repairs_for(row: dict, *, single: bool = True) -> tuple[Repair, ...]:
    """The repairs that apply to ``row``, in order (``single``: context rows become single-turn)."""
    if _context(row) is None:
        return CHAT_REPAIRS
    return CONTEXT_REPAIRS if single else CONTEXT_REPAIRS[1:]


def summary(text: str) -> str:
    """A short phrase of the concrete things in a tool result (paths, identifiers, numbers, counts)."""
    try:
        value: Any = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        value = text
    things = _concrete(" ".join(string_leaves(value)) if not isinstance(value, str) else value)
    if isinstance(value, list) or (isinstance(value, dict) and any(isinstance(v, list) for v in value.values())):
        items = value if isinstance(value, list) else next(v for v in value.values() if isinstance(v, list))
        if things and len(items) <= len(things):
            return _join(things)
        if things:
            return f"{len(items)} results, including {_join(things)}"
        return f"{len(items)} result(s)"
    return _join(things) if things else "nothing usable"


def _pathlike(text: str) -> bool:
    return "/" in text or re.search(r"\.[a-z]{1,5}$", text) is not None


def _verb_phrase(call: dict, catalog: Catalog) -> str:
    """'read a file from the workspace' from the tool's description ('run NAME' for a tool the catalog lacks)."""
    name = call_name(call) or "the tool"
    if name not in catalog:
        return f"run {name}"
    return _lower_first(re.split(r"[.,;]", _description(name, {}, catalog))[0]) or f"run {name}"


def _main_argument(call: dict) -> str:
    """The first short text argument (a path, a symbol, a pattern, a command), or ''."""
    return next((v for v in _args(call).values() if isinstance(v, str) and 0 < len(v) <= 80), "")


def _request(row: dict) -> str:
    return next((m.get("content") or "" for m in reversed(row["messages"]) if m.get("role") == "user"), "")


def _action(call: dict, catalog: Catalog) -> str:
    """'read a file from the workspace (file_path src/app.py)' from the tool's description and arguments."""
    what = _verb_phrase(call, catalog)
    args = _args(call)
    shown = [f"{k} {v}" for k, v in args.items() if isinstance(v, (str, int, float)) and not isinstance(v, bool)][:2]
    return f"{what} ({', '.join(shown)})" if shown else what


def _description(name: str | None, descriptions: dict, catalog: Catalog) -> str:
    text = descriptions.get(name) or (catalog.by_name[name]["function"].get("description", "") if name in catalog
                                      else "")
    return re.sub(r"^\w+:\s*", "", text.strip()) or "the tool"


def _args(call: dict) -> dict:
    try:
        return parse_arguments(call_arguments(call))
    except FormatError:
        return {}


def _final_call(row: dict) -> dict | None:
    last = row["messages"][-1] if row["messages"] else {}
    calls = tool_calls(last) if last.get("role") == "assistant" else []
    return calls[0] if calls else None


def _call_phrase(call: dict) -> str:
    args = _args(call)
    shown = ", ".join(f"{k}={_short(json.dumps(v, ensure_ascii=False))}" for k, v in list(args.items())[:2])
    return f"{call_name(call)}({shown})"


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _context(row: dict) -> dict | None:
    context = (row.get("meta") or {}).get("context")
    return context if isinstance(context, dict) else None


def _specific(value: Any) -> bool:
    return isinstance(value, str) and len(value.split()) >= 3 and not GENERIC_GOAL.match(value.strip())


def _concrete(text: str, limit: int = 3) -> list[str]:
    """Up to ``limit`` distinct paths, file names, identifiers and numbers-with-words from ``text``."""
    found = []
    for token in re.findall(r"[\w./:\-`]+", text):
        token = token.strip("`.,:;")
        if len(token) >= 3 and CONCRETE.search(token) and not token.isdigit() and token not in found:
            found.append(token)
        if len(found) == limit:
            break
    return found


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _first_sentence(text: str) -> str:
    first = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0].strip()
    return first[:160] if len(first.split()) >= 3 else ""


def _lower_first(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].lower() + text[1:] if text[1:2].islower() or len(text) < 2 else text


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]
