"""Turn a model's raw output into calls ``[{name: {arg: value}}]``; never execute it.

Decoders (the BFCL result-file conventions they read):

- ``decision-token``: ``<|answer|>text`` (a direct answer: no calls) or ``<|use_tool|>`` followed
  by ``<|tool_call_begin|> {"name": ..., "arguments": "<JSON string or object>"}<|tool_call_end|>``
  blocks (Breeze-FC), or by a pythonic list ``[f(a=1)]`` (the seed paper's Figure 1).
- ``pythonic``: ``[f(a=1), mod.g(b="x")]``, decoded as the reference decoder of the rules in
  force does (`raypipe.eval.bfcl_ast`: ``upstream`` is today's bfcl_eval prompt mode, ``v1`` the
  zh-TW leaderboard's), quirks included and without executing anything. Under ``v1`` raypipe
  first removes think blocks, surrounding whitespace and a code fence (raypipe's own outputs);
  under ``upstream`` only think blocks, and the reference's own stripping does the rest.
- ``openai``: a list of ``{name: "<arguments JSON>"}`` (BFCL's FC-mode files) or of OpenAI
  ``tool_calls`` objects; a plain string is the model answering in text (no calls).
- ``json``: ``<|tool_call_begin|>`` blocks without a decision token (raypipe's JSON call style
  without Decision Token); text without a block is a direct answer.

Text between the decision token (or the start, for ``json``) and the first call is the
message content and is skipped, as raypipe renders content before calls; for pythonic calls
after ``<|use_tool|>`` the list follows the content after a newline.

``<think>...</think>`` blocks are removed first (also a leading block whose ``<think>`` was in
the prompt). A decoder that cannot read the output raises `DecodeError`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from raypipe.eval.values import json_safe  # noqa: F401  (re-exported: scoring and reports use it)

DECODERS = ("decision-token", "pythonic", "openai", "json")

ANSWER = "<|answer|>"
USE_TOOL = "<|use_tool|>"
CALL_BEGIN = "<|tool_call_begin|>"
CALL_END = "<|tool_call_end|>"
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)
_CALL_BLOCK = re.compile(re.escape(CALL_BEGIN) + r"(.*?)" + re.escape(CALL_END), re.DOTALL)
# Text that tries to be pythonic calls: a list, a code fence, or `name(` at the start.
_CALL_ATTEMPT = re.compile(r"^\s*(\[|```|[A-Za-z_][\w.]*\s*\()")
_SPECIAL_TOKEN = re.compile(r"<\|[a-z_]+\|>")


class DecodeError(ValueError):
    """The raw output is not in the decoder's format."""


def strip_think(text: str) -> str:
    """`text` without ``<think>...</think>`` blocks (and anything before a lone ``</think>``)."""
    text = _THINK_BLOCK.sub("", text)
    if "</think>" in text:  # the opening tag was part of the prompt
        text = text.rsplit("</think>", 1)[1]
    return text.strip()


def decode(raw: Any, decoder: str, rules: str = "v1") -> list:
    """Calls ``[{name: {arg: value}}]`` from one raw result; raises DecodeError.

    Under the ``v1`` rules a pythonic call without keyword arguments decodes to its source text
    (a string in the list), as the zh-TW reference decodes it; the scorer then treats the
    output as "not calls"."""
    try:
        return _decode(raw, decoder, rules)
    except RecursionError:  # absurdly nested JSON or lists in the output
        raise DecodeError("output nested too deeply") from None


def _decode(raw: Any, decoder: str, rules: str) -> list:
    if decoder == "decision-token":
        return _decode_decision_token(raw, rules)
    if decoder == "pythonic":
        if rules == "upstream":
            return _decode_pythonic(remove_think(raw) if isinstance(raw, str) else raw, rules)
        return _decode_pythonic(_strip_fence(_text(raw)), rules)
    if decoder == "openai":
        return _decode_openai(raw)
    if decoder == "json":
        return _decode_json(raw)
    raise ValueError(f"unknown decoder {decoder!r}: expected one of {', '.join(DECODERS)}")


def is_direct_answer(raw: Any, decoder: str) -> bool:
    """True when the output is a well-formed answer in words (no call, not garbage).

    Used by the strict relevance variant: decision-token needs ``<|answer|>`` and some text
    (and no call tokens); openai needs non-empty text content; json needs non-empty text
    without special tokens; pythonic needs non-empty text
    that does not start like a call list (``[``, a code fence, ``name(``) and holds no
    ``<|special|>`` token of another format.
    """
    if decoder == "openai":
        return isinstance(raw, str) and bool(strip_think(raw))
    if not isinstance(raw, str):
        return False
    text = strip_think(raw)
    if decoder == "decision-token":
        if not text.startswith(ANSWER):
            return False
        rest = text[len(ANSWER):]
        return bool(rest.strip()) and USE_TOOL not in rest and CALL_BEGIN not in rest
    if decoder == "pythonic":
        return bool(text) and not _CALL_ATTEMPT.match(text) and not _SPECIAL_TOKEN.search(text)
    if decoder == "json":
        return bool(text) and not _SPECIAL_TOKEN.search(text)
    raise ValueError(f"unknown decoder {decoder!r}: expected one of {', '.join(DECODERS)}")


