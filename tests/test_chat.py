"""Loss masks cover every assistant turn (tool-call turns too) and nothing else."""

from synthforge import model
from synthforge.chat import encode, render


def test_mask_covers_every_assistant_turn(tiny_model_dir, generated_rows):
    _, tokenizer = model.load(tiny_model_dir)
    row = next(r for r in generated_rows if sum(m["role"] == "assistant" for m in r["messages"]) >= 2
               and any(m.get("tool_calls") for m in r["messages"]))
    enc = encode(tokenizer, row)
    assert len(enc.ids) == len(enc.mask)
    trained = tokenizer.decode([i for i, m in zip(enc.ids, enc.mask) if m])
    masked = tokenizer.decode([i for i, m in zip(enc.ids, enc.mask) if not m])
    for message in row["messages"]:
        if message["role"] == "assistant":
            for call in message.get("tool_calls", []):
                assert f'"name": "{call["function"]["name"]}"' in trained
            if message["content"]:
                assert message["content"] in trained
        elif message["role"] in ("user", "tool"):
            assert message["content"] not in trained
            assert message["content"] in masked
    eos = tokenizer.eos_token
    assert trained.count(eos) == sum(m["role"] == "assistant" for m in row["messages"])
    assert "<|im_start|>assistant" not in trained


def test_template_renders_tools_and_object_arguments(tiny_model_dir, generated_rows):
    _, tokenizer = model.load(tiny_model_dir)
    row = next(r for r in generated_rows if any(m.get("tool_calls") for m in r["messages"]))
    text = render(tokenizer, row["messages"], row["tools"])
    assert "<tools>" in text and '"name": "' + row["tools"][0]["function"]["name"] in text
    call = next(c for m in row["messages"] for c in m.get("tool_calls", []))
    assert f'"arguments": {call["function"]["arguments"]}' in text.replace("\\\"", '"') or '"arguments": {' in text
    assert '"arguments": "{' not in text  # not double-encoded
    assert "<tool_response>" in text
