"""xLAM / APIGen (Salesforce/xlam-function-calling-60k): one query, its tools and answers.

    {"id": 0, "query": "...",
     "tools": "[{\"name\": \"f\", \"description\": \"...\",
                 \"parameters\": {\"a\": {\"description\": \"...\", \"type\": \"str, optional\", \"default\": \"\"}}}]",
     "answers": "[{\"name\": \"f\", \"arguments\": {\"a\": \"x\"}}]"}

`tools` and `answers` are JSON strings. Parameters use Python type names (`str`, `int`,
`float`, `bool`, `List[int]`, `Dict[str, Any]`, with `, optional`); they become JSON schema.
A parameter is required unless it is marked optional or has a default. Empty `answers`
(the irrelevance subset) gives a sample with only the user turn and `meta.expected_no_call`.
"""

from __future__ import annotations

import re
from typing import Any

from raypipe.io.formats.base import ConversionError, SourceContext, lang_for, name_and_arguments_call, parse_json_field, require
from raypipe.schema import Message, Sample

_SCALARS = {
    "str": "string", "string": "string", "int": "integer", "integer": "integer",
    "float": "number", "number": "number", "bool": "boolean", "boolean": "boolean",
    "dict": "object", "object": "object", "list": "array", "array": "array", "tuple": "array",
}


def python_type_schema(type_text: str) -> dict[str, Any]:
    """JSON schema for an xLAM type string such as `List[int]` (unknown types: no constraint)."""
    t = type_text.strip()
    m = re.fullmatch(r"(?i)(list|tuple|set|sequence)\[(.+)\]", t)
    if m:
        inner = python_type_schema(m.group(2).split(",")[0]) if m.group(1).lower() != "tuple" else {}
        return {"type": "array", **({"items": inner} if inner else {})}
    if re.fullmatch(r"(?i)(dict|mapping)\[.+\]", t):
        return {"type": "object"}
    mapped = _SCALARS.get(t.lower())
    return {"type": mapped} if mapped else {}


def tool_to_spec(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
        raise ConversionError(f"{where}.name: missing")
    params = tool.get("parameters") or {}
    if not isinstance(params, dict):
        raise ConversionError(f"{where}.parameters: expected an object, got {type(params).__name__}")
    if params.get("type") == "object" and isinstance(params.get("properties"), dict):
        schema = params  # already JSON schema
    else:
        props, required = {}, []
        for pname, p in params.items():
            if not isinstance(p, dict):
                raise ConversionError(f"{where}.parameters.{pname}: expected an object")
            type_text = str(p.get("type", ""))
            optional = "optional" in type_text.lower()
            prop = python_type_schema(re.sub(r"(?i),?\s*optional", "", type_text))
            if p.get("description"):
                prop["description"] = p["description"]
            if "default" in p and p["default"] not in ("", None):
                prop["default"] = p["default"]
            props[pname] = prop
            if not optional and "default" not in p:
                required.append(pname)
        schema = {"type": "object", "properties": props, "required": required}
    return {"name": tool["name"], "description": tool.get("description", ""), "parameters": schema}


def convert(record: dict, ctx: SourceContext) -> Sample:
    query = require(record, "query")
    tools = parse_json_field(require(record, "tools", (str, list)), "tools")
    answers = parse_json_field(require(record, "answers", (str, list)), "answers")
    if not isinstance(tools, list):
        raise ConversionError("tools: expected a list")
    if not isinstance(answers, list):
        raise ConversionError("answers: expected a list")
    functions = [tool_to_spec(t, f"tools[{i}]") for i, t in enumerate(tools)]
    calls = [name_and_arguments_call(a, f"answers[{i}]", ctx) for i, a in enumerate(answers)]
    messages = [Message("user", query)]
    meta: dict[str, Any] = {}
    if calls:
        messages.append(Message("assistant", None, tool_calls=calls))
    else:
        meta["expected_no_call"] = True
    if record.get("id") is not None:
        meta["source_id"] = record["id"]
    return Sample(functions=functions, messages=messages, source=ctx.source, lang=lang_for(ctx, messages), meta=meta)
