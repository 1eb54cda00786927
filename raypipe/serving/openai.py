"""OpenAI wire forms of parsed completions, and which format a served tokenizer speaks."""

from __future__ import annotations

import json
import uuid
from typing import Any, Mapping

from raypipe.templates.formats import (
    ANSWER,
    THINK_START,
    TOOL_CALL_BEGIN,
    USE_TOOL,
    FormatConfig,
)
from raypipe.templates.parse import ParsedCompletion


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def to_openai_message(parsed: ParsedCompletion) -> dict[str, Any]:
    """An OpenAI chat-completions assistant message: ``content`` (None when the turn only
    calls tools), ``tool_calls`` with ids (a call's own id, else a fresh ``call_...``), type
    ``function`` and ``arguments`` as a JSON string; ``reasoning_content`` when there was a
    reasoning block (the field vLLM and transformers use)."""
    message: dict[str, Any] = {"role": "assistant", "content": parsed.content if parsed.content else None}
    if not parsed.calls and message["content"] is None:
        message["content"] = ""
    if parsed.calls:
        message["tool_calls"] = [
            {
                "id": call.id or new_call_id(),
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)},
            }
            for call in parsed.calls
        ]
    if parsed.reasoning:
        message["reasoning_content"] = parsed.reasoning
    return message


def format_from_vocab(vocab: Mapping[str, int]) -> FormatConfig:
    """The parsing side of the format a tokenizer was exported with, read from the special
    tokens raypipe added to it: Decision Token, reasoning block, JSON call blocks. (Where the
    function specs go does not matter for parsing.)"""
    return FormatConfig(
        functions_in="tools_role",
        decision_token=USE_TOOL in vocab and ANSWER in vocab,
        reasoning=THINK_START in vocab,
        call_style="json" if TOOL_CALL_BEGIN in vocab else "pythonic",
    )
