"""Expectation suites of the data gate and running them with Great Expectations.

A suite file (``expectations/critical.json``, ``expectations/warning.json``)
is GX 1.x JSON plus a few ``meta`` keys synthforge reads::

    {"name": "critical", "meta": {"level": "critical"},
     "expectations": [{"type": "expect_column_values_to_be_between",
                       "kwargs": {"column": "tokens", "max_value": {"$PARAMETER": "max_seq_length"}},
                       "meta": {"id": "fits_max_seq_length", "table": "rows", "needs": "tokenizer",
                                "reason": "..."}}]}

``meta.level`` is ``critical`` (row expectations quarantine the rows they
fail; table expectations fail the stage) or ``warning`` (reported only).
``meta.table`` names the table an expectation reads (:data:`TABLES`; default
``rows``). ``{"$PARAMETER": name}`` values come from ``params.yaml``.
Loading checks every expectation survived (GX drops a misspelled type
silently) and that its column exists in its table.

    >>> suite = load_suite("expectations/critical.json", needs={"tokenizer"})
    >>> outcomes, results = run_suites([suite], {"rows": frame}, parameters)
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from .columns import COLUMNS

TABLES = {
    "rows": tuple(COLUMNS),
    "categories": ("category", "expected", "rows", "deviation"),
    "tools": ("tool", "examples", "share"),  # share: of all tool calls in kept rows
    "dataset": ("rows_in", "kept", "rejected", "rejected_fraction"),
}
LEVELS = ("critical", "warning")


class SuiteError(Exception):
    """A suite cannot be loaded or run (message shown verbatim)."""


@dataclass(frozen=True)
class Suite:
    name: str
    level: str
    path: str
    by_table: dict  # table -> GX ExpectationSuite
    skipped: tuple[str, ...] = ()  # ids not run (their needs are not met)


@dataclass(frozen=True)
class Outcome:
    """One expectation's result: which table rows (by position) broke it."""

    id: str
    level: str
    table: str
    type: str
    column: str
    success: bool
    rows: list[int]
    total: int
    observed: object = None
    reason: str = ""
    kwargs: dict = field(default_factory=dict)


def load_suite(path, needs: set[str] = frozenset()) -> Suite:
    """Load a suite file into one GX suite per table; nothing is dropped silently."""
    doc = _read(path)
    level = (doc.get("meta") or {}).get("level")
    if level not in LEVELS:
        raise SuiteError(f"{path}: meta.level must be one of {', '.join(LEVELS)}, got {level!r}")
    gx_suite, expectation_config = _gx_classes()
    groups: dict[str, list] = {}
    skipped, dropped = [], []
    for n, entry in enumerate(doc["expectations"]):
        meta = entry.get("meta") if isinstance(entry, dict) else None
        try:
            exp = expectation_config(**entry).to_domain_obj()
        except Exception as exc:  # unknown type, bad kwargs, not an object: GX raises several kinds
            kind = entry.get("type") if isinstance(entry, dict) else entry
            dropped.append(f"expectations[{n}] {kind!r} ({' '.join(str(exc).split())[:200]})")
            continue
        table = _check_entry(path, n, exp, meta or {})
        if meta.get("needs") and meta["needs"] not in needs:
            skipped.append(meta["id"])
            continue
        groups.setdefault(table, []).append(exp)
    if dropped:
        raise SuiteError(f"{path}: {len(dropped)} of {len(doc['expectations'])} expectations could not be loaded:"
                         f" {'; '.join(dropped)}. Fix the type or kwargs.")
    by_table = {}
    for table, exps in groups.items():
        suite = gx_suite(name=f"{doc['name']}.{table}", expectations=exps, meta=doc.get("meta"))
        if len(suite.expectations) != len(exps):
            raise SuiteError(f"{path}: GX kept {len(suite.expectations)} of {len(exps)} {table} expectations")
        by_table[table] = suite
    return Suite(doc["name"], level, str(path), by_table, tuple(skipped))


def _read(path) -> dict:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteError(f"{path}: expectation suite not found") from None
    except (ValueError, OSError) as exc:
        raise SuiteError(f"{path}: cannot read the expectation suite: {exc}") from None
    entries = doc.get("expectations") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries or not isinstance(doc.get("name"), str):
        raise SuiteError(f'{path}: expected {{"name": ..., "expectations": [...]}} with at least one expectation')
    return doc


def _gx_classes():
    try:  # ~5 s: imported only when a gate runs
        from great_expectations.core.expectation_suite import ExpectationSuite
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    except ImportError as exc:
        raise SuiteError(f"the data gate needs Great Expectations ({exc}): pip install 'great-expectations>=1.3,<2'") from None
    return ExpectationSuite, ExpectationConfiguration


def _check_entry(path, n: int, exp, meta: dict) -> str:
    table = meta.get("table", "rows")
    if table not in TABLES:
        raise SuiteError(f"{path}: expectations[{n}] meta.table {table!r} is not one of {', '.join(TABLES)}")
    if not meta.get("id"):
        raise SuiteError(f"{path}: expectations[{n}] ({exp.expectation_type}) needs a meta.id")
    column = getattr(exp, "column", None)
    if column not in TABLES[table]:
        raise SuiteError(f"{path}: expectations[{n}] ({meta['id']}) reads column {column!r},"
                         f" which table {table!r} does not have (columns: {', '.join(TABLES[table])})")
    return table


@contextlib.contextmanager
def ephemeral_context():
    """A throw-away GX context without progress bars; GX's current context is restored after."""
    import great_expectations as gx
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


def run_suites(suites: list[Suite], frames: dict, parameters: dict, tables: tuple[str, ...]) -> tuple[list[Outcome], list]:
    """Validate ``frames`` (table -> DataFrame) with every suite's part for ``tables``.

    Returns the outcomes and the raw GX results (for Data Docs).
    """
    outcomes, results = [], []
    with ephemeral_context() as context:
        source = context.data_sources.add_pandas("synthforge_gate")
        for table in tables:
            asset = source.add_dataframe_asset(table)
            batch_def = asset.add_batch_definition_whole_dataframe("all")
            for suite in suites:
                if table not in suite.by_table:
                    continue
                batch = batch_def.get_batch(batch_parameters={"dataframe": frames[table]})
                run = batch.validate(suite.by_table[table], result_format="COMPLETE", expectation_parameters=parameters)
                results.append(run)
                outcomes += [_outcome(r, suite, table, len(frames[table])) for r in run.results]
    return outcomes, results


def _outcome(r, suite: Suite, table: str, total: int) -> Outcome:
    cfg, res = r.expectation_config, r.result
    meta = cfg.meta or {}
    if r.exception_info and r.exception_info.get("raised_exception"):
        raise SuiteError(f"{suite.path}: expectation {meta.get('id')} ({cfg.type}) did not run:"
                         f" {r.exception_info.get('exception_message')}")
    rows = [int(i) for i in res.get("unexpected_index_list") or []]
    if "unexpected_count" in res and len(rows) != res["unexpected_count"]:  # COMPLETE must list every failing row
        raise SuiteError(f"GX listed {len(rows)} of {res['unexpected_count']} failing rows for {meta.get('id')}")
    return Outcome(meta["id"], suite.level, table, cfg.type, cfg.kwargs.get("column", ""), bool(r.success), rows,
                   total, res.get("observed_value"), meta.get("reason", ""), dict(cfg.kwargs))
