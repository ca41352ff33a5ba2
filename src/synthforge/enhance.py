"""Stage ``enhance``: score every example, repair the weak ones, score again.

The default scorer is deterministic. Each dimension gives 1-5 and a reason:

``tool_call_validity``
    every call names a tool the row shows and its arguments fit the schema.
``prompt_naturalness``
    the first user message is a natural request (words, not a JSON blob or a
    ``Result:`` continuation, long enough to say what is wanted).
``explanation_quality``
    assistant turns that call tools say what they are doing and why.
``response_realism``
    the final answer is substantive (not a one-word reply).

Rows whose mean is under ``enhance.min_score`` get the rule-based repairs
below and are re-scored; ``meta`` records the scores before and after and the
repairs applied.

    synthforge enhance --input data/validated/valid.jsonl --out data/enhanced/enhanced.jsonl \\
        --report reports/enhance.json
"""

from __future__ import annotations

import copy
import re
from statistics import mean

import jsonschema

from . import io
from .params import EnhanceParams
from .schema import FormatError, call_arguments, call_name, parse_arguments, tool_calls

SCORER = "rules-v1"


def score(row: dict) -> dict[str, dict]:
    """Per-dimension ``{"score": 1-5, "reason": str}``."""
    return {name: dict(zip(("score", "reason"), fn(row))) for name, fn in DIMENSIONS.items()}


def tool_call_validity(row: dict) -> tuple[int, str]:
    schemas = {t["function"]["name"]: t["function"].get("parameters", {}) for t in row.get("tools", [])}
    calls = [c for m in row["messages"] for c in tool_calls(m)]
    if not calls:
        return 3, "no tool calls"
    for call in calls:
        name = call_name(call)
        if name not in schemas:
            return 1, f"calls {name!r}, which the row does not offer"
        try:
            args = parse_arguments(call_arguments(call))
        except FormatError as exc:
            return 1, f"{name}: {exc}"
        if not jsonschema.Draft202012Validator(schemas[name]).is_valid(args):
            return 2, f"{name}: arguments break the tool's schema"
    return 5, f"{len(calls)} valid call(s)"


def prompt_naturalness(row: dict) -> tuple[int, str]:
    user = next((m.get("content") or "" for m in row["messages"] if m["role"] == "user"), "")
    text = user.strip()
    if re.match(r"^(Result:|\{|\[)", text):
        return 1, "the request is a JSON/Result continuation, not natural language"
    words = re.findall(r"[A-Za-z]{2,}", text)
    if len(words) < 3:
        return 2, f"only {len(words)} words"
    if len(words) < 6:
        return 4, "short but natural"
    return 5, "natural request"


def explanation_quality(row: dict) -> tuple[int, str]:
    turns = [m for m in row["messages"] if m["role"] == "assistant" and tool_calls(m)]
    if not turns:
        return 4, "no tool-call turns to explain"
    explained = sum(len((m.get("content") or "").split()) >= 4 for m in turns)
    if explained == len(turns):
        return 5, "every tool call is explained"
    if explained:
        return 3, f"{len(turns) - explained} of {len(turns)} tool-call turns unexplained"
    return 2, "tool calls without any explanation"


def response_realism(row: dict) -> tuple[int, str]:
    final = row["messages"][-1]
    words = len((final.get("content") or "").split())
    if final.get("tool_calls"):
        return 4, "ends on a tool call"
    if words >= 12:
        return 5, f"final answer of {words} words"
    if words >= 5:
        return 3, f"short final answer ({words} words)"
    return 1, f"final answer of {words} words"


DIMENSIONS = {
    "tool_call_validity": tool_call_validity,
    "prompt_naturalness": prompt_naturalness,
    "explanation_quality": explanation_quality,
    "response_realism": response_realism,
}


def explain_tool_calls(row: dict) -> bool:
    """Repair. Reads: assistant ``tool_calls``, ``tools`` descriptions.
    Writes: the ``content`` of tool-call turns that have no explanation."""
    descriptions = {t["function"]["name"]: t["function"].get("description", "") for t in row.get("tools", [])}
    changed = False
    for message in row["messages"]:
        calls = tool_calls(message)
        if message["role"] != "assistant" or not calls or len((message.get("content") or "").split()) >= 4:
            continue
        parts = [f"`{call_name(c)}` ({_lower_first(descriptions.get(call_name(c), 'the tool'))})" for c in calls]
        lead = "I'll use " if len(parts) == 1 else "These are independent, so I'll run them in parallel: "
        message["content"] = lead + " and ".join(parts) + "."
        changed = True
    return changed


def _lower_first(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].lower() + text[1:]


REPAIRS = (explain_tool_calls,)


def enhance(input_path, out_path, report_path, p: EnhanceParams) -> dict:
    """Score all rows, repair those under ``min_score``, write rows and report."""
    rows = io.read_rows(input_path)
    before_all, after_all, repaired = [], [], 0

    def out():
        nonlocal repaired
        for row in rows:
            before = score(row)
            new, applied = copy.deepcopy(row), []
            if _mean(before) < p.min_score:
                applied = [fn.__name__ for fn in REPAIRS if fn(new)]
            after = score(new) if applied else before
            repaired += bool(applied)
            before_all.append(before)
            after_all.append(after)
            new.setdefault("meta", {}).update({
                "scorer": SCORER, "scores": after, "score_before": round(_mean(before), 3),
                "score": round(_mean(after), 3), "repairs": applied,
            })
            yield new

    written = io.write_jsonl(out_path, out())
    report = {
        "rows": written, "repaired": repaired, "scorer": SCORER, "min_score": p.min_score,
        "mean_before": _dim_means(before_all), "mean_after": _dim_means(after_all),
        "score_before": round(mean(_mean(s) for s in before_all), 4) if before_all else 0.0,
        "score_after": round(mean(_mean(s) for s in after_all), 4) if after_all else 0.0,
    }
    io.write_json(report_path, report)
    return report


def _mean(scores: dict) -> float:
    return mean(d["score"] for d in scores.values())


def _dim_means(all_scores: list[dict]) -> dict[str, float]:
    return {d: round(mean(s[d]["score"] for s in all_scores), 4) if all_scores else 0.0 for d in DIMENSIONS}

