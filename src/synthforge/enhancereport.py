"""The ``enhance`` report: counts, mean scores per dimension, histograms.

``build_report`` gives the JSON report (DVC metrics): rows in = kept +
enhanced + rejected, overall and per source (generated or imported), the
rejection reasons by kind, the repairs applied, and mean scores per
dimension before and after, for all rows and for the enhanced ones.
``write_plots`` writes ``score_hist.csv`` and ``dimensions.csv`` (DVC plots)
and ``scores.png`` into the plots folder.

    report = build_report(cases, scorer, params)
    write_plots(cases, report, Path("reports/enhance"))
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from statistics import mean

from . import io
from .scoring import overall

BINS = [1 + 0.25 * i for i in range(17)]  # 1.00, 1.25, ..., 5.00


def build_report(cases, scorer, p, requests: dict[str, dict] | None = None) -> dict:
    enhanced = [c for c in cases if c.status == "enhanced"]
    scored_in, scored_out = scores_in_out(cases)
    report = {
        **_counts(cases), "scorer": scorer.name, "rubric": scorer.rubric, "rewriter": p.rewriter,
        "min_score": p.min_score,
        "by_source": {src: _counts([c for c in cases if source_kind(c.row) == src])
                      for src in sorted({source_kind(c.row) for c in cases})},
        "rejected_reasons": dict(sorted(Counter(reason_kind(c.reason) for c in cases if c.status == "rejected").items())),
        "repairs": dict(sorted(Counter(r for c in cases for r in c.repairs).items())),
        "all_rows": {"score_before": _mean(overall(s) for s in scored_in),
                     "score_after": _mean(overall(s) for s in scored_out),
                     "dimensions": dimension_means(scored_in, scored_out)},
        "enhanced_rows": {"score_before": _mean(overall(c.before) for c in enhanced),
                          "score_after": _mean(overall(c.after) for c in enhanced),
                          "dimensions": dimension_means([c.before for c in enhanced], [c.after for c in enhanced])},
    }
    e = report["enhanced_rows"]
    e["gain"] = round(e["score_after"] - e["score_before"], 4) if enhanced else 0.0
    if requests := {k: v for k, v in (requests or {}).items() if v}:
        report["requests"] = requests
    return report


def scores_in_out(cases) -> tuple[list[dict], list[dict]]:
    """The scores of every scored input row, and of every output row (the rewrite's for enhanced rows)."""
    return ([c.before for c in cases if isinstance(c.before, dict)],
            [c.after if c.status == "enhanced" else c.before for c in cases if c.status in ("kept", "enhanced")])


def _counts(cases) -> dict:
    c = Counter(x.status for x in cases)
    return {"rows_in": len(cases), "kept": c["kept"], "enhanced": c["enhanced"], "rejected": c["rejected"]}


def source_kind(row: dict) -> str:
    """'imported' for rows converted from another format (legacy data), else 'generated'."""
    return "imported" if (row.get("meta") or {}).get("source_format") else "generated"


REASON_KINDS = (("rewrite fails the critical gate", "critical_gate"), ("rewrite not scored", "rewrite_unscored"),
                ("score ", "no_repair"))


def reason_kind(reason: str) -> str:
    """A short key for a rejection reason (for counting)."""
    if reason.startswith("rewrite scored"):
        return "under_min_score" if "still under" in reason else "no_gain"
    return next((kind for prefix, kind in REASON_KINDS if reason.startswith(prefix)), "judge_unusable")


def dimension_means(before: list[dict], after: list[dict]) -> dict[str, dict]:
    """Per dimension: mean before and after over the rows that have it."""
    names = list(dict.fromkeys(d for s in before + after for d in s))
    return {d: {"before": _mean(s[d]["score"] for s in before if d in s),
                "after": _mean(s[d]["score"] for s in after if d in s)} for d in names}


def _mean(values) -> float:
    values = list(values)
    return round(mean(values), 4) if values else 0.0


def histogram(values: list[float]) -> list[int]:
    """Counts per bin of :data:`BINS` (a value falls in the bin at or below it)."""
    counts = [0] * len(BINS)
    for v in values:
        counts[min(int((v - 1) / 0.25 + 1e-9), len(BINS) - 1)] += 1
    return counts


def write_plots(cases, report: dict, folder: Path) -> None:
    """``score_hist.csv``, ``dimensions.csv`` (DVC plots) and ``scores.png``."""
    before, after = ([overall(s) for s in scores] for scores in scores_in_out(cases))
    hb, ha = histogram(before), histogram(after)
    with io.atomic_open(Path(folder) / "score_hist.csv") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["score", "before", "after"])
        w.writerows([f"{b:.2f}", x, y] for b, x, y in zip(BINS, hb, ha))
    dims = report["enhanced_rows"]["dimensions"]
    with io.atomic_open(Path(folder) / "dimensions.csv") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["dimension", "before", "after"])
        w.writerows([d, v["before"], v["after"]] for d, v in dims.items())
    from .plots import score_figure

    score_figure(BINS, hb, ha, dims, Path(folder) / "scores.png",
                 title=f"enhance: {report['enhanced']} enhanced, {report['rejected']} rejected of {report['rows_in']}")
