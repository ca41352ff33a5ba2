"""Stage ``gate-splits``: the data gate again, on the merged splits, before any training.

The same suites as ``validate``, now with the model's tokenizer: each row is
rendered with the chat template to count its tokens (``fits_max_seq_length``),
its trainable tokens after masking and whether every assistant turn's
end-of-turn token is trained. Rows failing a critical expectation are left
out of every file of the output folder (``train/valid/test.jsonl`` and the
curriculum folders, which hold copies of train/valid rows) and quarantined;
the output folder has the merged folder's layout, so ``mlx_lm`` loads it
unchanged.

    synthforge gate-splits --data data/merged --tokenizer models/tokenizer \\
        --tools data/tools/coding_agent.json --suite expectations/critical.json \\
        --suite expectations/warning.json --out data/splits \\
        --rejected data/gated/rejected.jsonl --report reports/gate_splits.json \\
        --docs reports/data_docs/gate-splits
"""

from __future__ import annotations

import shutil
from pathlib import Path

from . import io
from .gate import GateError, Verdict, configure, run
from .gatereport import build_report, failure_message, write_docs
from .params import ValidateParams
from .schema import row_digest
from .validate import quarantined

SPLITS = ("train", "valid", "test")


def gate_splits(data_dir: Path, tokenizer_dir: Path, tools_path: Path, suite_paths: list[Path], out_dir: Path,
                rejected_path: Path, report_path: Path, docs_dir: Path | None, p: ValidateParams, *,
                max_seq_length: int, expected_categories: dict[str, int] | None = None) -> tuple[Verdict, dict]:
    """Gate ``data_dir``'s splits; write the gated folder, the quarantine, the report and Data Docs."""
    files = [data_dir / f"{name}.jsonl" for name in SPLITS]
    config = configure(tools_path, suite_paths, p, expected_categories=expected_categories,
                       tokenizer=load_tokenizer(tokenizer_dir), max_seq_length=max_seq_length)
    verdict = run(files, config)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    dropped, written = write_splits(files, verdict, tmp, rejected_path, config.rules.scanner)
    written.update(copy_filtered(data_dir, tmp, dropped))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    report = build_report(verdict, p.max_rejected_fraction, files=written, max_seq_length=max_seq_length)
    io.write_json(report_path, report)
    write_docs(verdict, docs_dir, "synthforge gate: merged splits")
    if not verdict.passed:
        raise GateError(failure_message(verdict), verdict, report)
    return verdict, report


def load_tokenizer(folder: Path):
    """The tokenizer of stage ``tokenizer``'s folder (embedded files, or a referenced model)."""
    from .model import resolve

    try:
        from mlx_lm.utils import load_tokenizer as mlx_load_tokenizer
    except ImportError as exc:
        raise GateError(f"gate-splits needs mlx-lm to load the tokenizer ({exc}): pip install mlx-lm") from None
    try:
        return mlx_load_tokenizer(resolve(folder))
    except Exception as exc:  # missing files, an unknown hub id offline: say which folder
        raise GateError(f"{folder}: cannot load the tokenizer: {' '.join(str(exc).split())[:300]}") from None


def write_splits(files: list[Path], verdict: Verdict, out_dir: Path, rejected_path: Path, scanner):
    """Kept lines of each split to ``out_dir`` as read; the rest to ``rejected_path``; digests of the dropped rows."""
    dropped, written = set(), {}
    with io.atomic_open(rejected_path) as rejected:
        for index, path in enumerate(files):
            kept = 0
            with io.atomic_open(out_dir / path.name, "wb") as out:
                for lineno, raw in io.read_raw(path):
                    reasons = verdict.rejected.get((index, lineno))
                    if reasons is None:
                        out.write(raw + b"\n")
                        kept += 1
                        continue
                    line = io.parse_line(str(path), lineno, raw)
                    rejected.write(io.dumps(quarantined(line, reasons, scanner)) + "\n")
                    if line.row is not None and isinstance(line.row.get("messages"), list):
                        dropped.add(row_digest(line.row))
            written[path.name] = kept
    return dropped, written


def copy_filtered(data_dir: Path, out_dir: Path, dropped: set[bytes]) -> dict[str, int]:
    """Every other JSONL file under ``data_dir`` (curriculum folders), without the dropped rows."""
    written = {}
    for path in sorted(data_dir.rglob("*.jsonl")):
        rel = path.relative_to(data_dir)
        if len(rel.parts) == 1 and path.stem in SPLITS:
            continue
        rows = [r for r in io.read_rows(path) if row_digest(r) not in dropped]
        written[str(rel)] = io.write_jsonl(out_dir / rel, rows)
    return written
