"""The default scorer: 1-5 per dimension with a one-line reason, by fixed rules.

Deterministic: the same row always gets the same scores. ``SCORER`` names
the rule set; change it whenever a rule changes, so lineage tells old scores
from new.

Context-object rows (seed-003 style, ``meta.context``) get the seed's five
dimensions; chat rows get four. Every rule is listed here, best first.

``session_memory`` (context rows)
    5 at least 50 characters with a concrete fact (a number, a path, a file
    name, a code identifier); 4 long enough but nothing concrete; 3 under 50
    characters; 2 a generic placeholder ("No previous context.") or under 20;
    1 empty or missing.
``tool_context`` (context rows)
    5 text of at least 80 characters that says why (because, so that, since,
    to confirm, before ...); 4 says why in fewer characters; 3 text that only
    says what the tool does; 2 not text (an object); 1 empty or missing.
``goal_coherence`` (context rows)
    5 ``primaryGoal`` and a distinct ``subgoal`` that shares a word with the
    request or the call; 3 a subgoal unrelated to the request and the call;
    2 a subgoal that repeats the goal, or a generic goal ("Help the user");
    1 either missing.
``prompt_naturalness`` (all rows; the request the row answers)
    5 a natural request of six words or more; 4 shorter but natural; 2 fewer
    than three words, or raw JSON pasted into the text; 1 a ``Result:`` / JSON
    continuation instead of a request.
``response_realism`` (context rows: the answer is a tool call)
    5 one valid call whose arguments use a value from the request or the
    context; 4 valid but not grounded there; 2 no call at the end, or several
    turns where the dataset is single-turn; 1 a call that is unknown or breaks
    its schema, or a placeholder argument (``path/to/file``, ``foo``,
    ``<pattern>``): the call could not be carried out.
``response_realism`` (chat rows: the final answer)
    5 a final answer of 12 words or more; 4 ends on a tool call; 3 five to
    eleven words; 1 shorter.
``tool_call_validity`` (chat rows)
    5 every call names a catalog tool the row defines, with valid arguments;
    4 no calls (a text answer); 3 a call to a tool the row does not define;
    2 arguments that break the schema; 1 an unknown tool or arguments that are
    not JSON.
``explanation_quality`` (chat rows)
    5 every tool-call turn says what it does in four words or more; 4 no
    tool-call turns; 3 some turns unexplained; 2 none explained.

    >>> scores = Scorer(catalog, single_turn=True).score(row)
    >>> scores["session_memory"]   # {"score": 2, "reason": "generic placeholder ..."}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from statistics import mean
from typing import Any

from .catalog import Catalog
from .schema import FormatError, call_arguments, call_name, parse_arguments, string_leaves, tool_calls, tool_names

SCORER = "rules-v3"
CONTEXT_DIMENSIONS = ("session_memory", "tool_context", "goal_coherence", "prompt_naturalness", "response_realism")
CHAT_DIMENSIONS = ("tool_call_validity", "prompt_naturalness", "explanation_quality", "response_realism")

GENERIC_MEMORY = re.compile(r"^(n/?a|none|tbd|-+|no (previous|prior) (context|history)|continuing( the)? task"
                            r"|see above|same as before|as (discussed|before)|user needs help"
                            r"|user is working on (the |some )?(code|project|task))\.?$", re.I)
GENERIC_GOAL = re.compile(r"^(help( the)? user|complete( the)? task|do( the)? task|fix( it| the (bug|issue))?"
                          r"|finish( the task)?|make it work|solve( the)? problem|assist)\.?$", re.I)
CONCRETE = re.compile(r"\d|\w/\w|\b\w+\.[a-z]{1,5}\b|`[^`]+`|\b[a-z]+_[a-z_]+\b|\b[a-z]+[A-Z]\w*|\w\(\)")
REASON = re.compile(r"\b(because|so that|so we|so i|since|in order to|to (confirm|check|see|find|verify|make sure|"
                    r"avoid|rule out|learn|know|understand|locate|pin down)|before|otherwise|which (will|lets|tells)|"
                    r"that way|rather than|instead of|need(s|ed)? to)\b", re.I)
PLACEHOLDER = re.compile(r"(path/to/|\byour_\w+|<[^<>]{1,40}>|^(foo|bar|baz|todo|xxx|example(\.\w+)?|test|string|"
                         r"value|placeholder)$)", re.I)
CONTINUATION = re.compile(r"^\s*(Result\s*:|\{|\[)")
WORD = re.compile(r"[A-Za-z]{2,}")


@dataclass
class Facts:
    """What the rules read from one row, worked out once."""

    messages: list[dict]
    context: dict | None
    request: str  # the last user message before the final assistant turn
    calls: list[tuple[str | None, Any, str | None]] = field(default_factory=list)  # (name, args|None, problem)
    defined: set = field(default_factory=set)
    assistant_turns: int = 0


def facts(row: dict, catalog: Catalog) -> Facts:
    messages = [m for m in row.get("messages", []) if isinstance(m, dict)]
    meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
    context = meta.get("context") if isinstance(meta.get("context"), dict) else None
    users = [_text(m) for m in messages if m.get("role") == "user"]
    f = Facts(messages, context, users[-1] if users else "", defined=set(tool_names(row.get("tools") or [])),
              assistant_turns=sum(m.get("role") == "assistant" for m in messages))
    for m in messages:
        for call in tool_calls(m):
            name = call_name(call)
            try:
                args = parse_arguments(call_arguments(call))
            except FormatError as exc:
                f.calls.append((name, None, f"{name}: {exc}"))
                continue
            errors = catalog.check_arguments(name, args)
            f.calls.append((name, args, errors[0] if errors else None))
    return f


class Scorer:
    """Scores rows against ``catalog``; ``single_turn`` marks context rows as a single-turn dataset."""

    name = SCORER
    rubric = SCORER

    def __init__(self, catalog: Catalog, *, single_turn: bool = True):
        self.catalog, self.single_turn = catalog, single_turn

    @property
    def stats(self) -> dict:
        """Request counts (none: the interface the LLM judge shares)."""
        return {}

    def score_all(self, rows: list[dict]) -> list[dict]:
        return [self.score(r) for r in rows]

    def score(self, row: dict) -> dict[str, dict]:
        """Per dimension ``{"score": 1-5, "reason": str}``."""
        f = facts(row, self.catalog)
        if f.context is not None:
            found = {"session_memory": session_memory(f), "tool_context": tool_context(f),
                     "goal_coherence": goal_coherence(f), "prompt_naturalness": prompt_naturalness(f),
                     "response_realism": call_realism(f, self.single_turn)}
        else:
            found = {"tool_call_validity": tool_call_validity(f), "prompt_naturalness": prompt_naturalness(f),
                     "explanation_quality": explanation_quality(f), "response_realism": answer_realism(f)}
        return {name: {"score": s, "reason": r} for name, (s, r) in found.items()}


def overall(scores: dict[str, dict]) -> float:
    """Mean of the dimensions, rounded to 3 places."""
    return round(mean(d["score"] for d in scores.values()), 3)


def session_memory(f: Facts) -> tuple[int, str]:
    memory = f.context.get("sessionMemory")
    text = memory.strip() if isinstance(memory, str) else ""
    if not text:
        return 1, "sessionMemory is empty or missing"
    if GENERIC_MEMORY.match(text) or len(text) < 20:
        return 2, f"generic placeholder ({text[:40]!r})"
    if len(text) < 50:
        return 3, f"short: {len(text)} characters"
    if not CONCRETE.search(text):
        return 4, "no concrete fact (number, path, identifier)"
    return 5, f"{len(text)} characters with concrete facts"


def tool_context(f: Facts) -> tuple[int, str]:
    value = f.context.get("toolContext")
    if value is None or (isinstance(value, str) and not value.strip()):
        return 1, "toolContext is empty or missing"
    if not isinstance(value, str):
        return 2, f"toolContext is {type(value).__name__}, not text that says why"
    if not REASON.search(value):
        return 3, "says what the tool does, not why it is used"
    if len(value.strip()) < 80:
        return 4, f"says why, in {len(value.strip())} characters"
    return 5, "explains why this tool is the next step"


def goal_coherence(f: Facts) -> tuple[int, str]:
    goal, sub = (f.context.get(k) for k in ("primaryGoal", "subgoal"))
    goal, sub = (v.strip() if isinstance(v, str) else "" for v in (goal, sub))
    if not goal or not sub:
        return 1, "primaryGoal or subgoal missing"
    if norm_words(goal) == norm_words(sub):
        return 2, "subgoal repeats primaryGoal"
    if GENERIC_GOAL.match(goal) or GENERIC_GOAL.match(sub):
        return 2, "generic goal"
    anchors = content_words(f.request) | content_words(" ".join(string_leaves([a for _, a, _ in f.calls]))) | {
        w for name, _, _ in f.calls for w in content_words(name or "")}
    if not content_words(sub) & anchors:
        return 3, "subgoal shares nothing with the request or the call"
    return 5, "distinct subgoal tied to the call"


def prompt_naturalness(f: Facts) -> tuple[int, str]:
    text = f.request.strip()
    if CONTINUATION.match(text):
        return 1, "a Result/JSON continuation, not a request"
    if '{"' in text:
        return 2, "raw JSON pasted into the request"
    words = len(WORD.findall(text))
    if words < 3:
        return 2, f"only {words} words"
    if words < 6:
        return 4, "short but natural"
    return 5, "natural request"


def call_realism(f: Facts, single_turn: bool) -> tuple[int, str]:
    last = f.messages[-1] if f.messages else {}
    if not (last.get("role") == "assistant" and tool_calls(last)):
        return 2, "does not end on a tool call"
    if single_turn and f.assistant_turns > 1:
        return 2, f"{f.assistant_turns} assistant turns with results in between; the dataset is single-turn"
    for name, args, problem in f.calls:
        if problem:
            return 1, problem
    values = string_leaves([a for _, a, _ in f.calls])
    if bad := next((v for v in values if PLACEHOLDER.search(v.strip())), None):
        return 1, f"placeholder argument {bad[:40]!r}"
    seen = (f.request + " " + " ".join(v for v in f.context.values() if isinstance(v, str))).lower()
    if not any(len(v.strip()) >= 3 and v.strip().lower() in seen for v in values):
        return 4, "arguments not grounded in the request or context"
    return 5, "valid call with grounded arguments"


def answer_realism(f: Facts) -> tuple[int, str]:
    final = f.messages[-1] if f.messages else {}
    words = len(_text(final).split())
    if tool_calls(final):
        return 4, "ends on a tool call"
    if words >= 12:
        return 5, f"final answer of {words} words"
    if words >= 5:
        return 3, f"short final answer ({words} words)"
    return 1, f"final answer of {words} words"


def tool_call_validity(f: Facts) -> tuple[int, str]:
    if not f.calls:
        return 4, "no tool calls (a text answer)"
    for name, args, problem in f.calls:
        if args is None:
            return 1, problem
        if problem:
            return (1 if problem.startswith("unknown tool") else 2), problem
    if missing := sorted({str(n) for n, _, _ in f.calls} - f.defined):
        return 3, f"calls {', '.join(missing)}, which the row does not define"
    return 5, f"{len(f.calls)} valid call(s)"


def explanation_quality(f: Facts) -> tuple[int, str]:
    turns = [m for m in f.messages if m.get("role") == "assistant" and tool_calls(m)]
    if not turns:
        return 4, "no tool-call turns to explain"
    explained = sum(len(_text(m).split()) >= 4 for m in turns)
    if explained == len(turns):
        return 5, "every tool call is explained"
    if explained:
        return 3, f"{len(turns) - explained} of {len(turns)} tool-call turns unexplained"
    return 2, "tool calls without any explanation"


def _text(message: dict) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""


def norm_words(text: str) -> str:
    return " ".join(WORD.findall(text.lower()))


STOP = {"the", "and", "for", "with", "that", "this", "from", "into", "then", "file", "files", "code", "make"}


def content_words(text: str) -> set[str]:
    """Stems of the words of four letters or more ('routes' and 'route' match; 'users' and 'user')."""
    return {w.rstrip("s")[:6] for w in re.findall(r"[a-z0-9_]{4,}", text.lower()) if w not in STOP}
