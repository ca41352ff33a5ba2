"""Chat rendering and loss masks: every assistant turn is trained.

An example is rendered once with the model's own chat template. The
character span of each assistant turn is found by rendering the conversation
up to that turn (with the generation prompt) and up to its end; tokens whose
characters fall inside a span are trained, everything else (system, user,
tool results, the ``<|im_start|>assistant`` header) is masked. The
end-of-turn token belongs to the span, so the model learns to stop.

mlx-lm's ``mask_prompt`` trains only the last message; this trains tool-call
turns in the middle of a conversation as well.

    >>> ids, mask = encode(tokenizer, row)          # list[int], list[bool]
"""

from __future__ import annotations

from dataclasses import dataclass

from .schema import FormatError, for_template


@dataclass(frozen=True)
class Encoded:
    """One example as token ids with a per-token training mask."""

    ids: list[int]
    mask: list[bool]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def trained(self) -> int:
        return sum(self.mask)


def render(tokenizer, messages: list[dict], tools: list[dict] | None, *, generation_prompt: bool = False) -> str:
    """Render messages with the tokenizer's chat template (arguments as objects)."""
    return tokenizer.apply_chat_template(
        for_template(messages), tools=tools or None, tokenize=False,
        add_generation_prompt=generation_prompt,
    )


def assistant_spans(tokenizer, row: dict) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character span of every assistant turn."""
    messages, tools = row["messages"], row.get("tools")
    text = render(tokenizer, messages, tools)
    spans = []
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        start_text = render(tokenizer, messages[:i], tools, generation_prompt=True)
        end_text = render(tokenizer, messages[: i + 1], tools)
        if not (text.startswith(start_text) and text.startswith(end_text)):
            raise FormatError(
                "the chat template does not render conversations prefix-stably"
                f" (turn {i}): per-turn loss masks cannot be computed for this model"
            )
        spans.append((len(start_text), len(end_text)))
    return text, spans


def encode(tokenizer, row: dict) -> Encoded:
    """Token ids of a rendered example and the mask of assistant tokens."""
    text, spans = assistant_spans(tokenizer, row)
    fast = getattr(tokenizer, "_tokenizer", tokenizer)
    enc = fast(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    mask = [_inside(start, end, spans) for start, end in offsets]
    return Encoded(list(ids), mask)


def _inside(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    for lo, hi in spans:
        if lo <= start < hi or (start == end and lo < start <= hi):
            return True
    return False


def prompt_for_first_call(row: dict) -> tuple[list[dict], dict] | None:
    """Messages before the first assistant turn that calls a tool, and that turn."""
    for i, message in enumerate(row["messages"]):
        if message.get("role") == "assistant" and message.get("tool_calls"):
            return row["messages"][:i], message
    return None
