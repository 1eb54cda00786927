"""Canonical sample -> ChatML text, as a list of spans that say which text the model trains on.

Layout of a conversation (every turn ends with ``<|im_end|>\\n``)::

    <|im_start|>system\\n{system}[\\n\\n{instructions}\\n{functions JSON}]<|im_end|>\\n   (system formats)
    <|im_start|>tools\\n{functions JSON}<|im_end|>\\n                  (tools_role formats)
    <|im_start|>user\\n{content}<|im_end|>\\n
    <|im_start|>assistant\\n[<|use_tool|>][<think>{reasoning}</think>][{content}\\n]{calls}<|im_end|>\\n
    <|im_start|>tool\\n{result}<|im_end|>\\n
    <|im_start|>assistant\\n[<|answer|>]{content}<|im_end|>\\n

Trained spans are exactly the assistant bodies plus their closing ``<|im_end|>``; the
header ``<|im_start|>assistant\\n`` and the newline after ``<|im_end|>`` are prompt.

Determinism: function specs and call arguments are written with sorted keys, so a sample
renders the same whether it was read from JSONL (original key order) or Parquet (sorted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from raypipe.schema import Message, Sample, ToolCall
from raypipe.templates.formats import (
    ANSWER,
    IM_END,
    IM_START,
    THINK_END,
    THINK_START,
    TOOL_CALL_BEGIN,
    TOOL_CALL_END,
    USE_TOOL,
    FormatConfig,
    get_format,
    system_instructions,
)
from raypipe.templates.pythonic import format_calls


@dataclass(frozen=True)
class Span:
    text: str
    trained: bool = False
    turn: int | None = None  # index (among assistant turns) of a trained span


def to_json(value: Any) -> str:
    """JSON as the Jinja twin's ``tojson(sort_keys=true)`` writes it."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def unwrap_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A plain function spec from either a plain one or OpenAI's {"type": "function", ...}."""
    if spec.get("type") == "function" and isinstance(spec.get("function"), dict):
        return spec["function"]
    return spec


def without_nulls(value: Any) -> Any:
    """`value` without the null values of its objects (at any depth). A JSON schema has no null
    keywords; nulls in specs come from Arrow merging the schemas of rows (`datasets` loading a
    `tools` column), so they are not rendered."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def functions_json(functions: Sequence[dict[str, Any]]) -> str:
    return to_json([without_nulls(unwrap_spec(f)) for f in functions])


def format_tool_calls(calls: Sequence[ToolCall], fmt: FormatConfig) -> str:
    if fmt.call_style == "json":
        return "".join(
            f'{TOOL_CALL_BEGIN}{{"name": {to_json(c.name)}, "arguments": {to_json(c.arguments)}}}'
            f"{TOOL_CALL_END}"
            for c in calls
        )
    # canonical key order (nested dicts too) through a JSON round trip
    return format_calls([(c.name, json.loads(to_json(c.arguments))) for c in calls])


def assistant_body(message: Message, fmt: FormatConfig) -> str:
    """What the model generates for one assistant turn (without the closing <|im_end|>)."""
    parts = []
    if fmt.decision_token:
        parts.append(USE_TOOL if message.tool_calls else ANSWER)
    if fmt.reasoning and message.reasoning:
        parts.append(f"{THINK_START}{message.reasoning}{THINK_END}")
    if message.tool_calls:
        if message.content:
            parts.append(message.content + "\n")
        parts.append(format_tool_calls(message.tool_calls, fmt))
    else:
        parts.append(message.content or "")
    return "".join(parts)


def _turn(role: str, content: str) -> Span:
    return Span(f"{IM_START}{role}\n{content}{IM_END}\n")


def render_spans(
    messages: Sequence[Message], functions: Sequence[dict[str, Any]], fmt: FormatConfig
) -> list[Span]:
    """The conversation as spans, one (or three, for assistant turns) per message."""
    spans: list[Span] = []
    rest = list(messages)
    show_functions = bool(functions) and fmt.functions_in != "none"
    if fmt.functions_in == "system" and show_functions:
        block = system_instructions(fmt) + "\n" + functions_json(functions)
        if rest and rest[0].role == "system":
            block = (rest.pop(0).content or "") + "\n\n" + block
        spans.append(_turn("system", block))
    elif rest and rest[0].role == "system":
        spans.append(_turn("system", rest.pop(0).content or ""))
    if fmt.functions_in == "tools_role" and show_functions:
        spans.append(_turn("tools", functions_json(functions)))
    turn = 0
    for message in rest:
        if message.role != "assistant":
            spans.append(_turn(message.role, message.content or ""))
            continue
        spans.append(Span(f"{IM_START}assistant\n"))
        spans.append(Span(assistant_body(message, fmt) + IM_END, trained=True, turn=turn))
        spans.append(Span("\n"))
        turn += 1
    return spans


def render(sample: Sample, fmt: FormatConfig | str) -> str:
    """The full conversation text of `sample` in format `fmt`."""
    fmt = get_format(fmt)
    return "".join(s.text for s in render_spans(sample.messages, sample.functions, fmt))


def generation_header() -> str:
    return f"{IM_START}assistant\n"


def render_prompt(
    messages: Sequence[Message], functions: Sequence[dict[str, Any]], fmt: FormatConfig | str
) -> str:
    """The prompt for the next assistant turn: the conversation, then the assistant header."""
    fmt = get_format(fmt)
    messages = [m if isinstance(m, Message) else Message.from_dict(m) for m in messages]
    text = "".join(s.text for s in render_spans(messages, functions, fmt))
    return text + generation_header()


def prompt_and_target(sample: Sample, fmt: FormatConfig | str) -> tuple[str, str]:
    """Split at the last assistant turn: (prompt ending in the header, expected body).

    What inference feeds the model and what a perfect completion would be.
    """
    fmt = get_format(fmt)
    last = max((i for i, m in enumerate(sample.messages) if m.role == "assistant"), default=None)
    if last is None:
        return render_prompt(sample.messages, sample.functions, fmt), ""
    prompt = render_prompt(sample.messages[:last], sample.functions, fmt)
    return prompt, assistant_body(sample.messages[last], fmt) + IM_END
