"""The LLM judge (``enhance.judge: openai``): the same dimensions, scored by a model.

It talks to any OpenAI-compatible server through :mod:`synthforge.llm` (the
generation backend's client, retries and resumable cache). The rubric is
versioned (:data:`RUBRIC_VERSION`); the version, the model, the sampling
settings, the seed and the row's content hash make the cache key, so a
re-run asks nothing twice and a rubric change asks everything again.

A reply is usable only if it is one JSON object with every dimension of the
row's kind, each ``{"score": 1-5 integer, "reason": non-empty text}``.
Anything else (prose, a missing dimension, a score of 7) is not a score:
the row is rejected with that reason, never guessed at.

    judge = Judge(params.enhance.openai, cache_path="data/cache/enhance.jsonl", seed=42)
    results = judge.score_all(rows)      # per row: scores, or the reason the reply is unusable
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .llm import Client, ask_all, cache_key, json_object
from .params import OpenAIParams
from .schema import FormatError, row_digest, tool_names
from .scoring import CHAT_DIMENSIONS, CONTEXT_DIMENSIONS

RUBRIC_VERSION = "judge-v1"

CRITERIA = {
    "session_memory": "context.sessionMemory holds concrete prior facts (numbers, paths, identifiers, what was "
                      "tried), not a placeholder",
    "tool_context": "context.toolContext is text explaining WHY this tool is the right next step, not what it does",
    "goal_coherence": "context.primaryGoal is the overall aim and context.subgoal a distinct, more specific step "
                      "that the call serves",
    "prompt_naturalness": "the user's request reads like something a developer would type; not pasted JSON or a "
                          "'Result:' continuation",
    "response_realism": "the answer is what a capable agent would do next: a valid, grounded tool call or a "
                        "substantive reply",
    "tool_call_validity": "every tool call names a defined tool with arguments valid for its schema",
    "explanation_quality": "assistant turns that call tools say what they do and why",
}

SYSTEM = """You grade training examples for a tool-calling coding assistant.
Score each dimension from 1 (unusable) to 5 (excellent) with a one-line reason.
Dimensions:
{criteria}
Reply with exactly one JSON object and nothing else, of the form
{{{shape}}}"""


def dimensions(row: dict) -> tuple[str, ...]:
    """The dimensions a row is judged on (the same split as the rule scorer)."""
    context = (row.get("meta") or {}).get("context")
    return CONTEXT_DIMENSIONS if isinstance(context, dict) else CHAT_DIMENSIONS


def prompt(row: dict) -> list[dict]:
    """The judge's chat prompt for one row (versioned by :data:`RUBRIC_VERSION`)."""
    dims = dimensions(row)
    system = SYSTEM.format(criteria="\n".join(f"- {d}: {CRITERIA[d]}" for d in dims),
                           shape=", ".join(f'"{d}": {{"score": 1-5, "reason": "..."}}' for d in dims))
    shown = {"context": (row.get("meta") or {}).get("context"), "tools": tool_names(row.get("tools") or []),
             "messages": row["messages"]}
    return [{"role": "system", "content": system},
            {"role": "user", "content": json.dumps({k: v for k, v in shown.items() if v}, ensure_ascii=False)}]


def parse_reply(text: str, dims: tuple[str, ...]) -> dict[str, dict]:
    """Scores from a judge reply, or :class:`FormatError` saying why the reply is unusable."""
    try:
        data = json_object(text)
    except FormatError as exc:
        raise FormatError(f"judge {exc}") from None
    if not isinstance(data, dict):
        raise FormatError("judge reply is not a JSON object")
    out = {}
    for d in dims:
        item = data.get(d)
        if not isinstance(item, dict):
            raise FormatError(f"judge reply lacks dimension {d!r}")
        score, reason = item.get("score"), item.get("reason")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or score != int(score) or not 1 <= score <= 5:
            raise FormatError(f"judge reply scores {d!r} {score!r}, expected an integer 1-5")
        if not isinstance(reason, str) or not reason.strip():
            raise FormatError(f"judge reply gives no reason for {d!r}")
        out[d] = {"score": int(score), "reason": " ".join(reason.split())[:200]}
    return out


class Judge:
    """Scores rows with a model; results carry scores or the reason a reply is unusable."""

    rubric = RUBRIC_VERSION

    def __init__(self, params: OpenAIParams, *, cache_path: str | Path, seed: int, progress: bool = True):
        self.params, self.seed, self.progress = params, seed, progress
        self.client = Client(params, secret=os.environ.get(params.api_key_env))
        self.cache_path = Path(cache_path)
        self.name = f"openai:{self.client.model}"

    def score_all(self, rows: list[dict]) -> list[dict | str]:
        """Per row: ``{dimension: {"score", "reason"}}``, or a string saying why there is no score."""
        p = self.params
        sampling = {"temperature": p.temperature, "max_tokens": p.max_tokens}
        prompts = [prompt(r) for r in rows]
        keys = [cache_key(self.client.model, RUBRIC_VERSION, sampling, self.seed, row_digest(r).hex(), q)
                for r, q in zip(rows, prompts)]
        answers = ask_all(self.client, self.cache_path, prompts, keys, lambda i: self.seed, p.concurrency,
                          "judge (openai)", self.progress)
        results: list[dict | str] = []
        for row, entry in zip(rows, answers):
            if "error" in entry:
                results.append(f"judge {entry['error']}")
                continue
            try:
                results.append(parse_reply(entry["reply"], dimensions(row)))
            except FormatError as exc:
                results.append(str(exc))
        return results

    @property
    def stats(self) -> dict:
        return vars(self.client.stats)
