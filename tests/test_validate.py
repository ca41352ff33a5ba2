"""Stage validate: derived columns + GX suites quarantine bad rows, say why, and stop on too many."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from synthforge.gate import GateError
from synthforge.gatereport import summary
from synthforge.params import ValidateParams
from synthforge.validate import validate

ROOT = Path(__file__).parents[1]
TOOLS = ROOT / "data/tools/coding_agent.json"
SUITES = [ROOT / "expectations/critical.json", ROOT / "expectations/warning.json"]
AWS_KEY = "AKIA" + "IOSFODNN7" + "EXAMPLE"
PEM = "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234\n-----END RSA PRIVATE KEY-----"


def call(name="read", args='{"file_path": "src/main.rs"}', cid="call_1"):
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}


def convo(*messages, category="explore", **meta):
    return {"messages": list(messages), "meta": {"id": f"{category}-x", "category": category, **meta}}


SYSTEM = {"role": "system", "content": "You are a coding agent."}
USER = {"role": "user", "content": "Show me the entry point of the program."}
USER2 = {"role": "user", "content": "Thanks, now summarise it for me."}
ANSWER = {"role": "assistant", "content": "The entry point is main() in src/main.rs."}
CONTEXT = {"sessionMemory": "User is porting the CLI parser from Go to Rust; flags.rs is done, 3 tests fail.",
           "toolContext": "Reading main.rs first shows how the parser is wired before changing it.",
           "primaryGoal": "Port the CLI to Rust", "subgoal": "Find the entry point"}


def asks(*calls):
    return {"role": "assistant", "content": "Let me look.", "tool_calls": list(calls)}


def result(cid="call_1", content="fn main() {}"):
    return {"role": "tool", "tool_call_id": cid, "content": content}


def seed003(context=None, value='tool_call: read\narguments: {"file_path": "src/main.rs"}'):
    row = {"conversations": [{"from": "human", "value": "Please open src/main.rs for me."},
                             {"from": "gpt", "value": value}], "label": True}
    if context is not None:
        row["context"] = context
    return row


GOOD = [
    convo(SYSTEM, USER, asks(call()), result(), ANSWER),
    convo(USER, ANSWER, category="chat"),
    convo(USER, asks(call(), call("grep", '{"pattern": "fn main"}', "call_2")),
          result("call_1"), result("call_2"), ANSWER, USER2, ANSWER),
    seed003(),
    seed003(CONTEXT, value='tool_call: grep\narguments: {"pattern": "fn main"}'),
    convo(USER, {"role": "assistant", "content": "Mail dev@example.com or ops@ci.example.org about it."}),
]

# (name, raw line, expected reason id); each is one kind of broken row
BAD = [
    ("invalid_json", '{"messages": [', "row_parse"),
    ("invalid_utf8", b'{"messages": "caf\xe9"}', "row_parse"),
    ("not_an_object", "[1, 2, 3]", "row_parse"),
    ("not_a_chat_row", '{"text": "hello"}', "row_parse"),
    ("line_over_max_bytes", convo(USER, {"role": "assistant", "content": "x" * 3_000_000}), "row_parse"),
    ("unknown_tool", convo(USER, asks(call("teleport", "{}")), result(), ANSWER), "tool_known"),
    ("arguments_not_json", convo(USER, asks(call(args='{"file_path": "a.rs"')), result(), ANSWER), "tool_arguments_parse"),
    ("arguments_break_schema", convo(USER, asks(call(args='{"path": "a.rs"}')), result(), ANSWER), "tool_arguments_schema"),
    ("unanswered_middle_call", convo(USER, asks(call()), USER2, ANSWER), "tool_calls_answered"),
    ("orphan_tool_result", convo(USER, asks(call()), result(), result("call_9"), ANSWER), "tool_results_matched"),
    ("last_not_assistant", convo(USER, ANSWER, USER2), "ends_with_assistant"),
    ("bad_role_order", convo(ANSWER, USER, ANSWER), "role_order"),
    ("tool_without_call", convo(USER, result(), ANSWER), "role_order"),
    ("empty_user", convo({"role": "user", "content": "  "}, ANSWER), "content_present"),
    ("empty_assistant", convo(USER, {"role": "assistant", "content": ""}), "content_present"),
    ("empty_tool_result", convo(USER, asks(call()), result(content=""), ANSWER), "content_present"),
    ("aws_key", convo(USER, asks(call()), result(content=f"aws_access_key_id = {AWS_KEY}"), ANSWER), "no_secrets"),
    ("private_key", convo({"role": "user", "content": f"Why does this fail?\n{PEM}"}, ANSWER), "no_secrets"),
    ("email", convo(USER, {"role": "assistant", "content": "Ask jane.doe@acme-corp.io for access."}), "no_email_addresses"),
    ("duplicate", GOOD[0], "not_duplicate"),
    ("context_lacks_keys", seed003({"sessionMemory": "x" * 60}, value='tool_call: list_dir\narguments: {"path": "src"}'),
     "context_object_valid"),
]


def encode_line(r) -> bytes:
    if isinstance(r, bytes):
        return r
    return (r if isinstance(r, str) else json.dumps(r)).encode("utf-8")


def write_lines(path: Path, rows) -> Path:
    path.write_bytes(b"".join(encode_line(r) + b"\n" for r in rows))
    return path


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def paths(tmp_path: Path) -> dict:
    return {"out_path": tmp_path / "out" / "kept.jsonl", "rejected_path": tmp_path / "out" / "rejected.jsonl",
            "report_path": tmp_path / "report.json", "docs_dir": None}


def gate(tmp_path: Path, rows, threshold=0.5, expected=None, **kw):
    source = write_lines(tmp_path / "in.jsonl", rows) if rows is not None else tmp_path / "in.jsonl"
    p = ValidateParams(max_rejected_fraction=threshold, min_tool_examples=0, **kw)
    return validate([source], TOOLS, SUITES, p=p, expected_categories=expected, **paths(tmp_path))


def test_good_rows_are_all_kept(tmp_path):
    verdict, report = gate(tmp_path, GOOD, threshold=0.0)
    kept = read_lines(paths(tmp_path)["out_path"])
    assert (verdict.rows_in, verdict.kept, verdict.rejected_rows) == (6, 6, 0)
    assert kept[:3] == GOOD[:3]  # canonical rows pass through unchanged
    assert kept[3]["messages"][1]["tool_calls"][0]["function"]["name"] == "read"  # seed-003 converted
    assert kept[3]["meta"]["id"] == "in-000004" and kept[4]["meta"]["context"] == CONTEXT
    assert paths(tmp_path)["rejected_path"].read_text() == ""
    assert json.loads(paths(tmp_path)["report_path"].read_text()) == report
    assert report["passed"] is True and report["rejected_fraction"] == 0.0
    assert set(report["failures"]) >= {"role_order", "no_secrets", "not_duplicate"} and not any(report["failures"].values())
    assert report["tools"]["read"] == 3 and report["tools"]["grep"] == 2


@pytest.mark.parametrize("name,bad,reason_id", BAD, ids=[b[0] for b in BAD])
def test_bad_row_is_rejected_with_its_expectation_id(tmp_path, name, bad, reason_id):
    verdict, report = gate(tmp_path, [GOOD[0], bad, GOOD[1], GOOD[2]])
    assert (verdict.rows_in, verdict.kept, verdict.rejected_rows) == (4, 3, 1)
    assert read_lines(paths(tmp_path)["out_path"]) == [GOOD[0], GOOD[1], GOOD[2]]
    (rejected,) = read_lines(paths(tmp_path)["rejected_path"])
    assert rejected["source"] == f"{tmp_path / 'in.jsonl'}:2"
    assert reason_id in [r.split(":")[0] for r in rejected["reasons"]], rejected["reasons"]
    assert report["failures"][reason_id] == 1


def test_reasons_say_what_is_wrong(tmp_path):
    rows = [convo(USER, asks(call(args='{"file_path": "a.rs" "x"}')), result(), ANSWER), b'{"a": "\xff"}',
            GOOD[0], GOOD[0], convo(USER, {"role": "assistant", "content": "x" * 2_000_000})]
    gate(tmp_path, rows, threshold=1.0)
    reasons = [r["reasons"] for r in read_lines(paths(tmp_path)["rejected_path"])]
    assert reasons == [
        ["tool_arguments_parse: message 1: call 'read' arguments are not valid JSON (Expecting ',' delimiter at column 22)"],
        ["row_parse: invalid UTF-8 at byte 7"],
        [f"not_duplicate: same messages and tools as {tmp_path / 'in.jsonl'}:3"],
        ["row_parse: line is 2,000,176 bytes (> validate.max_line_bytes 1,048,576)"],
    ]


def test_secrets_never_reach_the_quarantine_file(tmp_path):
    rows = [r for name, r, _ in BAD if name in ("aws_key", "private_key", "email")] + [GOOD[0]]
    verdict, _ = gate(tmp_path, rows, threshold=1.0)
    text = paths(tmp_path)["rejected_path"].read_text()
    assert verdict.rejected_rows == 3
    for value in (AWS_KEY, "MIIEowIBAAKCAQEA1234", "jane.doe@acme-corp.io"):
        assert value not in text
        assert value not in " ".join(verdict.examples.values())
    assert "REDACTED" in text


def test_tolerated_input_quirks_are_kept_and_noticed(tmp_path):
    lines = b"\xef\xbb\xbf" + json.dumps(GOOD[0]).encode() + b"\r\n\r\n" + json.dumps(GOOD[1]).encode() + b"\r\n\n"
    (tmp_path / "in.jsonl").write_bytes(lines)
    verdict, report = gate(tmp_path, None, threshold=0.0)
    assert (verdict.rows_in, verdict.kept) == (2, 2)
    assert read_lines(paths(tmp_path)["out_path"]) == GOOD[:2]
    assert [n.split(": ", 1)[1] for n in report["notices"]] == [
        "UTF-8 byte-order mark removed on 1 line (1)", "CRLF line end read as LF on 3 lines (1, 2, 3)",
        "blank line skipped (not a row) on 2 lines (2, 4)"]


def test_warnings_are_reported_not_rejected(tmp_path):
    short = convo({"role": "user", "content": "fix it"}, ANSWER)
    weak = seed003({**CONTEXT, "sessionMemory": "none", "toolContext": {"tool": "read"}})
    verdict, report = gate(tmp_path, [short, weak, GOOD[0]], threshold=0.0)
    assert verdict.kept == 3 and verdict.rejected_rows == 0
    assert {k: v for k, v in report["warnings"].items() if v} == {
        "user_text_length": 1, "session_memory_length": 1, "tool_context_is_text": 1}
    assert "session_memory_length" in summary(verdict, report)


def test_every_kind_at_once_counts_add_up(tmp_path):
    rows = GOOD + [b for _, b, _ in BAD]
    verdict, report = gate(tmp_path, rows, threshold=1.0)
    rejected = read_lines(paths(tmp_path)["rejected_path"])
    assert verdict.rows_in == len(rows) == verdict.kept + verdict.rejected_rows
    assert (verdict.kept, verdict.rejected_rows) == (len(GOOD), len(BAD))
    assert len(read_lines(paths(tmp_path)["out_path"])) == verdict.kept and len(rejected) == len(BAD)
    for entry, (_, _, reason_id) in zip(rejected, BAD):
        assert reason_id in [r.split(":")[0] for r in entry["reasons"]], entry["reasons"]
    assert report["failures"]["row_parse"] == 5 and report["failures"]["role_order"] == 2
    text = summary(verdict, report)
    assert f"in {len(rows)} = kept {len(GOOD)} + rejected {len(BAD)}" in text and "row_parse" in text


def test_above_threshold_fails_naming_the_expectation(tmp_path):
    bad = convo(USER, asks(call(args="{oops")), result(), ANSWER)
    rows = GOOD[:3] * 2 + [bad] * 3 + [GOOD[1]]
    with pytest.raises(GateError) as err:
        gate(tmp_path, rows, threshold=0.1)
    message = str(err.value)
    assert "gate failed: rejected_fraction (expect_column_values_to_be_between on dataset.rejected_fraction)" in message
    assert "rejected_fraction = 0.7 (7 of 10 rows rejected)" in message  # 3 broken + 4 duplicates
    assert f"tool_arguments_parse 3 (e.g. {tmp_path / 'in.jsonl'}:7: message 1: call 'read' arguments" in message
    report = json.loads(paths(tmp_path)["report_path"].read_text())  # outputs are written even when the gate fails
    assert report["passed"] is False and report["rejected"] == 7 and report["kept"] == 3
    assert report["failed_table_expectations"] == ["rejected_fraction"]
    assert len(read_lines(paths(tmp_path)["rejected_path"])) == 7
    assert err.value.report == report and "[red]failed[/red]" in summary(err.value.verdict, report)


def test_below_threshold_passes(tmp_path):
    bad = convo(USER, asks(call(args="{oops")), result(), ANSWER)
    rows = [convo(USER, {"role": "assistant", "content": f"Answer number {i}."}) for i in range(20)] + [bad]
    verdict, report = gate(tmp_path, rows, threshold=0.1)
    assert report["passed"] is True and report["failures"]["tool_arguments_parse"] == 1
    assert report["rejected_fraction"] == pytest.approx(1 / 21, abs=1e-6)


def test_category_counts_and_tool_coverage_are_dataset_rules(tmp_path):
    rows = [convo(USER, asks(call()), result(), {"role": "assistant", "content": f"Read {i}."}) for i in range(10)]
    with pytest.raises(GateError) as err:
        gate(tmp_path, rows, threshold=0.0, expected={"explore": 12, "debugging": 5})
    message = str(err.value)
    assert "category_counts" in message and "debugging deviation=1.0" in message and "explore deviation=0.166667" in message
    verdict, report = gate(tmp_path, rows, threshold=0.0, expected={"explore": 10}, category_tolerance=0.0)
    assert report["passed"] and report["categories"] == {"explore": 10}
    with pytest.raises(GateError, match=r"tool_coverage \(.*on tools.examples\): \w+ examples=0"):
        validate([tmp_path / "in.jsonl"], TOOLS, SUITES, p=ValidateParams(max_rejected_fraction=0.0, min_tool_examples=1),
                 **paths(tmp_path))


def test_empty_input_fails_with_has_rows(tmp_path):
    with pytest.raises(GateError, match=r"has_rows .*: the input has no rows"):
        gate(tmp_path, [])


def test_missing_input_names_the_file(tmp_path):
    with pytest.raises(GateError, match=r"in\.jsonl: file not found"):
        gate(tmp_path, None)
    assert not paths(tmp_path)["report_path"].exists()


def _suite_with(tmp_path: Path, change) -> list[Path]:
    doc = json.loads(SUITES[0].read_text())
    change(doc["expectations"])
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(doc))
    return [path, SUITES[1]]


def test_misspelled_expectation_type_names_it(tmp_path):
    suites = _suite_with(tmp_path, lambda e: e[2].update(type="expect_column_values_to_be_betwen"))
    source = write_lines(tmp_path / "in.jsonl", GOOD)
    with pytest.raises(GateError, match=r"suite\.json: 1 of 20 expectations could not be loaded.*expect_column_values_to_be_betwen"):
        validate([source], TOOLS, suites, p=ValidateParams(max_rejected_fraction=0.1), **paths(tmp_path))


def test_suite_column_must_be_derived(tmp_path):
    suites = _suite_with(tmp_path, lambda e: e[1]["kwargs"].update(column="role_ok"))
    source = write_lines(tmp_path / "in.jsonl", GOOD)
    with pytest.raises(GateError, match="reads column 'role_ok', which table 'rows' does not have"):
        validate([source], TOOLS, suites, p=ValidateParams(max_rejected_fraction=0.1), **paths(tmp_path))


def test_gx_context_does_not_leak(tmp_path):
    from great_expectations.data_context.data_context.context_factory import project_manager

    before = getattr(project_manager, "_ProjectManager__project")
    gate(tmp_path, GOOD)
    assert getattr(project_manager, "_ProjectManager__project") is before


def test_missing_great_expectations_is_actionable(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "great_expectations.core.expectation_suite", None)
    with pytest.raises(GateError, match="pip install 'great-expectations"):
        gate(tmp_path, GOOD)
