"""Stage ``validate``: the row-level quality gate between generation and enhancement.

Each row is flattened to one record of derived columns (:data:`COLUMNS`), the
records are checked by Great Expectations against ``expectations/critical.json``
(one expectation per column, each with a short ``meta.id``), and each row is
kept or rejected with the ids and details of what it broke. The gate fails
when an expectation fails on more than ``validate.max_rejected_fraction`` of
the rows (GX's ``mostly``) or more rows than that are rejected in all; the
outputs and the report are written either way.

    synthforge validate --input data/generated/generated.jsonl \\
        --tools data/tools/coding_agent.json --suite expectations/critical.json \\
        --out data/validated/validated.jsonl --rejected data/validated/rejected.jsonl \\
        --report reports/validate.json

Input: canonical or seed-003 rows. Output: kept canonical rows; rejected lines
``{"source", "reasons", "row", "text"}``; a JSON report of counts (DVC metrics).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rich.markup import escape

from . import io
from .catalog import Catalog, CatalogError, load_catalog
from .params import ValidateParams
from .schema import ROLES, FormatError, call_arguments, call_name, parse_arguments, to_canonical, tool_calls

COUNTS = ("unanswered_calls", "orphan_results", "args_invalid_json", "args_schema_errors",
          "unknown_tools", "short_user", "empty_assistant")
COLUMNS = ("role_order_ok", "last_role", *COUNTS)
PARSE_ID = "row_parse"  # reason id of lines that are not a readable chat row
Note = Callable[[str, str], None]


class GateError(Exception):
    """The gate failed or cannot run (message shown verbatim); ``result`` is set when it ran."""

    def __init__(self, message: str, result: GateResult | None = None):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class GateResult:
    rows_in: int
    kept: int
    rejected: int
    failures: dict[str, int]  # expectation id -> failing row count
    report: dict  # what was written to the report file
    examples: dict[str, str] = field(default_factory=dict)  # id -> "path:line: detail"


@dataclass(frozen=True)
class Outcome:  # one expectation's result: which flat records (by position) broke it
    id: str
    type: str
    column: str
    success: bool
    rows: list[int]
    total: int


def run_gate(input_path, tools_path, suite_path, out_path, rejected_path, report_path,
             params: ValidateParams) -> GateResult:
    """Validate ``input_path``; write kept rows, rejected rows and the report."""
    threshold = params.max_rejected_fraction
    if not 0 <= threshold <= 1:
        raise GateError(f"validate.max_rejected_fraction: must be in [0, 1], got {threshold}")
    try:
        catalog = load_catalog(tools_path)
    except CatalogError as exc:
        raise GateError(str(exc)) from None
    rows_in, records, where, notes, reasons = scan(input_path, catalog, params)
    suite = load_suite(suite_path, mostly=round(1 - threshold, 12))
    outcomes = check(records, suite, suite_path) if records else [
        Outcome(e.meta["id"], e.expectation_type, e.column, True, [], 0) for e in suite.expectations]
    examples = {}
    for o in outcomes:
        for pos in o.rows:
            lineno = where[pos]
            details = notes.get(lineno, {}).get(o.column) or [f"{o.column} = {records[pos][o.column]!r}"]
            reasons.setdefault(lineno, []).extend(f"{o.id}: {d}" for d in details)
            examples.setdefault(o.id, f"{input_path}:{lineno}: {details[0]}")
    kept, categories = write_outputs(input_path, reasons, out_path, rejected_path)
    if rows_in != kept + len(reasons):
        raise AssertionError(f"{input_path}: {rows_in} rows in but {kept} kept + {len(reasons)} rejected")
    return _finish(input_path, rows_in, kept, reasons, outcomes, examples, categories, report_path, threshold)


def scan(input_path, catalog: Catalog, params: ValidateParams):
    """First pass: row count, flat records of parsed rows, their lines, notes, parse failures."""
    rows_in, records, where, notes, reasons = 0, [], [], {}, {}
    try:
        for line in io.read_jsonl(input_path):
            rows_in += 1
            try:
                if line.error:
                    raise FormatError(line.error)
                record, row_notes = flatten(_canonical(line), catalog, params)
            except FormatError as exc:
                reasons[line.lineno] = [f"{PARSE_ID}: {exc}"]
                continue
            records.append(record)
            where.append(line.lineno)
            if row_notes:
                notes[line.lineno] = row_notes
    except io.InputError as exc:
        raise GateError(f"{exc} (the --input of stage validate)") from None
    return rows_in, records, where, notes, reasons


def _canonical(line: io.Line) -> dict:
    row_id = None if "id" in line.row else f"{Path(line.path).stem}-{line.lineno:06d}"
    return to_canonical(line.row, row_id=row_id)


def flatten(row: dict, catalog: Catalog, params: ValidateParams) -> tuple[dict, dict[str, list[str]]]:
    """One canonical row -> (flat record of :data:`COLUMNS` + category, details per column)."""
    messages = [m if isinstance(m, dict) else {"role": None} for m in row["messages"]]
    notes: dict[str, list[str]] = {}

    def note(column: str, text: str) -> None:
        notes.setdefault(column, []).append(text)

    if order := role_order_problem(messages):
        note("role_order_ok", order)
    last_role = messages[-1].get("role") if messages else ""
    last_role = last_role if isinstance(last_role, str) else repr(last_role)
    if last_role != "assistant":
        note("last_role", f"last message is {last_role or 'missing'!r}, expected 'assistant'")
    _check_calls(messages, catalog, note)
    _check_text(messages, params, note)
    meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
    return {"role_order_ok": not order, "last_role": last_role, **{c: len(notes.get(c, ())) for c in COUNTS},
            "category": str(meta.get("category") or "unknown")}, notes


def row_problems(row: dict, catalog: Catalog, params: ValidateParams | None = None) -> list[str]:
    """The gate's row-level findings for one canonical row, as ``column: first reason`` lines."""
    _, notes = flatten(row, catalog, params or ValidateParams(max_rejected_fraction=0.0))
    return [f"{column}: {texts[0]}" for column, texts in notes.items()]


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


