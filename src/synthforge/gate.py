"""The data gate: derived columns + Great Expectations suites -> a verdict per row.

Used twice by the pipeline: by stage ``validate`` on raw generated and
imported rows, and by stage ``gate-splits`` on the merged splits (with the
model's tokenizer, so token limits and loss masks are checked too).

One streaming pass turns every line of every input into a record of
:mod:`synthforge.columns`, kept column-wise (a few bytes a value, not a dict a
row). GX then validates the ``rows`` table; rows failing a *critical*
expectation are rejected with its id and a detail. The kept rows are
aggregated into the ``categories``, ``tools`` and ``dataset`` tables, which
the suites check next: a failing critical expectation there fails the gate.
*Warning* expectations are only reported. The caller writes the outputs from
the :class:`Verdict` (kept and rejected lines by file and line number).

    >>> verdict = run([Path("data/generated/generated.jsonl")], config)
    >>> verdict.passed, verdict.rows_in, verdict.kept, verdict.rejected_rows
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from . import io
from .columns import COLUMNS, Flattener, Rules, called_tools
from .suites import TABLES, Outcome, Suite, SuiteError, run_suites


class GateError(Exception):
    """The gate failed or cannot run (message shown verbatim); ``verdict`` and ``report`` are set when it ran."""

    def __init__(self, message: str, verdict: Verdict | None = None, report: dict | None = None):
        super().__init__(message)
        self.verdict, self.report = verdict, report


@dataclass(frozen=True)
class Config:
    rules: Rules
    suites: list[Suite]
    parameters: dict  # values of {"$PARAMETER": name} in the suites
    expected_categories: dict[str, int] | None = None  # None: the categories table is not checked


@dataclass
class Scan:
    """Column-wise records of every line read, and where each came from."""

    paths: list[Path]
    columns: dict[str, list] = field(default_factory=lambda: {c: [] for c in COLUMNS})
    file: array = field(default_factory=lambda: array("H"))
    lineno: array = field(default_factory=lambda: array("L"))
    called: list[tuple[str, ...]] = field(default_factory=list)
    notes: dict[int, dict[str, list[str]]] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    converted: set[tuple[int, int]] = field(default_factory=set)  # lines not already canonical (seed-003)

    def __len__(self) -> int:
        return len(self.lineno)

    def where(self, pos: int) -> str:
        return f"{self.paths[self.file[pos]]}:{self.lineno[pos]}"


@dataclass
class Verdict:
    rows_in: int
    rejected: dict[tuple[int, int], list[str]]  # (file index, line) -> reasons
    outcomes: list[Outcome]
    results: list  # GX validation results (Data Docs)
    examples: dict[str, str]  # expectation id -> "file:line: detail"
    notices: list[str]
    tables: dict  # table name -> list of row dicts (categories, tools, dataset)
    skipped: list[str]
    converted: set[tuple[int, int]] = field(default_factory=set)  # kept lines to write canonical, not as read

    @property
    def kept(self) -> int:
        return self.rows_in - len(self.rejected)

    @property
    def rejected_rows(self) -> int:
        return len(self.rejected)

    @property
    def failed(self) -> list[Outcome]:
        """Critical table expectations that failed: the gate fails on any."""
        return [o for o in self.outcomes if o.level == "critical" and o.table != "rows" and not o.success]

    @property
    def passed(self) -> bool:
        return not self.failed


def scan(paths: list[Path], rules: Rules) -> Scan:
    """Read every line of ``paths`` once into column-wise records."""
    s, flat = Scan(list(paths)), Flattener(rules)
    columns = list(s.columns.items())
    for index, path in enumerate(s.paths):
        try:
            for line in io.read_jsonl(path, s.notices):
                record, notes, row = flat.line(line)
                if notes:
                    s.notes[len(s)] = notes
                for name, values in columns:
                    values.append(record.get(name))
                s.file.append(index)
                s.lineno.append(line.lineno)
                s.called.append(called_tools(row))
                if row is not None and "messages" not in line.row:
                    s.converted.add((index, line.lineno))
        except io.InputError as exc:
            raise GateError(f"{exc} (an input of the data gate)") from None
    return s


def run(paths: list[Path], config: Config) -> Verdict:
    """Scan ``paths``, run the suites, and decide every row (see module doc)."""
    import pandas as pd

    s = scan(paths, config.rules)
    try:
        frame = pd.DataFrame(s.columns)
        outcomes, results = run_suites(config.suites, {"rows": frame}, config.parameters, ("rows",))
        del frame
        rejected, examples = _judge_rows(s, outcomes)
        tables = aggregate(s, rejected, config)
        frames = {name: pd.DataFrame(rows, columns=list(TABLES[name])) for name, rows in tables.items()}
        more, more_results = run_suites(config.suites, frames, config.parameters, tuple(frames))
    except SuiteError as exc:
        raise GateError(str(exc)) from None
    skipped = sorted({i for suite in config.suites for i in suite.skipped})
    return Verdict(len(s), rejected, outcomes + more, results + more_results, examples, s.notices,
                   tables, skipped, s.converted)


def _judge_rows(s: Scan, outcomes: list[Outcome]):
    rejected: dict[tuple[int, int], list[str]] = {}
    examples: dict[str, str] = {}
    for o in outcomes:
        for pos in o.rows:
            details = s.notes.get(pos, {}).get(o.column) or [f"{o.column} = {s.columns[o.column][pos]!r}"]
            examples.setdefault(o.id, f"{s.where(pos)}: {details[0]}")
            if o.level != "critical":
                continue
            rejected.setdefault((s.file[pos], s.lineno[pos]), []).extend(f"{o.id}: {d}" for d in details)
    return rejected, examples


def aggregate(s: Scan, rejected: dict, config: Config) -> dict[str, list[dict]]:
    """The categories, tools and dataset tables over the kept rows."""
    categories, examples, calls, imported = Counter(), Counter(), Counter(), Counter()
    for pos in range(len(s)):
        if s.columns["imported"][pos]:
            imported[s.columns["category"][pos]] += 1
        if (s.file[pos], s.lineno[pos]) in rejected:
            continue
        categories[s.columns["category"][pos]] += 1
        examples.update(set(s.called[pos]))
        calls.update(s.called[pos])
    kept, total_calls = len(s) - len(rejected), sum(calls.values())
    tables = {"dataset": [{"rows_in": len(s), "kept": kept, "rejected": len(rejected),
                           "rejected_fraction": round(len(rejected) / len(s), 6) if len(s) else 0.0}],
              "tools": [{"tool": t, "examples": examples[t],
                         "share": round(calls[t] / total_calls, 6) if total_calls else 0.0}
                        for t in config.rules.catalog.names]}
    if config.expected_categories is not None:
        expected = Counter(config.expected_categories) + imported
        names = sorted(set(expected) | set(categories))
        tables["categories"] = [{"category": c, "expected": expected.get(c, 0), "rows": categories[c],
                                 "deviation": _deviation(categories[c], expected.get(c, 0))} for c in names]
    return tables


def _deviation(actual: int, expected: int) -> float:
    if expected == 0:
        return 0.0 if actual == 0 else float(actual)  # a category nobody asked for: as far off as it is large
    return round(abs(actual - expected) / expected, 6)


def top_reasons(verdict: Verdict, level: str = "critical") -> list[tuple[str, int]]:
    """(expectation id, failing rows) of row expectations at ``level``, most first."""
    counts = [(o.id, len(o.rows)) for o in verdict.outcomes if o.level == level and o.table == "rows" and o.rows]
    return sorted(counts, key=lambda x: (-x[1], x[0]))


def configure(tools_path, suite_paths: list, p, *, expected_categories: dict[str, int] | None,
              tokenizer=None, max_seq_length: int | None = None) -> Config:
    """A gate :class:`Config` from the catalog, the suite files and ``validate`` params."""
    from .catalog import CatalogError, load_catalog
    from .sensitive import Scanner
    from .suites import load_suite

    if not 0 <= p.max_rejected_fraction <= 1:
        raise GateError(f"validate.max_rejected_fraction: must be in [0, 1], got {p.max_rejected_fraction}")
    try:
        catalog = load_catalog(tools_path)
        suites = [load_suite(path, needs={"tokenizer"} if tokenizer is not None else set()) for path in suite_paths]
    except (CatalogError, SuiteError) as exc:
        raise GateError(str(exc)) from None
    parameters = {"max_rejected_fraction": p.max_rejected_fraction, "category_tolerance": p.category_tolerance,
                  "min_tool_examples": p.min_tool_examples, "max_tool_share": p.max_tool_share,
                  "min_user_chars": p.min_user_chars, "min_session_memory_chars": p.min_session_memory_chars}
    if max_seq_length is not None:
        parameters["max_seq_length"] = max_seq_length
    rules = Rules(catalog=catalog, scanner=Scanner(tuple(p.allowed_email_domains)), tokenizer=tokenizer,
                  max_line_bytes=p.max_line_bytes)
    return Config(rules, suites, parameters, expected_categories)
