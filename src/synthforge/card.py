"""Stage ``card``: a dataset card people can look at (Markdown + PNG), logged to MLflow.

Reads the gated splits, the model's tokenizer and the reports of the data
stages, and writes ``reports/dataset_card.md`` with figures in
``reports/card/``:

- rows per split and per category, with each category's share;
- lineage counts: generated, imported, quarantined by gate 1, kept,
  enhanced and rejected by ``enhance``, exact duplicates and near-duplicate
  groups found by ``merge``, rejected by gate 2;
- both gates' results (failed and warned expectations);
- token lengths under the model's chat template (histogram, percentiles);
- tool usage (calls per tool) and quality scores (``meta.score``);
- the data's DVC hash (``data/splits`` in ``dvc.lock``), also the MLflow tag.

    synthforge card --data data/splits --tokenizer models/tokenizer --reports reports \\
        --lock dvc.lock --out reports/dataset_card.md --figures reports/card
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from . import io
from .schema import called_tools

SPLITS = ("train", "valid", "test")


def build_card(data_dir: Path, tokenizer_dir: Path, reports_dir: Path, lock_path: Path | None, out_path: Path,
               figures_dir: Path) -> dict:
    """Write the card and its figures; return the figures' numbers (for MLflow)."""
    from .chat import render
    from .gate_splits import load_tokenizer

    splits = {name: io.read_rows(Path(data_dir) / f"{name}.jsonl") for name in SPLITS}
    rows = [r for name in SPLITS for r in splits[name]]
    tokenizer = load_tokenizer(Path(tokenizer_dir))
    tokens = np.array([len(tokenizer.encode(render(tokenizer, r["messages"], r.get("tools")),
                                            add_special_tokens=False)) for r in rows])
    reports = {name: _report(Path(reports_dir) / f"{name}.json") for name in
               ("generate", "validate", "enhance", "merge", "gate_splits")}
    facts = {
        "rows": {name: len(part) for name, part in splits.items()},
        "categories": {name: dict(sorted(Counter(_category(r) for r in part).items())) for name, part in splits.items()},
        "tools": dict(Counter(t for r in rows for t in called_tools(r)).most_common()),
        "tokens": {"min": int(tokens.min()), "median": int(np.median(tokens)), "p95": int(np.percentile(tokens, 95)),
                   "max": int(tokens.max())} if len(tokens) else {},
        "scores": [float(r.get("meta", {}).get("score")) for r in rows if isinstance(r.get("meta", {}).get("score"), (int, float))],
        "lineage": lineage(reports, len(rows)),
        "dvc_hash": dvc_hash(lock_path, data_dir),
    }
    from .plots import card_figures

    figures = card_figures(facts, tokens, Path(figures_dir))
    with io.atomic_open(out_path) as fh:
        fh.write(markdown(facts, reports, figures, Path(out_path).parent))
    return facts


def _report(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _category(row: dict) -> str:
    return str(row.get("meta", {}).get("category", "unknown"))


def lineage(reports: dict, final_rows: int) -> dict:
    """Row counts through the pipeline, from the stages' own reports."""
    enhance, validate, merge, gate2 = (reports[k] for k in ("enhance", "validate", "merge", "gate_splits"))
    by_source = enhance.get("by_source", {})
    return {
        "generated": reports["generate"].get("kept"),
        "imported (after gate 1)": by_source.get("imported", {}).get("rows_in", 0),
        "quarantined by gate 1": validate.get("rejected"),
        "kept as they were": enhance.get("kept"),
        "enhanced": enhance.get("enhanced"),
        "rejected by enhance": enhance.get("rejected"),
        "exact duplicates removed": merge.get("duplicates"),
        "near-duplicate groups (kept on one side)": merge.get("near_duplicates", {}).get("groups"),
        "rejected by gate 2": gate2.get("rejected"),
        "in the final splits": final_rows,
    }


def dvc_hash(lock_path: Path | None, data_dir: Path) -> str | None:
    """The md5 DVC recorded for ``data_dir`` (any stage's output) in ``dvc.lock``, or None."""
    if lock_path is None or not Path(lock_path).exists():
        return None
    import yaml

    lock = yaml.safe_load(Path(lock_path).read_text()) or {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs", []):
            if Path(out.get("path", "")) == Path(data_dir):
                return out.get("md5")
    return None


def markdown(facts: dict, reports: dict, figures: dict[str, Path], base: Path) -> str:
    cats = sorted({c for part in facts["categories"].values() for c in part})
    total = sum(facts["rows"].values()) or 1
    lines = ["# Dataset card", "",
             f"{total:,} conversations: " + ", ".join(f"{n} {facts['rows'][n]:,}" for n in SPLITS) + ".",
             f"DVC hash of the splits: `{facts['dvc_hash'] or 'not in dvc.lock yet'}`.", "",
             "## Categories", "", "| category | " + " | ".join(SPLITS) + " | share |", "|---|" + "---|" * 4]
    for c in cats:
        counts = [facts["categories"][n].get(c, 0) for n in SPLITS]
        lines.append(f"| {c} | " + " | ".join(f"{x:,}" for x in counts) + f" | {100 * sum(counts) / total:.1f}% |")
    lines += ["", _image(figures, "categories", base), "", "## Lineage", "", "| step | rows |", "|---|---|"]
    lines += [f"| {k} | {'-' if v is None else f'{v:,}'} |" for k, v in facts["lineage"].items()]
    lines += ["", "## Gates", ""]
    for name, title in (("validate", "Gate 1 (validate)"), ("gate_splits", "Gate 2 (gate-splits)")):
        r = reports[name]
        failed = {k: v for k, v in r.get("failures", {}).items() if v}
        warned = {k: v for k, v in r.get("warnings", {}).items() if v}
        lines.append(f"- **{title}**: {'passed' if r.get('passed') else 'FAILED' if r else 'no report'};"
                     f" in {r.get('rows_in', 0):,} = kept {r.get('kept', 0):,} + rejected {r.get('rejected', 0):,}."
                     f" Rows failing: {_pairs(failed) or 'none'}. Warnings: {_pairs(warned) or 'none'}.")
    t = facts["tokens"]
    lines += ["", "## Token lengths (the model's chat template)", "",
              f"min {t.get('min')}, median {t.get('median')}, 95th percentile {t.get('p95')}, max {t.get('max')}.", "",
              _image(figures, "tokens", base), "", "## Tool usage", "", "| tool | calls |", "|---|---|"]
    lines += [f"| {k} | {v:,} |" for k, v in facts["tools"].items()]
    scores = facts["scores"]
    lines += ["", _image(figures, "tools", base), "", "## Quality scores (stage enhance)", "",
              f"mean {np.mean(scores):.2f} over {len(scores):,} rows." if scores else "no scores in the rows.", "",
              _image(figures, "scores", base), ""]
    return "\n".join(lines)


def _pairs(d: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items())


def _image(figures: dict[str, Path], name: str, base: Path) -> str:
    path = figures.get(name)
    return f"![{name}]({path.relative_to(base) if path and path.is_relative_to(base) else path})" if path else ""