def _check_calls(messages: list[dict], catalog: Catalog, note: Note) -> None:
    answered_at = {_id(m.get("tool_call_id")): i for i, m in enumerate(messages) if m.get("role") == "tool"}
    seen: set = set()
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
            _check_call(name, call, catalog, note)


def _id(value: Any) -> str | int | None:
    return value if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def _check_call(name: str | None, call: Any, catalog: Catalog, note: Note) -> None:
    if name not in catalog:
        note("unknown_tools", f"call {name!r} names no tool of catalog {catalog.name!r}")
    try:
        args = parse_arguments(call_arguments(call))
    except FormatError as exc:
        return note("args_invalid_json", f"call {name!r} {exc}")
    if name in catalog and (errors := catalog.check_arguments(name, args)):
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        note("args_schema_errors", f"call {name!r} arguments break its schema: {errors[0].removeprefix(f'{name}: ')}{more}")


def _check_text(messages: list[dict], params: ValidateParams, note: Note) -> None:
    for i, m in enumerate(messages):
        role, n = m.get("role"), len(_text(m.get("content")).strip())
        if role == "user" and n < params.min_user_chars:
            note("short_user", f"message {i}: user text has {n} characters (< {params.min_user_chars})")
        elif role == "assistant" and not tool_calls(m) and n < params.min_assistant_chars:
            note("empty_assistant", f"message {i}: assistant text has {n} characters"
                                    f" (< {params.min_assistant_chars}) and no tool calls")


def _text(content: Any) -> str:
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return content if isinstance(content, str) else ""


