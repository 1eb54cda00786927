"""OpenAI chat format (fine-tuning JSONL): `messages`, optional `tools`.

    {"messages": [{"role": "user", "content": "..."},
                  {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1",
                   "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]},
                  {"role": "tool", "tool_call_id": "call_1", "content": "..."}],
     "tools": [{"type": "function", "function": {"name": "f", "parameters": {...}}}]}

Also understood: the legacy `functions` list, assistant `function_call` and `function` role,
and content given as a list of text parts. Without tools this is the plain chat format.
"""

from __future__ import annotations

from typing import Any

from raypipe.io.formats.base import ConversionError, restore_exported, SourceContext, decode_arguments, lang_for, parse_json_field, require
from raypipe.schema import Message, Sample, ToolCall


_KEPT_OPTIONS = ("parallel_tool_calls", "tool_choice")


def unwrap_tool(spec: Any, where: str) -> dict:
    if not isinstance(spec, dict):
        raise ConversionError(f"{where}: expected an object, got {type(spec).__name__}")
    if spec.get("type") == "function" and isinstance(spec.get("function"), dict):
        return dict(spec["function"])
    if "name" in spec:
        return dict(spec)
    raise ConversionError(f"{where}: not a function spec (no name)")


def _content(value: Any, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):  # [{"type": "text", "text": "..."}]
        texts = [p.get("text", "") for p in value if isinstance(p, dict) and p.get("type") == "text"]
        if len(texts) != len(value):
            raise ConversionError(f"{where}: only text content parts are supported")
        return "".join(texts)
    raise ConversionError(f"{where}: expected a string, got {type(value).__name__}")


def _call(raw: Any, where: str, ctx: SourceContext) -> ToolCall:
    if not isinstance(raw, dict):
        raise ConversionError(f"{where}: expected an object, got {type(raw).__name__}")
    fn = raw.get("function", raw)  # tool_calls nest under "function"; legacy function_call does not
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise ConversionError(f"{where}.function.name: missing")
    args = decode_arguments(fn.get("arguments"), f"{where}.function.arguments", ctx)
    return ToolCall(name=fn["name"], arguments=args, id=raw.get("id"))


def convert(record: dict, ctx: SourceContext) -> Sample:
    # HF datasets often store the nested columns as JSON strings
    raw_messages = parse_json_field(require(record, "messages", (list, str)), "messages")
    if not isinstance(raw_messages, list):
        raise ConversionError(f"messages: expected a list, got {type(raw_messages).__name__}")
    tools = record.get("tools") or record.get("functions") or []
    tools = parse_json_field(tools, "tools")
    if not isinstance(tools, list):
        raise ConversionError(f"tools: expected a list, got {type(tools).__name__}")
    functions = [unwrap_tool(t, f"tools[{i}]") for i, t in enumerate(tools)]

    messages: list[Message] = []
    names_by_call_id: dict[str, str] = {}
    last_calls: list[ToolCall] = []
    for i, m in enumerate(raw_messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ConversionError(f"{where}.role: missing")
        role = m["role"]
        content = _content(m.get("content"), f"{where}.content")
        if role == "assistant":
            raw_calls = m.get("tool_calls") or ([m["function_call"]] if m.get("function_call") else [])
            calls = [_call(c, f"{where}.tool_calls[{j}]", ctx) for j, c in enumerate(raw_calls)]
            names_by_call_id.update({c.id: c.name for c in calls if c.id})
            last_calls = calls
            messages.append(Message("assistant", content, tool_calls=calls,
                                    reasoning=m.get("reasoning_content") or m.get("reasoning")))
        elif role in ("tool", "function"):
            call_id = m.get("tool_call_id")
            name = m.get("name") or names_by_call_id.get(call_id or "")
            if name is None and len(last_calls) == 1:
                name = last_calls[0].name
            messages.append(Message("tool", content, name=name, tool_call_id=call_id))
        elif role in ("system", "developer", "user"):
            messages.append(Message("system" if role == "developer" else role, content))
        else:
            raise ConversionError(f"{where}.role: unknown role {role!r}")
    meta: dict[str, Any] = {}
    if record.get("id") is not None:
        meta["source_id"] = record["id"]
    # request options that travel with the rows (OpenAI fine-tuning files: parallel_tool_calls)
    meta.update({k: v for k, v in record.items() if k in _KEPT_OPTIONS and v is not None})
    sample = Sample(functions=functions, messages=messages, source=ctx.source, lang=lang_for(ctx, messages), meta=meta)
    return restore_exported(sample, record, ctx)
