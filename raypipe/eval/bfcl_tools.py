"""BFCL items as a hosted model sees them: OpenAI tools (function-calling mode) or a system
prompt that lists the functions (prompt mode).

BFCL writes types in its own names (``dict``, ``float``, ``tuple``, ``any``); OpenAI-compatible
APIs take JSON Schema and function names matching ``^[a-zA-Z0-9_-]{1,64}$``. So, as upstream's
FC-mode handlers do:

- ``dict`` -> ``object``, ``float`` -> ``number``, ``tuple`` -> ``array``, ``any`` -> ``string``
  (upstream's choice: the model writes the value as text); a missing or unknown type is
  ``string``; nested ``properties``, ``items`` and ``additionalProperties`` are converted too;
- ``.`` in a function name becomes ``_`` (score with ``--underscore-to-dot``);
- each function description gets upstream's language hint for python categories.

Prompt mode puts raypipe's own instructions (same contract as BFCL's: reply with the calls only,
as ``[func(param=value), ...]``) and the functions as JSON in the system message. Pass
BFCL's own system prompt text with ``system_prompt_template`` (a ``{functions}`` placeholder)
to reproduce the leaderboard's prompt exactly.
"""

from __future__ import annotations

import copy
import json
from typing import Any

# Appended to every function description in upstream's python categories (bfcl_eval adds it
# when it loads a test entry), so the model sees the same description there and here.
PYTHON_HINT = " Note that the provided function is in Python 3 syntax."

TYPE_TO_JSON_SCHEMA = {
    "dict": "object", "object": "object", "float": "number", "number": "number", "double": "number",
    "integer": "integer", "int": "integer", "long": "integer", "string": "string", "str": "string",
    "boolean": "boolean", "bool": "boolean", "array": "array", "list": "array", "tuple": "array",
    "any": "string",
}

DEFAULT_SYSTEM_PROMPT = """You are an expert at choosing and calling functions. You will get a question and a list of functions you can call. Decide which calls answer the question and make them. If none of the functions fits, or the question leaves out a value that a function requires, say so in words instead of calling anything.

When you call functions, reply with the calls and nothing else, written as one Python list: [func_name1(param_name1=value1, param_name2=value2), func_name2(param_name=value)]

The functions you can call, in JSON:
{functions}
"""


def openai_name(name: str) -> str:
    """A function name as OpenAI-style APIs accept it (``math.factorial`` -> ``math_factorial``)."""
    return name.replace(".", "_")


def to_json_schema(schema: Any) -> Any:
    """A BFCL parameter schema with its type names (and those of nested schemas) in JSON Schema."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    type_name = out.get("type")
    out["type"] = TYPE_TO_JSON_SCHEMA.get(type_name, "string") if isinstance(type_name, str) or type_name is None else type_name
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: to_json_schema(v) for k, v in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = to_json_schema(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = to_json_schema(out["additionalProperties"])
    return out


def to_openai_tools(functions: list[dict], python_hint: bool = True) -> list[dict]:
    """``tools=[{"type": "function", "function": {name, description, parameters}}]`` for an item."""
    tools = []
    for spec in functions:
        spec = copy.deepcopy(spec)
        parameters = to_json_schema(spec.get("parameters") or {"type": "dict", "properties": {}})
        parameters["type"] = "object"
        parameters.setdefault("properties", {})
        description = spec.get("description", "") + (PYTHON_HINT if python_hint else "")
        tools.append({"type": "function", "function": {
            "name": openai_name(spec["name"]), "description": description, "parameters": parameters}})
    return tools


def prompt_mode_messages(question: list[dict], functions: list[dict], template: str | None = None,
                         python_hint: bool = True) -> list[dict]:
    """The chat messages of prompt mode: the system prompt with the functions (JSON, indent 4),
    put before the item's own system message if it has one, then the question's messages."""
    docs = copy.deepcopy(functions)
    if python_hint:
        for spec in docs:
            spec["description"] = spec.get("description", "") + PYTHON_HINT
    system = (template or DEFAULT_SYSTEM_PROMPT).replace("{functions}", json.dumps(docs, indent=4, ensure_ascii=False))
    messages = [dict(m) for m in question]
    if messages and messages[0].get("role") == "system":
        messages[0]["content"] = system + "\n\n" + str(messages[0].get("content") or "")
        return messages
    return [{"role": "system", "content": system}, *messages]


def fc_result(completion_tool_calls: list[dict] | None, text: str) -> Any:
    """A BFCL FC-mode result: ``[{name: "<arguments JSON>"}]`` when the model called, else its text."""
    if completion_tool_calls:
        return [{call["function"]["name"]: call["function"].get("arguments") or "{}"} for call in completion_tool_calls]
    return text
