"""Stage ``enhance``: score every example, rewrite the weak ones, keep only real improvements.

The loop, per row:

1. **Score** it: 1-5 and a reason per dimension, by the rule scorer
   (:mod:`synthforge.scoring`, default) or the LLM judge
   (:mod:`synthforge.judge`, ``enhance.judge: openai``). A judge reply that
   is not a usable score rejects the row, with the reason.
2. A row scoring at least ``enhance.min_score`` on average, and at least
   ``enhance.min_dimension`` on every dimension, is **kept** as it is
   (stale metadata of an old dataset stripped).
3. A weaker row is **rewritten**, by the repairs of :mod:`synthforge.repairs`
   that apply to it or by a model (:mod:`synthforge.rewrite`), then **re-scored** and run through the **critical
   gate** (the same suite as stage ``validate``). The rewrite is accepted
   only if its score rose, it is no longer weak (unless
   ``enhance.require_min_score`` is false) and it passes the gate;
   otherwise the row goes to the rejected file with the reason, and
   neither version reaches training. A model gets ``enhance.max_attempts``
   tries per row; the rules, being deterministic, one.

Every output row carries ``meta.lineage``: its source id, status (kept or
enhanced), attempt, scorer and rubric version, score before and after, and
the repairs applied. Counts add up: in = kept + enhanced + rejected. Under
the rule scorer the stage is deterministic: the same input gives
byte-identical outputs.

Outputs: the rows, the rejected rows with reasons, optional KTO pairs
(original labelled false, accepted rewrite labelled true, interleaved), the
report (DVC metrics), score histograms as CSV (DVC plots) and PNG.

    synthforge enhance --input data/validated/valid.jsonl --tools data/tools/coding_agent.json \\
        --suite expectations/critical.json --out data/enhanced/enhanced.jsonl \\
        --rejected data/enhanced/rejected.jsonl --kto data/enhanced/kto.jsonl \\
        --report reports/enhance.json --plots reports/enhance --cache data/cache/enhance.jsonl
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import io
from .catalog import load_catalog
from .params import EnhanceParams, ParamsError, ValidateParams
from .repairs import strip_metadata
from .schema import render_context
from .scoring import Scorer, overall
from .sensitive import Scanner, masked


@dataclass
class Case:
    """One input row on its way through the loop."""

    row: dict
    before: dict | str  # scores, or why there are none
    status: str = ""  # kept | enhanced | rejected
    rewrite: dict | None = None
    repairs: list[str] = field(default_factory=list)
    attempt: int = 0
    after: dict | str | None = None
    reason: str = ""

    @property
    def source(self) -> str:
        return str((self.row.get("meta") or {}).get("id", "?"))


def enhance(input_path: Path, tools_path: Path, suite_paths: list[Path], out_path: Path, rejected_path: Path,
            report_path: Path, p: EnhanceParams, vp: ValidateParams, *, kto_path: Path | None = None,
            plots_dir: Path | None = None, cache_path: Path | None = None, seed: int = 42,
            progress: bool = True) -> dict:
    """Run the loop (module doc) on ``input_path``; write every output; return the report."""
    from .enhancereport import build_report, write_plots

    catalog = load_catalog(tools_path)
    rows = io.read_rows(input_path)
    if cache_path is not None and not Path(cache_path).exists():
        io.write_jsonl(cache_path, [])  # DVC expects the (persistent) cache output to exist
    scorer = make_scorer(p, catalog, cache_path, seed, progress)
    rewriter = make_rewriter(p, catalog, cache_path, seed, progress)
    cases = [Case(r, s) for r, s in zip(rows, scorer.score_all(rows))]
    close_loop(triage(cases, p, catalog), scorer, rewriter, p,
               lambda rewrites: critical_failures(rewrites, tools_path, suite_paths, vp))
    if len(rows) != sum(c.status in ("kept", "enhanced", "rejected") for c in cases):
        raise AssertionError("enhance: a row left the loop without a decision")
    io.write_jsonl(out_path, (output_row(c, scorer) for c in cases if c.status != "rejected"))
    scanner = Scanner(tuple(vp.allowed_email_domains))
    io.write_jsonl(rejected_path, (masked(rejected_record(c), scanner) for c in cases if c.status == "rejected"))
    if kto_path is not None:
        io.write_jsonl(kto_path, kto_pairs(cases) if p.kto else [])
    report = build_report(cases, scorer, p, {"judge": scorer.stats, "rewrite": rewriter.stats})
    io.write_json(report_path, report)
    if plots_dir is not None:
        write_plots(cases, report, plots_dir)
    return report


def close_loop(todo: list[Case], scorer, rewriter, p: EnhanceParams, gate) -> None:
    """Rewrite, re-score and re-gate the ``todo`` rows; a rejected rewrite gets the rewriter's next attempt."""
    pending = todo
    for attempt in range(1, rewriter.attempts + 1):
        attempt_rewrites(pending, rewriter, attempt)
        candidates = [c for c in pending if c.rewrite is not None]
        for case, after in zip(candidates, scorer.score_all([c.rewrite for c in candidates])):
            case.after = after
        decide(candidates, gate([c.rewrite for c in candidates]), p)
        pending = [c for c in pending if c.status == "rejected"]


def make_scorer(p: EnhanceParams, catalog, cache_path: Path | None, seed: int, progress: bool):
    """The rule scorer, or the LLM judge when ``enhance.judge`` is ``openai``."""
    if p.judge == "rules":
        return Scorer(catalog, single_turn=p.single_turn == "context")
    from .judge import Judge

    if cache_path is None:
        raise ParamsError("enhance.judge: 'openai' needs --cache (the file of the judge's cached replies)")
    return Judge(p.openai, cache_path=cache_path, seed=seed, progress=progress)


