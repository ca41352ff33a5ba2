"""Scoring generated tool calls against the expected one."""

from synthforge.toolcalls import score_reply

TOOLS = [{"type": "function", "function": {"name": "read", "parameters": {
    "type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}}}]
EXPECTED = {"tool_calls": [{"id": "c1", "type": "function",
                            "function": {"name": "read", "arguments": '{"file_path": "a.rs"}'}}]}


def test_full_call_scores_every_measure():
    reply = '<tool_call>\n{"name": "read", "arguments": {"file_path": "a.rs"}}\n</tool_call>'
    assert tuple(score_reply(reply, EXPECTED, TOOLS).__dict__.values()) == (True, True, True, True)


def test_cut_off_call_still_scores_the_name_but_not_the_parse():
    cut = '<tool_call>\n{"name": "read", "arguments": {"file_path": "src/a/a/a/a'
    assert tuple(score_reply(cut, EXPECTED, TOOLS).__dict__.values()) == (False, True, False, False)
    wrong = '<tool_call>\n{"name": "bash", "arguments": {"command": "ls'
    assert tuple(score_reply(wrong, EXPECTED, TOOLS).__dict__.values()) == (False, False, False, False)
    assert tuple(score_reply("no call at all", EXPECTED, TOOLS).__dict__.values()) == (False, False, False, False)
