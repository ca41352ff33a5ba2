"""Tool-name metrics of stage evaluate: balanced accuracy and the always-the-majority baseline."""

import pytest

from synthforge.evaluate import balanced_accuracy, expected_tool, majority_baseline

# 23 of 40 held-out prompts expecting `bash`: what the default data gave at one point
TOOLS = ["bash"] * 23 + ["edit"] * 4 + ["read"] * 4 + ["write"] * 3 + ["grep"] * 2 + ["glob"] * 4


def test_always_the_majority_scores_its_share_plainly_and_one_over_tools_balanced():
    always_bash = [tool == "bash" for tool in TOOLS]
    assert sum(always_bash) / len(TOOLS) == pytest.approx(0.575)
    assert balanced_accuracy(TOOLS, always_bash) == pytest.approx(1 / 6)
    assert majority_baseline(TOOLS) == {"tool": "bash", "tool_name_accuracy": pytest.approx(0.575)}


def test_balanced_accuracy_weights_every_tool_equally():
    correct = [tool != "bash" for tool in TOOLS]  # right on every tool but the common one
    assert balanced_accuracy(TOOLS, correct) == pytest.approx(5 / 6)
    assert balanced_accuracy([], []) == 0.0 and majority_baseline([])["tool_name_accuracy"] == 0.0


def test_expected_tool_is_the_first_call_of_the_turn():
    turn = {"role": "assistant", "tool_calls": [{"function": {"name": "grep", "arguments": "{}"}},
                                                {"function": {"name": "read", "arguments": "{}"}}]}
    assert expected_tool(turn) == "grep"