def make_rewriter(p: EnhanceParams, catalog, cache_path: Path | None, seed: int, progress: bool):
    """The rule repairs, or a model when ``enhance.rewriter`` is ``openai``."""
    from .rewrite import LLMRewriter, RuleRewriter

    if p.rewriter == "rules":
        return RuleRewriter(catalog, single=p.single_turn == "context", min_score=p.min_score)
    if cache_path is None:
        raise ParamsError("enhance.rewriter: 'openai' needs --cache (the file of cached replies)")
    return LLMRewriter(p, catalog, cache_path=cache_path, seed=seed, progress=progress)


def triage(cases: list[Case], p: EnhanceParams, catalog) -> list[Case]:
    """Keep strong rows, reject unscored ones; returns the rows under ``min_score``, to rewrite."""
    todo = []
    for case in cases:
        if isinstance(case.before, str):
            case.status, case.reason = "rejected", case.before
        elif not weak(case.before, p):
            case.status = "kept"
            case.repairs = ["strip_metadata"] if strip_metadata(case.row, catalog) else []
        else:
            todo.append(case)
    return todo


def attempt_rewrites(cases: list[Case], rewriter, attempt: int) -> None:
    """One attempt for each case: a rewrite to judge, or the reason there is none (the row is rejected)."""
    results = rewriter.rewrite([c.row for c in cases], [c.before for c in cases], attempt)
    for case, result in zip(cases, results):
        case.attempt, case.after = attempt, None
        if isinstance(result, str):
            case.status, case.reason, case.rewrite, case.repairs = "rejected", result, None, []
        else:
            case.status, case.reason = "", ""
            case.rewrite, case.repairs = result


def critical_failures(rows: list[dict], tools_path: Path, suite_paths: list[Path], vp: ValidateParams) -> dict[int, list[str]]:
    """Index -> reasons for each of ``rows`` that fails a critical row expectation of the suites."""
    if not rows:
        return {}
    from .gate import configure, run

    config = configure(tools_path, suite_paths, vp, expected_categories=None)
    with tempfile.TemporaryDirectory(prefix="synthforge-enhance-") as tmp:
        path = Path(tmp) / "rewrites.jsonl"
        io.write_jsonl(path, rows)
        verdict = run([path], config)
    return {lineno - 1: reasons for (_, lineno), reasons in verdict.rejected.items()}


def decide(candidates: list[Case], failures: dict[int, list[str]], p: EnhanceParams) -> None:
    """Accept a rewrite only if it scored, scored higher (and, by default, reached
    ``min_score``), and passes the critical gate."""
    for i, case in enumerate(candidates):
        before = overall(case.before)
        if isinstance(case.after, str):
            case.status, case.reason = "rejected", f"rewrite not scored: {case.after}"
        elif overall(case.after) <= before:
            case.status = "rejected"
            case.reason = f"rewrite scored {overall(case.after)}, not above the original's {before}"
        elif p.require_min_score and weak(case.after, p):
            case.status = "rejected"
            case.reason = (f"rewrite scored {overall(case.after)} (from {before}), still under enhance.min_score"
                           f" {p.min_score} or min_dimension {p.min_dimension}: {weakest(case.after)}")
        elif i in failures:
            case.status, case.reason = "rejected", f"rewrite fails the critical gate: {'; '.join(failures[i])}"
        else:
            case.status = "enhanced"


def weak(scores: dict[str, dict], p: EnhanceParams) -> bool:
    """Under ``min_score`` on average, or under ``min_dimension`` on any dimension."""
    return overall(scores) < p.min_score or min(d["score"] for d in scores.values()) < p.min_dimension


def weakest(scores: dict[str, dict]) -> str:
    """'dimension: reason' of the lowest-scoring dimension."""
    name = min(scores, key=lambda d: scores[d]["score"])
    return f"{name} {scores[name]['score']} ({scores[name]['reason']})"


def output_row(case: Case, scorer) -> dict:
    """The row to train on (the accepted rewrite, or the original), with its lineage."""
    row = case.rewrite if case.status == "enhanced" else case.row
    after = case.after if case.status == "enhanced" else case.before
    meta = row.setdefault("meta", {})
    meta["scores"] = after
    meta["score"] = overall(after)
    meta["lineage"] = {
        "source": case.source, "status": case.status, "attempt": case.attempt,
        "scorer": scorer.name, "rubric": scorer.rubric, "score_before": overall(case.before),
        "score_after": overall(after), "repairs": case.repairs,
    }
    return row


def rejected_record(case: Case) -> dict:
    """Why a row was left out, with the original and (if any) the rewrite that was refused (masked by the caller)."""
    before = overall(case.before) if isinstance(case.before, dict) else None
    after = overall(case.after) if isinstance(case.after, dict) else None
    return {"source": case.source, "reason": case.reason, "score_before": before, "score_after": after,
            "attempts": case.attempt, "repairs": case.repairs, "row": case.row, "rewrite": case.rewrite}


def kto_pairs(cases: list[Case]):
    """KTO rows: each accepted rewrite's original (label false), then the rewrite (label true)."""
    for pair, case in enumerate(c for c in cases if c.status == "enhanced"):
        for label, row in ((False, case.row), (True, case.rewrite)):
            messages = render_context(row["messages"], (row.get("meta") or {}).get("context"))
            out = {"prompt": messages[:-1], "completion": messages[-1:], "label": label,
                   "meta": {"source": case.source, "pair": pair}}
            if row.get("tools"):
                out["tools"] = row["tools"]
            yield out