def load_suite(suite_path, mostly: float):
    """The GX suite in ``suite_path`` with every ``mostly`` set; nothing is dropped silently."""
    try:
        doc = json.loads(Path(suite_path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GateError(f"{suite_path}: expectation suite not found") from None
    except (ValueError, OSError) as exc:
        raise GateError(f"{suite_path}: cannot read the expectation suite: {exc}") from None
    entries = doc.get("expectations") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries or not isinstance(doc.get("name"), str):
        raise GateError(f'{suite_path}: expected {{"name": ..., "expectations": [...]}} with at least one expectation')
    try:  # ~5 s: imported only when the gate runs
        from great_expectations.core.expectation_suite import ExpectationSuite
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    except ImportError as exc:
        raise GateError(f"stage validate needs Great Expectations ({exc}): pip install 'great-expectations>=1.3,<2'") from None

    built, dropped = [], []
    for n, entry in enumerate(entries):
        try:
            built.append(ExpectationConfiguration(**entry).to_domain_obj())
        except Exception as exc:  # unknown type, bad kwargs, not an object: GX raises several kinds
            kind = entry.get("type") if isinstance(entry, dict) else entry
            dropped.append(f"expectations[{n}] {kind!r} ({' '.join(str(exc).split())[:200]})")
    suite = ExpectationSuite(name=doc["name"], expectations=built, meta=doc.get("meta"))
    if dropped or len(suite.expectations) != len(entries):
        raise GateError(f"{suite_path}: {len(entries) - len(suite.expectations)} of {len(entries)} expectations"
                        f" could not be loaded: {'; '.join(dropped)}. Fix the type or kwargs.")
    for n, exp in enumerate(suite.expectations):
        if getattr(exp, "column", None) not in COLUMNS or not (exp.meta or {}).get("id"):
            raise GateError(f"{suite_path}: expectations[{n}] ({exp.expectation_type}) needs a meta.id and a column"
                            f" among {', '.join(COLUMNS)}; got column {getattr(exp, 'column', None)!r}")
        if hasattr(exp, "mostly"):
            exp.mostly = mostly
    return suite


@contextlib.contextmanager
def _ephemeral_context(gx):
    """A throw-away GX context without progress bars; GX's current context is restored after."""
    from great_expectations.data_context.data_context.context_factory import project_manager
    from great_expectations.data_context.types.base import ProgressBarsConfig

    try:
        previous = project_manager.get_current_project()
    except gx.exceptions.DataContextRequiredError:
        previous = None
    try:
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        yield context
    finally:
        project_manager.set_project(previous)


def check(records: list[dict], suite, suite_path) -> list[Outcome]:
    """Validate the flat records with GX; every failing record position per expectation."""
    import great_expectations as gx  # imported (and checked) by load_suite already
    import pandas as pd

    frame = pd.DataFrame.from_records(records, columns=[*COLUMNS, "category"])
    with _ephemeral_context(gx) as context:
        asset = context.data_sources.add_pandas("synthforge_gate").add_dataframe_asset("rows")
        batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": frame})
        run = batch.validate(suite, result_format="COMPLETE")
    outcomes = []
    for r in run.results:
        cfg, res, name = r.expectation_config, r.result, r.expectation_config.meta.get("id")
        if "unexpected_index_list" not in res:
            raise GateError(f"{suite_path}: expectation {name} ({cfg.type}) did not run: {r.exception_info}")
        rows = [int(i) for i in res["unexpected_index_list"]]
        if len(rows) != res["unexpected_count"]:  # COMPLETE must list every failing row
            raise RuntimeError(f"GX listed {len(rows)} of {res['unexpected_count']} failing rows for {name}")
        outcomes.append(Outcome(name, cfg.type, cfg.kwargs["column"], bool(r.success), rows, len(records)))
    return outcomes


def write_outputs(input_path, reasons: dict[int, list[str]], out_path, rejected_path) -> tuple[int, dict[str, int]]:
    """Second pass: kept canonical rows to ``out_path``, the rest to ``rejected_path``."""
    kept, categories = 0, {}
    with io.atomic_open(out_path) as out, io.atomic_open(rejected_path) as rejected:
        for line in io.read_jsonl(input_path):
            if line.lineno in reasons:
                rejected.write(io.dumps({"source": line.where, "reasons": reasons[line.lineno], "row": line.row,
                                         "text": None if line.row is not None else line.text}) + "\n")
                continue
            row = _canonical(line)
            category = str((row.get("meta") if isinstance(row.get("meta"), dict) else {}).get("category") or "unknown")
            categories[category] = categories.get(category, 0) + 1
            out.write(io.dumps(row) + "\n")
            kept += 1
    return kept, categories


def _finish(input_path, rows_in, kept, reasons, outcomes, examples, categories, report_path, threshold) -> GateResult:
    rejected, failures = len(reasons), {o.id: len(o.rows) for o in outcomes}
    fraction = rejected / rows_in if rows_in else 0.0
    unreadable = [n for n, rs in reasons.items() if rs[0].startswith(f"{PARSE_ID}: ")]
    if unreadable:
        examples[PARSE_ID] = f"{input_path}:{unreadable[0]}: {reasons[unreadable[0]][0].removeprefix(PARSE_ID + ': ')}"
    problems = [f"{o.id} ({o.type} on {o.column}) failed on {len(o.rows)} of {o.total} rows"
                f" ({len(o.rows) / o.total:.1%} > {threshold:.1%}); e.g. {examples.get(o.id, '')}"
                for o in outcomes if not o.success]
    if rows_in == 0:
        problems.append(f"{input_path} has no rows")
    elif fraction > threshold:
        first = min(reasons)
        problems.append(f"{rejected} of {rows_in} rows rejected ({fraction:.1%} > {threshold:.1%}),"
                        f" {len(unreadable)} unreadable; e.g. {input_path}:{first}: {reasons[first][0]}")
    report = {"rows_in": rows_in, "kept": kept, "rejected": rejected, "rejected_fraction": round(fraction, 6),
              "passed": not problems, "threshold": threshold, "failures": failures,
              "parse_errors": len(unreadable), "categories": dict(sorted(categories.items()))}
    io.write_json(report_path, report)
    result = GateResult(rows_in, kept, rejected, failures, report, examples)
    if problems:
        raise GateError("gate failed: " + "\ngate failed: ".join(problems), result)
    return result


def summary(result: GateResult) -> str:
    """A few lines of rich markup for the terminal (print with ``rich.print``)."""
    r = result.report
    status = "[green]passed[/green]" if r.get("passed") else "[red]failed[/red]"
    lines = [f"validate {status}: in {result.rows_in} = kept {result.kept} + rejected {result.rejected}"
             f" ({r.get('rejected_fraction', 0):.1%}; threshold {r.get('threshold', 0):.1%})"]
    top = sorted(((n, i) for i, n in result.failures.items() if n), reverse=True)[:5]
    if r.get("parse_errors"):
        top.insert(0, (r["parse_errors"], PARSE_ID))
    for n, reason_id in top:
        example = escape(result.examples.get(reason_id, ""))
        lines.append(f"  [bold]{escape(reason_id)}[/bold]: {n} row{'s' * (n != 1)}; e.g. {example}")
    return "\n".join(lines)
