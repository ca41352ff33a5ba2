"""The gate on generated data with 1% broken rows of every kind, through the CLI.

Each kind of break is applied to its own 1% of real generated rows. The gate
must quarantine exactly those rows, each with its kind's expectation id, keep
all others, pass under the threshold and fail over it naming the expectation;
the Data Docs it writes show the failed expectations in headless Chromium
without network.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import CATALOG, ROOT, SPECS
from synthforge.cli import main

AWS_KEY = "AKIA" + "Z7QW3RTY5UIO2PAS"
CATEGORIES = {"tool_usage": 600, "powertools": 500, "agentic_skills": 400, "problem_solving": 300}


def _first_call(row):
    return next((m, c) for m in row["messages"] for c in m.get("tool_calls") or [])


def _with_result(row):
    return any(m["role"] == "tool" for m in row["messages"])


def unknown_tool(row):
    _first_call(row)[1]["function"]["name"] = "teleport"


def arguments_not_json(row):
    call = _first_call(row)[1]["function"]
    call["arguments"] = call["arguments"][:-1]


def arguments_break_schema(row):
    call = _first_call(row)[1]["function"]
    call["arguments"] = json.dumps({**json.loads(call["arguments"]), "no_such_argument": 1})


def unanswered_call(row):
    i = next(i for i, m in enumerate(row["messages"]) if m["role"] == "tool")
    row["messages"][i]["tool_call_id"] = "call_elsewhere"  # also an orphan result: both reasons are right


def last_not_assistant(row):
    row["messages"].append({"role": "user", "content": "One more thing, can you check the tests too?"})


def assistant_first(row):
    row["messages"].insert(0, {"role": "assistant", "content": "Hello, how can I help?"})


def empty_user(row):
    next(m for m in row["messages"] if m["role"] == "user")["content"] = " "


def secret(row):
    next(m for m in row["messages"] if m["role"] == "user")["content"] += f"\nmy key is {AWS_KEY}"


def email(row):
    row["messages"][-1]["content"] = (row["messages"][-1].get("content") or "") + " Ask j.smith@contoso-mail.com."


def bad_context(row):
    row["meta"]["context"] = {"sessionMemory": "we were fixing the parser"}


# kind -> (break, expectation id it must be rejected for, rows it applies to)
ROW_KINDS = {
    "unknown_tool": (unknown_tool, "tool_known", _with_result),
    "arguments_not_json": (arguments_not_json, "tool_arguments_parse", _with_result),
    "arguments_break_schema": (arguments_break_schema, "tool_arguments_schema", _with_result),
    "unanswered_call": (unanswered_call, "tool_calls_answered", _with_result),
    "last_not_assistant": (last_not_assistant, "ends_with_assistant", None),
    "assistant_first": (assistant_first, "role_order", None),
    "empty_user": (empty_user, "content_present", None),
    "secret": (secret, "no_secrets", None),
    "email": (email, "no_email_addresses", None),
    "context_invalid": (bad_context, "context_object_valid", None),
}
LINE_KINDS = {  # breaks of the line itself
    "invalid_json": (lambda line: line[:-7], "row_parse"),
    "invalid_utf8": (lambda line: line.replace(b'"content": "', b'"content": "\xff', 1), "row_parse"),
    "not_an_object": (lambda line: b"[" + line + b"]", "row_parse"),
    "too_long": (lambda line: line[:-1] + b', "pad": "' + b"x" * 120_000 + b'"}', "row_parse"),
}


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> list[dict]:
    from synthforge.generate import generate
    from synthforge.params import GenerateParams

    out = tmp_path_factory.mktemp("acceptance") / "rows.jsonl"
    generate(SPECS, CATALOG, out, GenerateParams(backend="template", categories=CATEGORIES, tools_per_example=2),
             seed=7, progress=False)
    return [json.loads(line) for line in out.read_text().splitlines()]


def broken_dataset(rows: list[dict], path: Path) -> dict[int, str]:
    """Write ``rows`` with 1% of them broken per kind; return line -> expected expectation id."""
    rng = random.Random(0)
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in rows]
    per_kind = len(rows) // 100
    free = list(range(len(rows)))
    rng.shuffle(free)
    planted: dict[int, str] = {}
    for kind, (brk, reason_id, applies) in ROW_KINDS.items():
        chosen = [i for i in free if applies is None or applies(rows[i])][:per_kind]
        for i in chosen:
            row = copy.deepcopy(rows[i])
            brk(row)
            lines[i], planted[i + 1] = json.dumps(row, ensure_ascii=False).encode(), reason_id
            free.remove(i)
    for kind, (brk, reason_id) in LINE_KINDS.items():
        for i in free[:per_kind]:
            lines[i], planted[i + 1] = brk(lines[i]), reason_id
        free = free[per_kind:]
    for target, source in zip(free[:per_kind], free[per_kind: 2 * per_kind]):  # exact duplicates of earlier rows
        first, later = sorted((target, source))
        lines[later], planted[later + 1] = lines[first], "not_duplicate"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return planted


def project(tmp_path: Path, threshold: float) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["generate"]["categories"] = CATEGORIES
    # 15% of the rows are broken here; the category and tool rules have their own tests
    params["validate"].update(max_rejected_fraction=threshold, max_line_bytes=100_000, min_tool_examples=0,
                              category_tolerance=0.25)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def run_validate(tmp_path: Path, threshold: float):
    args = ["validate", "--params", str(project(tmp_path, threshold)), "--input", str(tmp_path / "in.jsonl"),
            "--tools", str(CATALOG), "--suite", str(ROOT / "expectations/critical.json"),
            "--suite", str(ROOT / "expectations/warning.json"), "--out", str(tmp_path / "kept.jsonl"),
            "--rejected", str(tmp_path / "rejected.jsonl"), "--report", str(tmp_path / "report.json"),
            "--docs", str(tmp_path / "docs")]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_one_percent_of_each_kind_is_quarantined_exactly(rows, tmp_path, offline_browser):
    planted = broken_dataset(rows, tmp_path / "in.jsonl")
    kinds = len(ROW_KINDS) + len(LINE_KINDS) + 1
    assert len(planted) == kinds * (len(rows) // 100)  # every kind planted in full

    result = run_validate(tmp_path, threshold=0.2)
    assert result.exit_code == 0, result.output
    rejected = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    got = {int(r["source"].rsplit(":", 1)[1]): [x.split(":")[0] for x in r["reasons"]] for r in rejected}
    assert set(got) == set(planted)
    wrong = {line: (planted[line], ids) for line, ids in got.items() if planted[line] not in ids}
    assert not wrong
    kept = (tmp_path / "kept.jsonl").read_text().splitlines()
    assert len(kept) + len(rejected) == len(rows)
    assert f"in {len(rows)} = kept {len(kept)} + rejected {len(rejected)}" in " ".join(result.output.split())
    assert AWS_KEY not in (tmp_path / "rejected.jsonl").read_text() and AWS_KEY not in "".join(kept)

    dom, requested = offline_browser(tmp_path / "docs" / "index.html")
    assert not requested
    for reason_id in set(planted.values()):
        assert reason_id in dom, reason_id


def test_over_the_threshold_the_stage_fails_naming_the_expectation(rows, tmp_path):
    planted = broken_dataset(rows, tmp_path / "in.jsonl")
    result = run_validate(tmp_path, threshold=0.1)
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    share = len(planted) / len(rows)
    assert f"gate failed: rejected_fraction (expect_column_values_to_be_between on dataset.rejected_fraction):" \
           f" rejected_fraction = {round(share, 6)} ({len(planted)} of {len(rows)} rows rejected)" in text
    assert "Traceback" not in result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] is False and report["rejected"] == len(planted)
