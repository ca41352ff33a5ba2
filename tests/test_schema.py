"""Canonical rows and the seed-003 reader."""

import json

import pytest

from synthforge.schema import FormatError, for_template, from_seed003, parse_arguments, to_canonical

SEED003 = {
    "conversations": [
        {"role": "user", "content": "Create a folder for the Q3 planning notes"},
        {"role": "assistant", "content": 'tool_call: vaultManager_createFolder\narguments: {"context": {"sessionId": "s1", '
                                         '"sessionMemory": "User is organising Q3 notes", "toolContext": "Needs a home for notes", '
                                         '"primaryGoal": "Organise Q3", "subgoal": "Create folder"}, "path": "Projects/Q3"}'},
    ],
    "label": False,
    "quality_scores": {"sessionMemory_quality": 2},
}


def test_seed003_role_content_becomes_a_tool_call():
    row = from_seed003(SEED003, row_id="legacy-1")
    user, assistant = row["messages"]
    assert user == {"role": "user", "content": "Create a folder for the Q3 planning notes"}
    call = assistant["tool_calls"][0]
    assert call["id"] == "call_1" and call["function"]["name"] == "vaultManager_createFolder"
    args = json.loads(call["function"]["arguments"])
    assert args["path"] == "Projects/Q3" and args["context"]["sessionId"] == "s1"
    assert row["meta"] == {"label": False, "quality_scores": {"sessionMemory_quality": 2},
                           "source_format": "seed003", "id": "legacy-1"}


def test_seed003_from_value_and_several_calls():
    row = to_canonical({"conversations": [
        {"from": "system", "value": "You manage a vault."},
        {"from": "human", "value": "Move and then tag it"},
        {"from": "gpt", "value": 'Doing both.\ntool_call: a_move\narguments: {"x": 1}\ntool_call: a_tag\narguments: {"y": [2]}'},
    ], "label": True})
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assistant = row["messages"][2]
    assert assistant["content"] == "Doing both."
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in assistant["tool_calls"]] == [
        ("a_move", {"x": 1}), ("a_tag", {"y": [2]})]


@pytest.mark.parametrize("row, message", [
    ({"conversations": []}, "non-empty list"),
    ({"conversations": [{"from": "robot", "value": "hi"}]}, "unknown role 'robot'"),
    ({"conversations": [{"role": "user", "content": 3}]}, "content is int"),
    ({"foo": 1}, "neither 'messages' nor 'conversations'"),
])
def test_bad_rows_raise_format_error(row, message):
    with pytest.raises(FormatError, match=message):
        to_canonical(row)


def test_template_messages_get_object_arguments():
    messages = [{"role": "assistant", "content": "", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "read", "arguments": '{"file_path": "a.rs"}'}}]}]
    out = for_template(messages)
    assert out[0]["tool_calls"][0]["function"]["arguments"] == {"file_path": "a.rs"}
    assert isinstance(messages[0]["tool_calls"][0]["function"]["arguments"], str)  # input untouched


@pytest.mark.parametrize("value, message", [("{bad", "not valid JSON"), ("[1]", "decode to list"), (3, "are int")])
def test_parse_arguments_errors(value, message):
    with pytest.raises(FormatError, match=message):
        parse_arguments(value)
