"""What every source format shares: the context of the file being read, the error a record
raises, and the helpers for fields real datasets store in more than one way."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from raypipe.schema import Message, ToolCall


class ConversionError(ValueError):
    """This record cannot become a canonical sample; the message names the field and why."""


@dataclass(frozen=True)
class SourceContext:
    path: str  # the file being read (for formats whose file name carries meaning, e.g. BFCL)
    source: str  # value for Sample.source
    lang: str | None = None  # force a language (an explicit flag); None: detected from the text
    # Repairs made while converting, counted per file for the summary (e.g. arguments that were
    # JSON encoded twice). Shared by the records of one file.
    notes: Counter = field(default_factory=Counter, compare=False)


@dataclass(frozen=True)
class Format:
    name: str
    convert: Callable[[dict, SourceContext], Any]
    description: str
    ignore_dirs: tuple[str, ...] = ()  # folders holding companion files, not records
    # A file of the format's data layout that holds no records (BFCL function docs, indexes):
    # the reason it is skipped, or None. The run says it in one line instead of rejecting rows.
    skip: Callable[[str], str | None] | None = None


def parse_json_field(value: Any, field: str) -> Any:
    """A field that real datasets store either as a JSON string or as the decoded value."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConversionError(f"{field}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    return value


def decode_arguments(value: Any, where: str, ctx: SourceContext | None = None) -> dict[str, Any]:
    """Call arguments as an object, from an object or a JSON string. A JSON string that holds
    another JSON string of an object (encoded twice, common in the wild) is decoded once more
    and counted in `ctx.notes["double_encoded_arguments"]`."""
    if value is None or value == "":
        return {}
    args = parse_json_field(value, where)
    if isinstance(args, str) and isinstance(value, str):
        try:
            inner = json.loads(args)
        except json.JSONDecodeError:
            inner = None
        if isinstance(inner, dict):
            if ctx is not None:
                ctx.notes["double_encoded_arguments"] += 1
            return inner
    if not isinstance(args, dict):
        raise ConversionError(f"{where}: expected an object, got {type(args).__name__}")
    return args


def name_and_arguments_call(value: Any, where: str, ctx: SourceContext | None = None) -> ToolCall:
    """A call written as {"name": ..., "arguments": object or JSON string} (xLAM answers,
    ShareGPT function_call turns)."""
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise ConversionError(f"{where}.name: missing")
    return ToolCall(value["name"], decode_arguments(value.get("arguments"), f"{where}.arguments", ctx))


def require(record: dict, key: str, kind: type | tuple[type, ...] = str) -> Any:
    if key not in record or record[key] is None:
        raise ConversionError(f"{key}: missing")
    value = record[key]
    if not isinstance(value, kind):
        names = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ConversionError(f"{key}: expected {names}, got {type(value).__name__}")
    return value


def lang_for(ctx: SourceContext, messages: Iterable[Message]) -> str:
    """The sample's language: the explicit flag if given, else detected from its text."""
    from raypipe.io.formats.lang import detect_sample_lang

    return ctx.lang or detect_sample_lang(messages)
