"""Stage ``validate``: the data gate on raw generated and imported rows.

Every input line is flattened, checked by the suites (``expectations/``) and
either kept (written canonical to ``--out``) or quarantined in
``--rejected`` with its reasons and ``file:line``. Secrets and e-mail
addresses are masked in the quarantine file, so they never reach a remote.
The report (DVC metrics) and offline Data Docs are written whether the gate
passes or not; it fails (exit 1, ``dvc repro`` stops) when a critical table
expectation fails, e.g. more than ``validate.max_rejected_fraction`` rejected.

    synthforge validate --input data/generated/generated.jsonl --tools data/tools/coding_agent.json \\
        --suite expectations/critical.json --suite expectations/warning.json \\
        --out data/validated/valid.jsonl --rejected data/validated/rejected.jsonl \\
        --report reports/validate.json --docs reports/data_docs/validate
"""

from __future__ import annotations

from pathlib import Path

from . import io
from .columns import canonical
from .gate import GateError, Verdict, configure, run
from .gatereport import build_report, failure_message, write_docs
from .params import ValidateParams
from .sensitive import masked


def validate(inputs: list[Path], tools_path: Path, suite_paths: list[Path], out_path: Path, rejected_path: Path,
             report_path: Path, docs_dir: Path | None, p: ValidateParams,
             expected_categories: dict[str, int] | None = None,
             imported: list[Path] = ()) -> tuple[Verdict, dict]:
    """Gate ``inputs`` and ``imported``; write kept rows, quarantined rows, the report and Data Docs.

    ``expected_categories`` are the rows per category asked of generation;
    imported rows (legacy data, converted on the way) add their own categories.
    """
    config = configure(tools_path, suite_paths, p, expected_categories=expected_categories)
    inputs = [*inputs, *imported]
    verdict = run(inputs, config)
    kept = write_outputs(inputs, verdict, out_path, rejected_path, config.rules.scanner, config.rules.catalog)
    if verdict.rows_in != kept + verdict.rejected_rows:
        raise AssertionError(f"{verdict.rows_in} rows in but {kept} kept + {verdict.rejected_rows} rejected")
    report = build_report(verdict, p.max_rejected_fraction, inputs=[str(i) for i in inputs])
    io.write_json(report_path, report)
    write_docs(verdict, docs_dir, "synthforge gate: validate")
    if not verdict.passed:
        raise GateError(failure_message(verdict), verdict, report)
    return verdict, report


def write_outputs(inputs: list[Path], verdict: Verdict, out_path: Path, rejected_path: Path, scanner,
                  catalog=None) -> int:
    """Second pass: kept rows to ``out_path`` (as read when already canonical), the rest masked to ``rejected_path``."""
    kept = 0
    with io.atomic_open(out_path, "wb") as out, io.atomic_open(rejected_path) as rejected:
        for index, path in enumerate(inputs):
            for lineno, raw in io.read_raw(path):
                reasons = verdict.rejected.get((index, lineno))
                if reasons is not None:
                    line = io.parse_line(str(path), lineno, raw)
                    rejected.write(io.dumps(quarantined(line, reasons, scanner)) + "\n")
                    continue
                if (index, lineno) in verdict.converted:
                    raw = io.dumps(canonical(io.parse_line(str(path), lineno, raw), catalog)).encode("utf-8")
                out.write(raw + b"\n")
                kept += 1
    return kept


def quarantined(line: io.Line, reasons: list[str], scanner) -> dict:
    """The quarantine record of a line; every string is masked of secrets and e-mail addresses."""
    return {"source": line.where, "reasons": reasons, "row": masked(line.row, scanner),
            "text": None if line.row is not None else masked(line.text[:10000], scanner)}
