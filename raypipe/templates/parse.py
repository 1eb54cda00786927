"""Generated text -> decision, reasoning, calls, content: the inverse of `assistant_body`.

Tolerant of surrounding whitespace and stop tokens (the text is cut at the first
``<|im_end|>``), strict about everything else: a Decision Token format requires the
Decision Token, ``<|use_tool|>`` requires well-formed calls, an unclosed reasoning block is
an error. Generated text must be decoded with its special tokens kept
(``skip_special_tokens=False``), or the Decision Token is gone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from raypipe.schema import ToolCall
from raypipe.templates.errors import ParseError
from raypipe.templates.formats import (
    ANSWER,
    IM_END,
    STOP_TOKENS,
    THINK_END,
    THINK_START,
    TOOL_CALL_BEGIN,
    TOOL_CALL_END,
    USE_TOOL,
    FormatConfig,
    get_format,
)
from raypipe.templates.pythonic import parse_pythonic, strip_code_fence


@dataclass
class ParsedCompletion:
    decision: str | None  # "answer" | "use_tool" | None (format without Decision Token)
    reasoning: str | None = None
    calls: list[ToolCall] = field(default_factory=list)
    content: str | None = None


def strip_stop_tokens(text: str) -> str:
    text = text.split(IM_END, 1)[0].strip()
    changed = True
    while changed:
        changed = False
        for token in STOP_TOKENS:
            if text.endswith(token):
                text = text[: -len(token)].rstrip()
                changed = True
    return text


def parse_completion(text: str, fmt: FormatConfig | str) -> ParsedCompletion:
    fmt = get_format(fmt)
    if not isinstance(text, str):
        raise ParseError(f"expected generated text, got {type(text).__name__}")
    rest = strip_stop_tokens(text)
    decision = None
    if fmt.decision_token:
        if rest.startswith(USE_TOOL):
            decision, rest = "use_tool", rest[len(USE_TOOL) :]
        elif rest.startswith(ANSWER):
            decision, rest = "answer", rest[len(ANSWER) :]
        else:
            raise ParseError(
                f"expected {ANSWER} or {USE_TOOL} first, got {rest[:40]!r} "
                "(decode with skip_special_tokens=False)"
            )
    reasoning = None
    if fmt.reasoning and rest.lstrip().startswith(THINK_START):
        rest = rest.lstrip()[len(THINK_START) :]
        if THINK_END not in rest:
            raise ParseError(f"reasoning block opened with {THINK_START} but never closed")
        reasoning, rest = rest.split(THINK_END, 1)
    rest = rest.strip()

    if decision == "answer":
        return ParsedCompletion("answer", reasoning, [], rest)
    found = _find_calls(rest, fmt)
    if found is None:
        if decision == "use_tool":
            raise ParseError(f"{USE_TOOL} without well-formed function calls: {rest[:80]!r}")
        return ParsedCompletion(None, reasoning, [], rest)
    content, calls = found
    if not calls and decision == "use_tool":
        raise ParseError(f"{USE_TOOL} followed by an empty list of calls")
    return ParsedCompletion(decision, reasoning, calls, content)


def _looks_like_calls(text: str, fmt: FormatConfig) -> bool:
    if fmt.call_style == "json":
        return TOOL_CALL_BEGIN in text or TOOL_CALL_END in text
    # a fenced block counts only when it holds a list: an answer may well contain code
    return strip_code_fence(text).startswith("[")


def _find_calls(text: str, fmt: FormatConfig) -> tuple[str | None, list[ToolCall]] | None:
    """(content before the calls or None, calls), or None when `text` holds no calls."""
    if fmt.call_style == "json":
        return _find_json_calls(text)
    # The calls are the whole text, or the lines after some content (`content\n[calls]`).
    # Only a list (optionally fenced) counts: a bare `f(x)` in an answer is prose here.
    starts = [i + 1 for i, ch in enumerate(text) if ch == "\n" and text[i + 1 : i + 2] == "["]
    if _looks_like_calls(text, fmt):
        starts.insert(0, 0)
    first_error = None
    for start in starts:
        try:
            pairs = parse_pythonic(text[start:])
        except ParseError as err:
            first_error = first_error or err
            continue
        content = text[:start].rstrip("\n") or None
        return content, [ToolCall(name, args) for name, args in pairs]
    if starts and starts[0] == 0:
        raise ParseError(f"malformed function calls: {first_error}")
    return None


def _find_json_calls(text: str) -> tuple[str | None, list[ToolCall]] | None:
    first = text.find(TOOL_CALL_BEGIN)
    if first == -1:
        return None
    content = text[:first].rstrip("\n") or None
    calls = []
    rest = text[first:]
    while rest:
        if not rest.startswith(TOOL_CALL_BEGIN):
            raise ParseError(f"unexpected text between tool calls: {rest[:60]!r}")
        end = rest.find(TOOL_CALL_END)
        if end == -1:
            raise ParseError(f"{TOOL_CALL_BEGIN} without {TOOL_CALL_END}")
        calls.append(_json_call(rest[len(TOOL_CALL_BEGIN) : end]))
        rest = rest[end + len(TOOL_CALL_END) :].lstrip()
    return content, calls


def _json_call(block: str) -> ToolCall:
    try:
        obj = json.loads(block)
    except json.JSONDecodeError as err:
        raise ParseError(f"tool call is not JSON: {err}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        raise ParseError(f'tool call must be {{"name": ..., "arguments": {{...}}}}, got {block[:80]!r}')
    arguments = obj.get("arguments", {})
    if isinstance(arguments, str):  # OpenAI style: arguments as a JSON string
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as err:
            raise ParseError(f"arguments of {obj['name']} are not JSON: {err}") from None
    if not isinstance(arguments, dict):
        raise ParseError(f"arguments of {obj['name']} must be an object")
    return ToolCall(obj["name"], arguments)
