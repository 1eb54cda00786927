"""What every source format shares: the context of the file being read, the error a record
raises, and the helpers for fields real datasets store in more than one way."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from raypipe import safejson
from raypipe.schema import Lineage, Message, Sample, ToolCall


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
            return safejson.loads(value)
        except json.JSONDecodeError as exc:
            raise ConversionError(f"{field}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        except ValueError as exc:  # nesting too deep, numbers out of range (safejson)
            raise ConversionError(f"{field}: {exc}") from None
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
            inner = safejson.loads(args)
        except ValueError:  # not JSON, or hostile JSON: keep the string (the validator decides)
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


def strip_made_up_ids(messages: list[Message], made_up: Iterable[str]) -> list[Message]:
    """`messages` without the call ids an export made up (OpenAI needs ids; the sample had none)."""
    made_up = set(made_up)
    for m in messages:
        for c in m.tool_calls:
            if c.id in made_up:
                c.id = None
        if m.tool_call_id in made_up:
            m.tool_call_id = None
    return messages


def apply_ids(messages: list[Message], call_ids: list | None, result_ids: list | None) -> list[Message]:
    """Put back call ids (one per call, in order) and tool results' ids (one per tool message),
    which a layout such as ShareGPT has no place for."""
    calls = [c for m in messages for c in m.tool_calls]
    results = [m for m in messages if m.role == "tool"]
    if call_ids is not None and len(call_ids) == len(calls):
        for c, cid in zip(calls, call_ids):
            c.id = cid
    if result_ids is not None and len(result_ids) == len(results):
        for m, rid in zip(results, result_ids):
            m.tool_call_id = rid
    return messages


EXPORT_FIELD = "raypipe"  # what `raypipe export` writes beside a layout (see raypipe/io/export.py)


def restore_exported(sample: Sample, record: dict, ctx: SourceContext) -> Sample:
    """A row written by `raypipe export` carries what its layout cannot say in a ``raypipe`` field:
    put it back, so export -> convert gives the same sample. The id is kept when the content is
    unchanged since the export. `--lang` still wins."""
    raw = record.get(EXPORT_FIELD)
    if raw is None:
        return sample
    extra = parse_json_field(raw, EXPORT_FIELD)
    if not isinstance(extra, dict):
        raise ConversionError(f"{EXPORT_FIELD}: expected an object")
    try:
        messages = ([Message.from_dict(m) for m in extra["messages"]] if "messages" in extra
                    else apply_ids(strip_made_up_ids(sample.messages, extra.get("made_up_ids") or []),
                                   extra.get("call_ids"), extra.get("result_ids")))
        functions = extra["functions"] if "functions" in extra else sample.functions
        restored = Sample(functions=functions, messages=messages, source=extra.get("source", sample.source),
                          lang=ctx.lang or extra.get("lang") or sample.lang, meta=dict(extra.get("meta") or {}),
                          lineage=[Lineage(x["stage"], x.get("parent_id")) for x in extra.get("lineage") or []])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConversionError(f"{EXPORT_FIELD}: {type(exc).__name__}: {exc}") from None
    if extra.get("id") and extra.get("content_id") == restored.id:
        restored.id = extra["id"]
    return restored
