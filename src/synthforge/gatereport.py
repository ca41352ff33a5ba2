"""What a gate run tells people: the JSON report (DVC metrics), the terminal summary, Data Docs.

    >>> report = build_report(verdict, threshold=0.02)
    >>> rich.print(summary(verdict, report))
"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from .gate import Verdict, top_reasons


def build_report(verdict: Verdict, threshold: float, **extra) -> dict:
    """Counts, per-expectation failures, warnings and the aggregate tables."""
    rows = [o for o in verdict.outcomes if o.table == "rows"]
    return {
        "rows_in": verdict.rows_in, "kept": verdict.kept, "rejected": verdict.rejected_rows,
        "rejected_fraction": round(verdict.rejected_rows / verdict.rows_in, 6) if verdict.rows_in else 0.0,
        "threshold": threshold, "passed": verdict.passed,
        "failures": {o.id: len(o.rows) for o in rows if o.level == "critical"},
        "warnings": {o.id: len(o.rows) for o in rows if o.level == "warning"},
        "failed_table_expectations": [o.id for o in verdict.failed],
        "table_warnings": [o.id for o in verdict.outcomes if o.level == "warning" and o.table != "rows" and not o.success],
        "not_run": verdict.skipped, "notices": verdict.notices,
        "categories": {r["category"]: r["rows"] for r in verdict.tables.get("categories", [])},
        "tools": {r["tool"]: r["examples"] for r in verdict.tables.get("tools", [])},
        **extra,
    }


def summary(verdict: Verdict, report: dict, name: str = "gate") -> str:
    """A few lines of rich markup: counts, failing expectations with an example each, warnings."""
    status = "[green]passed[/green]" if verdict.passed else "[red]failed[/red]"
    lines = [f"{name} {status}: in {verdict.rows_in} = kept {verdict.kept} + rejected {verdict.rejected_rows}"
             f" ({report['rejected_fraction']:.1%}; threshold {report['threshold']:.1%})"]
    lines += [f"  [yellow]notice[/yellow] {escape(n)}" for n in verdict.notices]
    for level, colour in (("critical", "red"), ("warning", "yellow")):
        for reason_id, n in top_reasons(verdict, level)[:6]:
            tag = "rejected" if level == "critical" else "warning"
            lines.append(f"  [{colour}]{tag}[/{colour}] [bold]{escape(reason_id)}[/bold]: {n} row{'s' * (n != 1)};"
                         f" e.g. {escape(verdict.examples.get(reason_id, ''))}")
    for o in verdict.outcomes:
        if o.table != "rows" and not o.success:
            colour = "red" if o.level == "critical" else "yellow"
            lines.append(f"  [{colour}]{o.level}[/{colour}] [bold]{escape(o.id)}[/bold] on {o.table}:"
                         f" {escape(_failing(verdict, o))}")
    if verdict.skipped:
        lines.append(f"  not run (no tokenizer here): {', '.join(verdict.skipped)}")
    return "\n".join(lines)


def _failing(verdict: Verdict, o) -> str:
    rows = [verdict.tables[o.table][p] for p in o.rows]
    if o.table == "dataset" and rows:
        r = rows[0]
        if not r["rows_in"]:
            return "the input has no rows"
        return f"{o.column} = {r[o.column]} ({r['rejected']} of {r['rows_in']} rows rejected)"
    key = {"categories": "category", "tools": "tool"}.get(o.table)
    shown = ", ".join(f"{r[key]} {o.column}={r[o.column]}" for r in rows[:6]) if key else str(o.observed)
    return shown + (f" and {len(rows) - 6} more" if len(rows) > 6 else "")


def failure_message(verdict: Verdict) -> str:
    """Why the gate failed: each failing critical table expectation, then the top row reasons."""
    lines = [f"gate failed: {o.id} ({o.type} on {o.table}.{o.column}): {_failing(verdict, o)}. {o.reason}"
             for o in verdict.failed]
    top = top_reasons(verdict)[:3]
    if top:
        lines.append("most rejected rows: " + "; ".join(f"{i} {n} (e.g. {verdict.examples.get(i, '')})" for i, n in top))
    return "\n".join(lines)


def write_docs(verdict: Verdict, out_dir: Path | None, title: str) -> Path | None:
    """Offline Data Docs of every GX result of the run under ``out_dir``."""
    if out_dir is None:
        return None
    from .datadocs import write_data_docs

    return write_data_docs(verdict.results, Path(out_dir), title=title)