def _text(raw: Any) -> str:
    if not isinstance(raw, str):
        raise DecodeError(f"expected the model output as text, got {type(raw).__name__}")
    return strip_think(raw)


def remove_think(text: str) -> str:
    """`strip_think` where the text has a think tag; other text is left exactly as it is."""
    return strip_think(text) if "<think>" in text or "</think>" in text else text


def _strip_fence(text: str) -> str:
    """The inside of a ```` ```python ... ``` ```` (or bare) code fence; other text unchanged."""
    if text.startswith("```"):
        newline = text.find("\n")
        text = text[newline + 1:] if newline != -1 else text[3:]
        text = text.rstrip()
        if text.endswith("```"):
            text = text[:-3]
    return text.strip()


def _decode_pythonic(text: Any, rules: str) -> list:
    from raypipe.eval.bfcl_ast import ReferenceDecodeError, decode_upstream, decode_v1

    try:
        return decode_upstream(text) if rules == "upstream" else decode_v1(text)
    except ReferenceDecodeError as err:
        raise DecodeError(str(err)) from None


def _decode_decision_token(raw: Any, rules: str) -> list:
    text = _text(raw)
    if text.startswith(ANSWER):
        if USE_TOOL in text or CALL_BEGIN in text:
            raise DecodeError("both <|answer|> and a tool call in one output")
        return []
    if text.startswith(USE_TOOL):
        body = text[len(USE_TOOL):].strip()
    elif text.startswith(CALL_BEGIN):
        body = text  # the decision token was part of the prompt
    else:
        raise DecodeError(f"output starts with neither {ANSWER} nor {USE_TOOL}")
    if CALL_BEGIN in body:
        # Text before the first call is the message content (raypipe renders content, then calls).
        return _json_blocks(body[body.index(CALL_BEGIN):])
    try:
        return _decode_pythonic(body, rules)  # Figure 1 style: <|use_tool|>[f(a=1)]
    except DecodeError:
        cut = body.rfind("\n[")  # content, a newline, then the call list
        if cut == -1:
            raise
        return _decode_pythonic(body[cut + 1:], rules)


def _decode_json(raw: Any) -> list[dict]:
    text = _text(raw)
    if CALL_BEGIN not in text:
        raise DecodeError(f"no {CALL_BEGIN} block: the model answered in text")
    return _json_blocks(text[text.index(CALL_BEGIN):])


def _json_blocks(body: str) -> list[dict]:
    """``<|tool_call_begin|>{json}<|tool_call_end|>`` blocks, only whitespace between them."""
    calls = []
    position = 0
    for match in _CALL_BLOCK.finditer(body):
        if body[position:match.start()].strip():
            raise DecodeError(f"text between tool calls: {body[position:match.start()].strip()[:80]!r}")
        calls.append(_json_call(match.group(1)))
        position = match.end()
    if not calls or body[position:].strip():
        raise DecodeError(f"unterminated or malformed {CALL_BEGIN} block")
    return calls


def _json_call(block: str) -> dict:
    try:
        call = json.loads(block)
    except ValueError as err:
        raise DecodeError(f"tool call is not JSON: {getattr(err, 'msg', str(err))[:200]}") from None
    if not (isinstance(call, dict) and isinstance(call.get("name"), str)):
        raise DecodeError('tool call must be {"name": ..., "arguments": ...}')
    return {call["name"]: _arguments(call.get("arguments", {}), call["name"])}


def _arguments(arguments: Any, name: str) -> dict:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError as err:  # bad JSON, or a number longer than Python reads (4,300 digits)
            raise DecodeError(f"arguments of {name} are not JSON: {getattr(err, 'msg', str(err))[:200]}") from None
    if not isinstance(arguments, dict):
        raise DecodeError(f"arguments of {name} must be a JSON object")
    return arguments


def _decode_openai(raw: Any) -> list[dict]:
    if isinstance(raw, str):
        raise DecodeError("the model answered in text, not with function calls")
    if not isinstance(raw, list):
        raise DecodeError(f"expected a list of function calls, got {type(raw).__name__}")
    calls = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise DecodeError(f"call {i} is not an object")
        function = item.get("function") if item.get("type") == "function" or "function" in item else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            # An OpenAI tool_calls object: {"id", "type": "function", "function": {name, arguments}}
            calls.append({function["name"]: _arguments(function.get("arguments", {}), function["name"])})
        elif set(item) == {"name", "arguments"} and isinstance(item["name"], str):
            calls.append({item["name"]: _arguments(item["arguments"], item["name"])})
        elif len(item) == 1:
            (name, arguments), = item.items()
            calls.append({name: _arguments(arguments, name)})
        else:
            raise DecodeError(f"call {i} is neither {{name: arguments}} nor a tool_calls object")
    return calls
