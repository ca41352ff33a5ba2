"""Benchmark: the data gate (stage validate) against a plain-Python check of the same rules.

Generates N rows with the template backend (the repo's specs, 1% broken
arguments so the quarantine path runs), then times, interleaved in one run
and each in a fresh subprocess (so its peak RSS is its own):

- ``gate``: ``synthforge.validate.validate`` end to end: Great Expectations
  import, derived columns, both suites, table expectations, kept and
  quarantined files, JSON report (no Data Docs);
- ``plain``: one loop that applies the same row rules with the same
  libraries (jsonschema through the catalog, detect-secrets through
  ``sensitive.Scanner``, a content hash) and writes the same two files.

Both must keep and reject the same number of rows, or the run stops.

    python bench/gate.py --sizes 100000 1000000 --work /tmp/gate-bench
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from child import peak_rss_mb, run_child  # noqa: E402


def make_rows(size: int, work: Path) -> Path:
    """N generated rows (cached in ``work``)."""
    from dataclasses import replace

    from generate import scaled

    from synthforge.generate import generate
    from synthforge.params import load_params

    out = work / f"rows-{size}.jsonl"
    if out.exists():
        return out
    p = load_params(ROOT / "params.yaml")
    params = replace(p.generate, backend="template", categories=scaled(p.generate.categories, size),
                     faults={"broken_arguments": 0.01})
    generate(ROOT / "data/specs" / params.tools, ROOT / "data/tools" / f"{params.tools}.json", out.with_suffix(".tmp"),
             params, p.base.seed, progress=False)
    out.with_suffix(".tmp").rename(out)
    return out


def run_gate(source: Path, work: Path) -> dict:
    from synthforge.params import load_params
    from synthforge.validate import validate

    p = load_params(ROOT / "params.yaml")
    verdict, report = validate([source], ROOT / "data/tools/coding_agent.json",
                               [ROOT / "expectations/critical.json", ROOT / "expectations/warning.json"],
                               work / "gate-kept.jsonl", work / "gate-rejected.jsonl", work / "gate-report.json",
                               None, p.validate, expected_categories=None)
    return {"rows": verdict.rows_in, "kept": verdict.kept, "rejected": verdict.rejected_rows}


# --- the plain check: the same row rules, written as one straightforward loop ---------

def run_plain(source: Path, work: Path) -> dict:
    from synthforge.catalog import load_catalog
    from synthforge.params import load_params
    from synthforge.sensitive import Scanner

    p = load_params(ROOT / "params.yaml").validate
    catalog, scanner, seen = load_catalog(ROOT / "data/tools/coding_agent.json"), Scanner(tuple(p.allowed_email_domains)), set()
    rows = kept = 0
    with source.open("rb") as fh, (work / "plain-kept.jsonl").open("w") as out, \
            (work / "plain-rejected.jsonl").open("w") as rejected:
        for lineno, raw in enumerate(fh, 1):
            raw = raw.removeprefix(b"\xef\xbb\xbf").rstrip(b"\r\n")
            if not raw.strip():
                continue
            rows += 1
            text, reasons = plain_reasons(raw, p.max_line_bytes, catalog, scanner, seen)
            if reasons:
                rejected.write(json.dumps({"source": f"{source}:{lineno}", "reasons": reasons}) + "\n")
            else:
                out.write(text + "\n")
                kept += 1
    return {"rows": rows, "kept": kept, "rejected": rows - kept}


def plain_reasons(raw: bytes, max_bytes: int, catalog, scanner, seen: set) -> tuple[str, list[str]]:
    if len(raw) > max_bytes:
        return "", ["too long"]
    try:
        text = raw.decode("utf-8")
        row = json.loads(text)
    except ValueError as exc:
        return "", [str(exc)]
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
        return "", ["not a chat row"]
    messages, reasons = row["messages"], []
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
    if not plain_order_ok(messages, roles):
        reasons.append("role order")
    if not roles or roles[-1] != "assistant":
        reasons.append("last role")
    reasons += plain_calls(messages, catalog)
    for m in messages:
        content = m.get("content")
        if (not isinstance(content, str) or not content.strip()) and (
                m.get("role") in ("system", "user", "tool") or (m.get("role") == "assistant" and not m.get("tool_calls"))):
            reasons.append("empty content")
        if isinstance(content, str) and scanner.scan(content):
            reasons.append("secret or e-mail")
        for call in m.get("tool_calls") or []:
            args = call["function"]["arguments"]
            leaves = plain_strings(json.loads(args) if isinstance(args, str) and args.startswith("{") and _parses(args) else args)
            if any(scanner.scan(s) for s in leaves):
                reasons.append("secret or e-mail")
    key = hashlib.blake2b(json.dumps([messages, row.get("tools")], sort_keys=True, ensure_ascii=False,
                                     separators=(",", ":")).encode(), digest_size=16).digest()
    if key in seen:
        reasons.append("duplicate")
    seen.add(key)
    return text, reasons


def _parses(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


def plain_strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in plain_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in plain_strings(v)]
    return []


def plain_order_ok(messages: list, roles: list) -> bool:
    seen_user = False
    for i, role in enumerate(roles):
        if role not in ("system", "user", "assistant", "tool") or (role == "system" and i) \
                or (role == "assistant" and not seen_user):
            return False
        if role == "tool" and roles[i - 1] != "tool" and not (roles[i - 1] == "assistant" and messages[i - 1].get("tool_calls")):
            return False
        seen_user = seen_user or role == "user"
    return bool(roles)


def plain_calls(messages: list, catalog) -> list[str]:
    reasons, ids = [], set()
    answered = {m.get("tool_call_id"): i for i, m in enumerate(messages) if m.get("role") == "tool"}
    for i, m in enumerate(messages):
        if m.get("role") == "tool":
            if m.get("tool_call_id") not in ids:
                reasons.append("orphan result")
            continue
        for call in m.get("tool_calls") or []:
            ids.add(call.get("id"))
            if i < len(messages) - 1 and answered.get(call.get("id"), -1) <= i:
                reasons.append("unanswered call")
            name, args = call["function"]["name"], call["function"]["arguments"]
            if name not in catalog:
                reasons.append("unknown tool")
            try:
                args = json.loads(args) if isinstance(args, str) else args
            except ValueError:
                reasons.append("arguments not JSON")
                continue
            if not isinstance(args, dict):
                reasons.append("arguments not an object")
            elif name in catalog and catalog.check_arguments(name, args):
                reasons.append("schema")
    return reasons


# --- driver -----------------------------------------------------------------------------

def child(kind: str, source: Path, work: Path) -> None:
    tic = time.perf_counter()
    counts = (run_gate if kind == "gate" else run_plain)(source, work)
    wall = time.perf_counter() - tic
    peak = peak_rss_mb()
    print(json.dumps({"kind": kind, **counts, "seconds": round(wall, 2), "rows_per_s": round(counts["rows"] / wall),
                      "peak_rss_mb": round(peak)}))


def measure(kind: str, source: Path, work: Path) -> dict:
    return run_child(__file__, ["--child", kind, "--source", str(source), "--work", str(work)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--work", type=Path, default=Path("/tmp/synthforge-gate-bench"))
    ap.add_argument("--repeat", type=int, default=1, help="plain/gate pairs per size")
    ap.add_argument("--child", choices=["gate", "plain"])
    ap.add_argument("--source", type=Path)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.source, args.work)
    args.work.mkdir(parents=True, exist_ok=True)
    for size in args.sizes:
        tic = time.perf_counter()
        source = make_rows(size, args.work)
        print(f"# {size:,} rows: {source.stat().st_size / 2**20:,.0f} MB ({time.perf_counter() - tic:.0f} s to make)", flush=True)
        results = []
        for _ in range(args.repeat):
            for kind in ("plain", "gate"):
                results.append(measure(kind, source, args.work))
                print(json.dumps(results[-1]), flush=True)
        plain = [r for r in results if r["kind"] == "plain"]
        gate = [r for r in results if r["kind"] == "gate"]
        if {(r["kept"], r["rejected"]) for r in results} != {(plain[0]["kept"], plain[0]["rejected"])}:
            raise SystemExit(f"gate and plain disagree: {results}")
        ratio = min(g["seconds"] for g in gate) / min(p["seconds"] for p in plain)
        print(f"size {size:,}: gate/plain time ratio {ratio:.2f}; gate peak RSS {max(g['peak_rss_mb'] for g in gate)} MB,"
              f" plain {max(p['peak_rss_mb'] for p in plain)} MB", flush=True)


if __name__ == "__main__":
    main()
