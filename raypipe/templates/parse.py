"""Generated text -> decision, reasoning, calls, content: the inverse of `assistant_body`.

One scanner serves every caller:

- `parse_completion(text, fmt)` (strict, the default): evaluation and tests. A Decision Token
  format requires the Decision Token, ``<|use_tool|>`` requires well-formed calls, an unclosed
  reasoning block is an error; any problem raises `ParseError`.
- `parse_completion(text, fmt, strict=False)`: serving. Never raises on model output: what
  cannot be read as calls stays content (the vLLM plugin and `to_openai_message` use this).
- `scan_completion(text, fmt, final=False)`: a growing generation (streaming). It returns only
  what can no longer change: reasoning and content that later text cannot turn into something
  else, and complete calls. Every such view is a prefix of the final one, so a stream of
  differences between views adds up to exactly the non-streaming result.

Text is cut at the first ``<|im_end|>``; surrounding whitespace and trailing stop tokens are
ignored. Calls may follow content (``content\\n[calls]`` or ``content\\n<|tool_call_begin|>``).
Decode generations with their special tokens kept (``skip_special_tokens=False``); without the
Decision Token the lenient mode reads the text as a format without one.
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
from raypipe.templates.pythonic import parse_pythonic


@dataclass
class ParsedCompletion:
    decision: str | None  # "answer" | "use_tool" | None (format without Decision Token)
    reasoning: str | None = None
    calls: list[ToolCall] = field(default_factory=list)
    content: str | None = None


@dataclass
class CompletionScan:
    parsed: ParsedCompletion
    problems: list[str] = field(default_factory=list)  # why a strict parse fails (final scans)


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


def parse_completion(text: str, fmt: FormatConfig | str, *, strict: bool = True) -> ParsedCompletion:
    scan = scan_completion(text, fmt, final=True)
    if strict and scan.problems:
        raise ParseError(scan.problems[0])
    return scan.parsed


def scan_completion(text: str, fmt: FormatConfig | str, *, final: bool = True) -> CompletionScan:
    fmt = get_format(fmt)
    if not isinstance(text, str):
        raise ParseError(f"expected generated text, got {type(text).__name__}")
    if IM_END in text:  # nothing after the end of the turn counts, so the rest is final
        text, final = text.split(IM_END, 1)[0], True
    rest = strip_stop_tokens(text) if final else _stable(text).lstrip()
    problems: list[str] = []

    decision = None
    if fmt.decision_token:
        if rest.startswith(USE_TOOL):
            decision, rest = "use_tool", rest[len(USE_TOOL):]
        elif rest.startswith(ANSWER):
            decision, rest = "answer", rest[len(ANSWER):]
        elif not final and (USE_TOOL.startswith(rest) or ANSWER.startswith(rest)):
            return CompletionScan(ParsedCompletion(None))  # the Decision Token may still come
        else:
            problems.append(f"expected {ANSWER} or {USE_TOOL} first, got {rest[:40]!r} "
                            "(decode with skip_special_tokens=False)")

    reasoning = None
    if fmt.reasoning:
        head = rest.lstrip()
        if head.startswith(THINK_START):
            inner = head[len(THINK_START):]
            if THINK_END in inner:
                reasoning, rest = inner.split(THINK_END, 1)
            elif final:
                problems.append(f"reasoning block opened with {THINK_START} but never closed")
                reasoning, rest = inner, ""
            else:
                return CompletionScan(ParsedCompletion(decision, _hold(inner, (THINK_END,))))
        elif not final and THINK_START.startswith(head):
            return CompletionScan(ParsedCompletion(decision))
    body = rest.strip() if final else rest.lstrip()

    if decision == "answer":
        return CompletionScan(ParsedCompletion("answer", reasoning, [], body), problems)
    if fmt.call_style == "json":
        content, calls, found = _json_calls(body, final, problems)
    else:
        content, calls, found = _pythonic_calls(body, final, problems)
    if decision == "use_tool" and not calls and final and not problems:
        problems.append(f"{USE_TOOL} without well-formed function calls: {body[:80]!r}")
    if not found and final:
        content = body
    return CompletionScan(ParsedCompletion(decision, reasoning, calls, content), problems)


# -- holding back what later text could still change ----------------------------------------


def _stable(text: str) -> str:
    """`text` without a tail that may still turn out to be a stop token or trailing whitespace."""
    while True:
        before = text
        text = _hold(text.rstrip(), STOP_TOKENS)
        for token in STOP_TOKENS:
            if text.endswith(token):
                text = text[: -len(token)]
        if text == before:
            return text


def _hold(text: str, tokens: tuple[str, ...]) -> str:
    """`text` without a suffix that is the beginning of one of `tokens`."""
    for cut in range(min(len(text), max(len(t) for t in tokens) - 1), 0, -1):
        if any(t.startswith(text[-cut:]) for t in tokens):
            return text[:-cut]
    return text


def _join(*parts: str | None) -> str | None:
    kept = [p for p in parts if p]
    return "\n".join(kept) if kept else None


# -- JSON call blocks: <|tool_call_begin|>{"name": ..., "arguments": {...}}<|tool_call_end|> --


def _json_calls(body: str, final: bool, problems: list[str]):
    """(content, calls, found): found is False when `body` holds no calls at all."""
    first = body.find(TOOL_CALL_BEGIN)
    if first == -1:
        return (None if final else _hold(body, (TOOL_CALL_BEGIN,)).rstrip()), [], False
    content = body[:first].rstrip("\n") or None
    calls: list[ToolCall] = []
    pos = first
    while pos < len(body):
        rest = body[pos:]
        if not rest.startswith(TOOL_CALL_BEGIN):
            if not final and TOOL_CALL_BEGIN.startswith(rest):
                break
            problems.append(f"unexpected text between tool calls: {rest[:60]!r}")
            return _join(content, rest if final else _hold(rest, (TOOL_CALL_BEGIN,))), calls, True
        end = rest.find(TOOL_CALL_END)
        if end == -1:
            if final:
                problems.append(f"{TOOL_CALL_BEGIN} without {TOOL_CALL_END}")
                return _join(content, rest), calls, True
            break
        try:
            calls.append(_json_call(rest[len(TOOL_CALL_BEGIN):end]))
        except ParseError as err:
            problems.append(str(err))
            tail = body[pos:] if final else _hold(body[pos:], STOP_TOKENS)
            return _join(content, tail), calls, True
        pos += end + len(TOOL_CALL_END)
        while pos < len(body) and body[pos].isspace():
            pos += 1
    return content, calls, True


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


# -- pythonic call lists: [f(a=1), mod.g(b="x")] at the start or after a line of content --------


def _pythonic_calls(body: str, final: bool, problems: list[str]):
    """(content, calls, found). Only a list that starts like a call (``[name(``) counts, at the
    start of the body or of a line, optionally in a code fence: a bare ``f(x)`` or ``[1, 2]`` in
    an answer is prose. The first such list decides: it parses, or the whole body is content."""
    starts = [0] + [i + 1 for i, ch in enumerate(body) if ch == "\n" and body[i + 1 : i + 2] in ("[", "`")]
    for start in starts:
        tail = body[start:]
        kind, bracket = _call_list_start(tail)
        if kind == "no" or (kind == "maybe" and final):
            continue
        before = body[:start].rstrip("\n") or None
        if kind == "maybe":
            return before, [], True
        end = _list_end(tail, bracket)
        if end is None and not final:
            return before, [], True
        fenced = bracket > 0
        try:
            if end is None or end < 0:
                raise ParseError("unbalanced brackets" if end is not None else "the list is never closed")
            calls = [ToolCall(n, a) for n, a in parse_pythonic(tail[bracket : end + 1])]
        except ParseError as err:
            problems.append(f"malformed function calls: {err}")
            return body, [], True
        after = tail[end + 1 :]
        if fenced:
            after = after.lstrip()
            after = after[3:] if after.startswith("```") else after
        after = after.strip() if final else _hold(after.lstrip(), ("```",))
        if after and final:
            problems.append(f"text after the function calls: {after[:60]!r}")
        return _join(before, after), calls, True
    # no list: all of it is content (a line that may still become one returned above)
    return (None if final else body.rstrip()), [], False


def _call_list_start(tail: str) -> tuple[str, int]:
    """Whether `tail` starts a call list: ("yes" | "no" | "maybe" (too short to tell), offset of
    its "[")."""
    offset = 0
    if tail.startswith("`") or tail == "":
        if not tail.startswith("```"):
            return ("maybe" if "```".startswith(tail) else "no"), 0
        newline = tail.find("\n")
        if newline == -1:
            return "maybe", 0
        offset = newline + 1
        while offset < len(tail) and tail[offset] in " \t\r\n":
            offset += 1
    text = tail[offset:]
    if not text:
        return "maybe", offset
    if text[0] != "[":
        return "no", offset
    i = 1
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    if i == len(text):
        return "maybe", offset
    if not text[i].isidentifier():
        return "no", offset
    while i < len(text) and (("a" + text[i]).isidentifier() or text[i] == "."):
        i += 1
    while i < len(text) and text[i] in " \t":
        i += 1
    if i == len(text):
        return "maybe", offset
    return ("yes" if text[i] == "(" else "no"), offset


def _list_end(text: str, start: int) -> int | None:
    """Index of the "]" closing the list at `start`; None if not closed yet, -1 if unbalanced."""
    stack: list[str] = []
    closing = {")": "(", "]": "[", "}": "{"}
    quote = None
    i = start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if text.startswith(quote, i):
                i += len(quote)
                quote = None
                continue
            i += 1
            continue
        if ch in "\"'":
            quote = ch * 3 if text.startswith(ch * 3, i) else ch
            i += len(quote)
            continue
        if ch in "([{":
            stack.append(ch)
        elif ch in closing:
            if not stack or stack.pop() != closing[ch]:
                return -1
            if not stack:
                return i
        i += 1
    return None
