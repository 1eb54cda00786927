"""glaive-function-calling-v2: a `system` text with the function specs and a `chat` text.

    {"system": "SYSTEM: You are a helpful assistant with access to the following functions.
                Use them if required -\n{\n    \"name\": \"f\", ...\n}\n\n{...}",
     "chat": "USER: ...\n\n\nASSISTANT: <functioncall> {\"name\": \"f\", \"arguments\": '{\"a\": 1}'}
              <|endoftext|>\n\n\nFUNCTION RESPONSE: {...}\n\n\nASSISTANT: ... <|endoftext|>\n\n\n"}

The `arguments` of a `<functioncall>` are a JSON object inside single quotes (so the call is
not JSON); both that and a plain object are read. The boilerplate system preamble is dropped
(the specs live in `functions`); any other system text is kept.
"""

from __future__ import annotations

import json
import re

from raypipe import safejson
from raypipe.io.formats.base import ConversionError, SourceContext, decode_arguments, lang_for, require
from raypipe.schema import Message, Sample, ToolCall

_PREAMBLE = re.compile(r"^SYSTEM:\s*", re.S)
_FUNCTIONS_INTRO = re.compile(r"Use them if required\s*-\s*", re.S)
_NO_FUNCTIONS = "You are a helpful assistant, with no access to external functions."
_TURN = re.compile(r"(?:^|\n)\s*(USER|ASSISTANT|FUNCTION RESPONSE):[ \t]?")
_END = "<|endoftext|>"
_CALL_NAME = re.compile(r'"name"\s*:\s*"([^"]+)"')
_CALL_ARGS = re.compile(r"\"arguments\"\s*:\s*'(.*)'\s*\}\s*$", re.S)


def parse_system(system: str) -> tuple[str | None, list[dict]]:
    """(system text to keep or None, function specs)."""
    text = _PREAMBLE.sub("", system.strip())
    intro = _FUNCTIONS_INTRO.search(text)
    if not intro:
        kept = text.strip()
        return (None if kept in ("", _NO_FUNCTIONS) else kept), []
    functions, pos = [], intro.end()
    decoder = json.JSONDecoder()
    while pos < len(text):
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos >= len(text):
            break
        try:
            spec, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ConversionError(f"system: function spec {len(functions)} is not valid JSON ({exc.msg})") from None
        if not isinstance(spec, dict) or "name" not in spec:
            raise ConversionError(f"system: function spec {len(functions)} has no name")
        functions.append(spec)
    before = text[: intro.start()].strip()
    standard = before.startswith("You are a helpful assistant with access to the following functions.")
    return (None if standard or not before else before), functions


def parse_call(text: str, where: str, ctx: SourceContext | None = None) -> ToolCall:
    body = text.strip()
    try:
        obj = safejson.loads(body)
    except ValueError:  # not JSON (the <functioncall> form below), or hostile JSON
        obj = None
    if isinstance(obj, dict) and isinstance(obj.get("name"), str):
        return ToolCall(obj["name"], decode_arguments(obj.get("arguments"), f"{where}: arguments", ctx))
    name = _CALL_NAME.search(body)
    args_match = _CALL_ARGS.search(body)
    if not name:
        raise ConversionError(f"{where}: <functioncall> has no name")
    if not args_match:
        raise ConversionError(f"{where}: <functioncall> arguments not found")
    return ToolCall(name.group(1), decode_arguments(args_match.group(1), f"{where}: <functioncall> arguments", ctx))


def convert(record: dict, ctx: SourceContext) -> Sample:
    system_text, functions = parse_system(require(record, "system"))
    chat = require(record, "chat")
    pieces = _TURN.split(chat)
    if pieces[0].strip():
        raise ConversionError("chat: text before the first USER:/ASSISTANT: turn")
    messages = [Message("system", system_text)] if system_text else []
    last_call: str | None = None
    for n, (speaker, text) in enumerate(zip(pieces[1::2], pieces[2::2])):
        where = f"chat turn {n} ({speaker})"
        text = text.strip()
        if speaker == "USER":
            messages.append(Message("user", text))
        elif speaker == "FUNCTION RESPONSE":
            messages.append(Message("tool", text, name=last_call))
        else:
            text = text.replace(_END, "").strip()
            if "<functioncall>" in text:
                before, call_text = text.split("<functioncall>", 1)
                call = parse_call(call_text, where, ctx)
                last_call = call.name
                messages.append(Message("assistant", before.strip() or None, tool_calls=[call]))
            else:
                messages.append(Message("assistant", text))
    if not messages or all(m.role == "system" for m in messages):
        raise ConversionError("chat: no USER/ASSISTANT turns found")
    return Sample(functions=functions, messages=messages, source=ctx.source, lang=lang_for(ctx, messages))
