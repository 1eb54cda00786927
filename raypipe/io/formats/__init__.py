"""Source formats `raypipe convert --from FORMAT` understands.

Each format module has `convert(record: dict, ctx: SourceContext) -> Sample`, raising
`ConversionError` with a reason that names the offending field. Validation against the
function specs happens afterwards, in one place (`raypipe.io.convert`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from raypipe import safejson
from raypipe.schema import ToolCall


class ConversionError(ValueError):
    """This record cannot become a canonical sample; the message names the field and why."""


@dataclass(frozen=True)
class SourceContext:
    path: str  # the file being read (for formats whose file name carries meaning, e.g. BFCL)
    source: str  # value for Sample.source
    lang: str | None = None  # force a language; None: the format's own guess, else "en"


@dataclass(frozen=True)
class Format:
    name: str
    convert: Callable[[dict, SourceContext], Any]
    description: str
    ignore_dirs: tuple[str, ...] = ()  # folders holding companion files, not records


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


def name_and_arguments_call(value: Any, where: str) -> ToolCall:
    """A call written as {"name": ..., "arguments": object or JSON string} (xLAM answers,
    ShareGPT function_call turns)."""
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise ConversionError(f"{where}.name: missing")
    args = parse_json_field(value.get("arguments") or {}, f"{where}.arguments")
    if not isinstance(args, dict):
        raise ConversionError(f"{where}.arguments: expected an object")
    return ToolCall(value["name"], args)


def require(record: dict, key: str, kind: type | tuple[type, ...] = str) -> Any:
    if key not in record or record[key] is None:
        raise ConversionError(f"{key}: missing")
    value = record[key]
    if not isinstance(value, kind):
        names = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ConversionError(f"{key}: expected {names}, got {type(value).__name__}")
    return value


def formats() -> dict[str, Format]:
    from raypipe.io.formats import bfcl, canonical, glaive, instruct, openai_chat, sharegpt, xlam

    table = [
        Format("openai", openai_chat.convert, "OpenAI chat JSONL: messages (+ tools, tool_calls)"),
        Format("chat", openai_chat.convert, "plain chat JSONL: {messages: [{role, content}]}"),
        Format("xlam", xlam.convert, "xLAM / APIGen: query, tools, answers (JSON strings)"),
        Format("glaive", glaive.convert, "glaive-function-calling-v2: system + chat text"),
        Format("sharegpt", sharegpt.convert, "ShareGPT with tools: conversations + tools"),
        Format("bfcl", bfcl.convert, "BFCL question files (V1 string or V3/V4 list of turns)",
               ignore_dirs=("possible_answer",)),
        Format("openorca", instruct.convert_openorca, "OpenOrca-style: system_prompt, question, response"),
        Format("canonical", canonical.convert, "raypipe's own JSONL/Parquet (Sample.to_dict or rows)"),
    ]
    return {f.name: f for f in table}
