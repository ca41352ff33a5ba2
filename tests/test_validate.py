"""Stage validate: the row gate (flatten + Great Expectations) on small files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from synthforge.params import ValidateParams
from synthforge.validate import GateError, GateResult, run_gate, summary

ROOT = Path(__file__).parents[1]
TOOLS = ROOT / "data/tools/coding_agent.json"
SUITE = ROOT / "expectations/critical.json"


def call(name="read", args='{"file_path": "src/main.rs"}', cid="call_1"):
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}


def convo(*messages, category="explore"):
    return {"messages": list(messages), "meta": {"id": f"{category}-x", "category": category}}


SYSTEM = {"role": "system", "content": "You are a coding agent."}
USER = {"role": "user", "content": "Show me the entry point of the program."}
USER2 = {"role": "user", "content": "Thanks, now summarise it for me."}
ANSWER = {"role": "assistant", "content": "The entry point is main() in src/main.rs."}


def asks(*calls):
    return {"role": "assistant", "content": "Let me look.", "tool_calls": list(calls)}


def result(cid="call_1", content="fn main() {}"):
    return {"role": "tool", "tool_call_id": cid, "content": content}


GOOD = [
    convo(SYSTEM, USER, asks(call()), result(), ANSWER),
    convo(USER, ANSWER, category="chat"),
    convo(USER, asks(call(), call("grep", '{"pattern": "fn main"}', "call_2")),
          result("call_1"), result("call_2"), ANSWER, USER2, ANSWER),
    {"conversations": [{"from": "human", "value": "Please open src/main.rs for me."},
                       {"from": "gpt", "value": 'tool_call: read\narguments: {"file_path": "src/main.rs"}'}],
     "label": "seed"},
]

# (name, raw line, expected reason id)
BAD = [
    ("invalid_json", '{"messages": [', "row_parse"),
    ("not_an_object", "[1, 2, 3]", "row_parse"),
    ("not_a_chat_row", '{"text": "hello"}', "row_parse"),
    ("unknown_tool", convo(USER, asks(call("teleport", "{}")), result(), ANSWER), "tool_known"),
    ("arguments_not_json", convo(USER, asks(call(args='{"file_path": "a.rs"')), result(), ANSWER), "tool_arguments_parse"),
    ("arguments_break_schema", convo(USER, asks(call(args='{"path": "a.rs"}')), result(), ANSWER), "tool_arguments_schema"),
    ("unanswered_middle_call", convo(USER, asks(call()), USER2, ANSWER), "tool_calls_answered"),
    ("orphan_tool_result", convo(USER, asks(call()), result(), result("call_9"), ANSWER), "tool_results_matched"),
    ("last_not_assistant", convo(USER, ANSWER, USER2), "ends_with_assistant"),
    ("bad_role_order", convo(ANSWER, USER, ANSWER), "role_order"),
    ("tool_without_call", convo(USER, result(), ANSWER), "role_order"),
    ("short_user", convo({"role": "user", "content": " hi "}, ANSWER), "user_text_length"),
    ("empty_assistant", convo(USER, {"role": "assistant", "content": ""}), "assistant_text_present"),
]


def write_lines(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def gate(tmp_path: Path, rows, threshold=0.5, suite=SUITE, **kw) -> tuple[GateResult, dict]:
    paths = _paths(tmp_path)
    write_lines(paths["input_path"], rows)
    res = run_gate(tools_path=TOOLS, suite_path=suite, params=ValidateParams(max_rejected_fraction=threshold, **kw), **paths)
    return res, paths


def _paths(tmp_path: Path) -> dict:
    return {"input_path": tmp_path / "in.jsonl", "out_path": tmp_path / "out" / "kept.jsonl",
            "rejected_path": tmp_path / "out" / "rejected.jsonl", "report_path": tmp_path / "report.json"}


def test_good_rows_are_all_kept(tmp_path):
    res, paths = gate(tmp_path, GOOD, threshold=0.0)
    kept = read_lines(paths["out_path"])
    assert (res.rows_in, res.kept, res.rejected) == (4, 4, 0)
    assert kept[:3] == GOOD[:3]  # canonical rows pass through unchanged
    assert kept[3]["messages"][1]["tool_calls"][0]["function"]["name"] == "read"  # seed-003 converted
    assert kept[3]["meta"]["id"] == "in-000004"
    assert paths["rejected_path"].read_text() == ""
    report = json.loads(paths["report_path"].read_text())
    assert report == res.report
    assert report["passed"] is True and report["rejected_fraction"] == 0.0
    assert report["categories"] == {"chat": 1, "explore": 2, "unknown": 1}
    assert set(report["failures"]) >= {"role_order", "tool_arguments_parse"} and not any(report["failures"].values())


@pytest.mark.parametrize("name,bad,reason_id", BAD, ids=[b[0] for b in BAD])
def test_bad_row_is_rejected_with_its_expectation_id(tmp_path, name, bad, reason_id):
    res, paths = gate(tmp_path, [GOOD[0], bad, GOOD[1], GOOD[2]])
    assert (res.rows_in, res.kept, res.rejected) == (4, 3, 1)
    assert read_lines(paths["out_path"]) == [GOOD[0], GOOD[1], GOOD[2]]
    (rejected,) = read_lines(paths["rejected_path"])
    assert rejected["source"] == f"{paths['input_path']}:2"
    assert any(r.startswith(f"{reason_id}: ") for r in rejected["reasons"]), rejected["reasons"]
    if name in ("invalid_json", "not_an_object"):
        assert rejected["row"] is None and rejected["text"] == bad
    elif isinstance(bad, str):
        assert rejected["row"] == json.loads(bad) and rejected["text"] is None
    else:
        assert rejected["row"] == bad and rejected["text"] is None
    if reason_id != "row_parse":
        assert res.failures[reason_id] == 1


def test_detail_of_unparseable_arguments(tmp_path):
    _, paths = gate(tmp_path, [convo(USER, asks(call(args='{"file_path": "a.rs" "x"}')), result(), ANSWER)], threshold=1.0)
    (rejected,) = read_lines(paths["rejected_path"])
    assert rejected["reasons"] == ["tool_arguments_parse: call 'read' arguments are not valid JSON"
                                   " (Expecting ',' delimiter at column 22)"]


def test_final_assistant_may_end_on_a_tool_call(tmp_path):
    res, _ = gate(tmp_path, [convo(USER, asks(call()))], threshold=0.0)
    assert res.kept == 1


def test_every_kind_at_once_counts_add_up(tmp_path):
    rows = GOOD + [b for _, b, _ in BAD]
    res, paths = gate(tmp_path, rows, threshold=1.0)
    rejected = read_lines(paths["rejected_path"])
    assert res.rows_in == len(rows) == res.kept + res.rejected
    assert (res.kept, res.rejected) == (len(GOOD), len(BAD))
    assert len(read_lines(paths["out_path"])) == res.kept and len(rejected) == res.rejected
    for entry, (_, _, reason_id) in zip(rejected, BAD):
        assert any(r.startswith(reason_id) for r in entry["reasons"]), (reason_id, entry)
    report = res.report
    assert report["parse_errors"] == 3 and report["rejected"] == len(BAD)
    assert report["failures"]["role_order"] == 2
    text = summary(res)
    assert f"in {len(rows)} = kept {len(GOOD)} + rejected {len(BAD)}" in text and "row_parse" in text


def test_below_threshold_passes(tmp_path):
    bad = convo(USER, asks(call(args="{oops")), result(), ANSWER)
    res, paths = gate(tmp_path, GOOD * 5 + [bad], threshold=0.1)
    assert res.report["passed"] is True and res.failures["tool_arguments_parse"] == 1
    assert res.report["rejected_fraction"] == pytest.approx(1 / 21, abs=1e-6)


def test_above_threshold_raises_naming_expectation_and_line(tmp_path):
    bad = convo(USER, asks(call(args="{oops")), result(), ANSWER)
    rows = GOOD[:3] * 2 + [bad] * 3 + [GOOD[0]]
    paths = _paths(tmp_path)
    with pytest.raises(GateError) as err:
        gate(tmp_path, rows, threshold=0.1)
    message = str(err.value)
    assert "tool_arguments_parse (expect_column_values_to_be_between on args_invalid_json)" in message
    assert "failed on 3 of 10 rows (30.0% > 10.0%)" in message
    assert f"{paths['input_path']}:7: call 'read' arguments are not valid JSON" in message
    report = json.loads(paths["report_path"].read_text())  # outputs are written even when the gate fails
    assert report["passed"] is False and report["rejected"] == 3 and report["kept"] == 7
    assert len(read_lines(paths["rejected_path"])) == 3
    assert err.value.result.report == report and "[red]failed[/red]" in summary(err.value.result)


def test_unreadable_rows_count_against_the_threshold(tmp_path):
    with pytest.raises(GateError, match=r"2 of 3 rows rejected \(66.7% > 50.0%\), 2 unreadable; e.g. .*in.jsonl:1: row_parse: invalid JSON"):
        gate(tmp_path, ["not json", "[]", GOOD[0]], threshold=0.5)


def test_all_unreadable_still_reports_every_expectation(tmp_path):
    with pytest.raises(GateError) as err:
        gate(tmp_path, ["not json"], threshold=0.5)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["parse_errors"] == 1 and report["kept"] == 0 and report["failures"]["role_order"] == 0
    assert len(report["failures"]) == 9 and err.value.result.report == report


def test_empty_input_fails(tmp_path):
    with pytest.raises(GateError, match="has no rows"):
        gate(tmp_path, [])


def test_missing_input_names_the_file(tmp_path):
    paths = _paths(tmp_path)
    with pytest.raises(GateError, match=r"in\.jsonl: file not found"):
        run_gate(tools_path=TOOLS, suite_path=SUITE, params=ValidateParams(max_rejected_fraction=0.1), **paths)
    assert not paths["report_path"].exists()


def _suite_with(tmp_path: Path, change) -> Path:
    doc = json.loads(SUITE.read_text())
    change(doc["expectations"])
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(doc))
    return path


def test_misspelled_expectation_type_names_it(tmp_path):
    suite = _suite_with(tmp_path, lambda e: e[2].update(type="expect_column_values_to_be_betwen"))
    with pytest.raises(GateError, match=r"suite\.json: 1 of 9 expectations could not be loaded.*expect_column_values_to_be_betwen"):
        gate(tmp_path, GOOD, suite=suite)


def test_suite_column_must_be_derived(tmp_path):
    suite = _suite_with(tmp_path, lambda e: e[0]["kwargs"].update(column="role_ok"))
    with pytest.raises(GateError, match="got column 'role_ok'"):
        gate(tmp_path, GOOD, suite=suite)


def test_min_chars_come_from_params(tmp_path):
    res, _ = gate(tmp_path, GOOD[:3], threshold=1.0, min_user_chars=200)
    assert res.rejected == 3 and res.failures["user_text_length"] == 3


def test_gx_context_does_not_leak(tmp_path):
    from great_expectations.data_context.data_context.context_factory import project_manager

    before = getattr(project_manager, "_ProjectManager__project")
    gate(tmp_path, GOOD)
    assert getattr(project_manager, "_ProjectManager__project") is before


def test_missing_great_expectations_is_actionable(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "great_expectations.core.expectation_suite", None)
    with pytest.raises(GateError, match="pip install 'great-expectations"):
        gate(tmp_path, GOOD)
