"""ShareGPT with tools (LLaMA-Factory's `sharegpt` format with a `tools` column).

    {"conversations": [{"from": "human", "value": "..."},
                       {"from": "function_call", "value": "{\"name\": \"f\", \"arguments\": {...}}"},
                       {"from": "observation", "value": "{...}"},
                       {"from": "gpt", "value": "..."}],
     "system": "...", "tools": "[{\"name\": \"f\", ...}]"}

A `function_call` value is one call or a list of calls (parallel); the observation after
parallel calls may hold a JSON list with one result per call, which becomes one tool message each.
"""

from __future__ import annotations

import json

from raypipe import safejson
from raypipe.io.formats.base import (
    ConversionError, SourceContext, lang_for, name_and_arguments_call, parse_json_field, require, restore_exported,
)
from raypipe.io.formats.openai_chat import unwrap_tool
from raypipe.schema import Message, Sample, ToolCall

_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
          "system": "system", "function_call": "calls", "observation": "tool", "tool": "tool"}


def convert(record: dict, ctx: SourceContext) -> Sample:
    turns = parse_json_field(require(record, "conversations", (list, str)), "conversations")
    if not isinstance(turns, list):
        raise ConversionError(f"conversations: expected a list, got {type(turns).__name__}")
    tools = parse_json_field(record.get("tools") or [], "tools")
    if not isinstance(tools, list):
        raise ConversionError("tools: expected a list")
    functions = [unwrap_tool(t, f"tools[{i}]") for i, t in enumerate(tools)]
    messages = [Message("system", record["system"])] if record.get("system") else []
    pending: list[ToolCall] = []
    for i, turn in enumerate(turns):
        where = f"conversations[{i}]"
        if not isinstance(turn, dict):
            raise ConversionError(f"{where}: expected an object")
        role = _ROLES.get(str(turn.get("from")))
        if role is None:
            raise ConversionError(f"{where}.from: unknown speaker {turn.get('from')!r}")
        value = turn.get("value")
        if not isinstance(value, str):
            raise ConversionError(f"{where}.value: expected a string")
        if role == "calls":
            raw = parse_json_field(value, f"{where}.value")
            raw_calls = raw if isinstance(raw, list) else [raw]
            calls = [name_and_arguments_call(c, f"{where}.value[{j}]", ctx) for j, c in enumerate(raw_calls)]
            pending = list(calls)
            messages.append(Message("assistant", None, tool_calls=calls))
        elif role == "tool":
            results = _split_results(value, len(pending))
            for result in results:
                name = pending.pop(0).name if pending else None
                messages.append(Message("tool", result, name=name))
        else:
            messages.append(Message(role, value))
    sample = Sample(functions=functions, messages=messages, source=ctx.source, lang=lang_for(ctx, messages))
    return restore_exported(sample, record, ctx)


def _split_results(value: str, n_pending: int) -> list[str]:
    if n_pending > 1:
        try:
            parsed = safejson.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list) and len(parsed) == n_pending:
            return [json.dumps(r, ensure_ascii=False) for r in parsed]
    return [value]
