"""The strict sample validator every stage reuses.

`validate_sample` returns every problem it finds, each with a path such as
``messages[3].tool_calls[0].arguments.unit``, so a reject says exactly what is wrong.
Function specs may use JSON-schema type names (object, number) or BFCL's (dict, float,
tuple, any); both are understood.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from raypipe.schema import ROLES, Sample, shape_problems


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def function_parameters(spec: dict[str, Any]) -> dict[str, Any]:
    """The parameters object of a spec, accepting OpenAI's {"type": "function", "function": ...}."""
    if spec.get("type") == "function" and isinstance(spec.get("function"), dict):
        spec = spec["function"]
    params = spec.get("parameters") or {}
    return params if isinstance(params, dict) else {}


def function_name(spec: dict[str, Any]) -> str:
    if spec.get("type") == "function" and isinstance(spec.get("function"), dict):
        spec = spec["function"]
    return str(spec.get("name", ""))


def _type_ok(value: Any, type_name: str) -> bool:
    if type_name in ("string",):
        return isinstance(value, str)
    if type_name in ("integer", "int"):
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name in ("number", "float", "double"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name in ("boolean", "bool"):
        return isinstance(value, bool)
    if type_name in ("array", "tuple", "list"):
        return isinstance(value, list)
    if type_name in ("object", "dict"):
        return isinstance(value, dict)
    if type_name == "null":
        return value is None
    return True  # "any" and unknown type names accept everything


def allows_null(schema: dict[str, Any]) -> bool:
    """Whether a property schema admits null: no type at all, type null (or a list with it),
    ``nullable: true``, null among the enum values, or an anyOf/oneOf branch that does."""
    declared = schema.get("type")
    if not declared and not any(k in schema for k in ("anyOf", "oneOf", "enum")):
        return True
    types = declared if isinstance(declared, list) else [declared]
    if "null" in types or schema.get("nullable") is True or None in (schema.get("enum") or []):
        return True
    return any(allows_null(b) for k in ("anyOf", "oneOf") for b in schema.get(k) or [] if isinstance(b, dict))


def check_value(value: Any, schema: dict[str, Any], path: str) -> list[Problem]:
    """Check one value against a (JSON-schema or BFCL) property schema, recursively."""
    problems: list[Problem] = []
    if not isinstance(schema, dict):
        return problems
    if value is None:
        return [] if allows_null(schema) else [Problem(path, f"null is not allowed (the spec declares {_declared(schema)})")]
    declared = schema.get("type")
    types = declared if isinstance(declared, list) else [declared] if declared else []
    if types and not any(_type_ok(value, t) for t in types):
        return [Problem(path, f"expected {'/'.join(types)}, got {type(value).__name__} {value!r}")]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum and value not in enum:
        problems.append(Problem(path, f"{value!r} is not one of {enum}"))
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problems += check_value(item, schema["items"], f"{path}[{i}]")
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        problems += check_arguments(value, schema, path)
    return problems


def _declared(schema: dict[str, Any]) -> str:
    declared = schema.get("type")
    if declared:
        return "type " + "/".join(declared) if isinstance(declared, list) else f"type {declared}"
    return "enum " + str(schema.get("enum")) if "enum" in schema else "no null"


def check_spec(spec: Any, path: str) -> list[Problem]:
    """Property schemas must be objects: a null one (what an Arrow schema merge leaves for the
    properties of other functions) declares nothing."""
    params = function_parameters(spec) if isinstance(spec, dict) else {}
    return _check_schema(params, f"{path}.parameters")


def _check_schema(schema: dict[str, Any], path: str) -> list[Problem]:
    problems = []
    props = schema.get("properties")
    if isinstance(props, dict):
        for name, prop in props.items():
            if not isinstance(prop, dict):
                problems.append(Problem(f"{path}.properties.{name}",
                                        f"property schema must be an object, got {'null' if prop is None else type(prop).__name__}"))
            else:
                problems += _check_schema(prop, f"{path}.properties.{name}")
    if isinstance(schema.get("items"), dict):
        problems += _check_schema(schema["items"], f"{path}.items")
    return problems


def spec_problems(params: Any) -> list[tuple[str, str]]:
    """(field, message) for a parameters object the checks cannot read."""
    if not isinstance(params, dict):
        return [("", f"expected an object, got {type(params).__name__}")]
    problems = []
    props = params.get("properties")
    if props is not None and not isinstance(props, dict):
        problems.append((".properties", f"expected an object, got {type(props).__name__}"))
    required = params.get("required")
    if required is not None and not (isinstance(required, list) and all(isinstance(n, str) for n in required)):
        problems.append((".required", "expected a list of argument names"))
    return problems


def check_arguments(arguments: Any, params: dict[str, Any], path: str) -> list[Problem]:
    """Required present, nothing undeclared, each value typed as declared."""
    if not isinstance(arguments, dict):
        return [Problem(path, f"arguments must be an object, got {type(arguments).__name__}")]
    props = params.get("properties") or {}
    required = params.get("required") or []
    if spec_problems(params):  # reported once, on the function spec itself
        return []
    problems = [
        Problem(f"{path}.{name}", "required argument missing")
        for name in required
        if name not in arguments
    ]
    for key, value in arguments.items():
        if key not in props:
            problems.append(Problem(f"{path}.{key}", "argument not declared by the function"))
        elif not isinstance(props[key], dict):
            problems.append(Problem(f"{path}.{key}", "the function's schema for this argument is null"))
        else:
            problems += check_value(value, props[key], f"{path}.{key}")
    return problems


def validate_sample(sample: Sample) -> list[Problem]:
    shape = shape_problems(sample)
    if shape:  # the checks below assume the schema's types
        return [Problem(path, message) for path, message in shape]
    problems: list[Problem] = []
    specs: dict[str, dict[str, Any]] = {}
    for i, spec in enumerate(sample.functions):
        name = function_name(spec) if isinstance(spec, dict) else ""
        if not name:
            problems.append(Problem(f"functions[{i}].name", "function has no name"))
        elif name in specs:
            problems.append(Problem(f"functions[{i}].name", f"duplicate function {name!r}"))
        else:
            specs[name] = spec
        if isinstance(spec, dict):
            unreadable = [Problem(f"functions[{i}].parameters{where}", message)
                          for where, message in spec_problems(function_parameters(spec))]
            problems += unreadable or check_spec(spec, f"functions[{i}]")

    if not sample.messages:
        problems.append(Problem("messages", "conversation is empty"))
    if not any(m.role == "user" for m in sample.messages):
        problems.append(Problem("messages", "conversation has no user turn"))

    pending: list[str] = []  # call names awaiting a tool result, in order
    pending_ids: set[str] = set()
    for i, msg in enumerate(sample.messages):
        where = f"messages[{i}]"
        if msg.role not in ROLES:
            problems.append(Problem(f"{where}.role", f"unknown role {msg.role!r}"))
            continue
        if msg.role != "assistant" and msg.tool_calls:
            problems.append(Problem(f"{where}.tool_calls", f"a {msg.role} turn cannot call tools"))
        if msg.role in ("user", "system") and not (msg.content or "").strip():
            problems.append(Problem(f"{where}.content", f"empty {msg.role} turn"))
        if msg.role == "assistant":
            pending, pending_ids = [], set()
            for j, call in enumerate(msg.tool_calls):
                cpath = f"{where}.tool_calls[{j}]"
                spec = specs.get(call.name)
                if spec is None:
                    problems.append(Problem(f"{cpath}.name", f"undeclared function {call.name!r}"))
                    continue
                problems += check_arguments(
                    call.arguments, function_parameters(spec), f"{cpath}.arguments"
                )
                pending.append(call.name)
                if call.id:
                    pending_ids.add(call.id)
        elif msg.role == "tool":
            if not pending:
                problems.append(Problem(where, "tool result without a preceding tool call"))
            else:
                if msg.tool_call_id and pending_ids and msg.tool_call_id not in pending_ids:
                    problems.append(
                        Problem(f"{where}.tool_call_id", f"no call with id {msg.tool_call_id!r}")
                    )
                if msg.name and msg.name not in pending:
                    problems.append(
                        Problem(f"{where}.name", f"result for {msg.name!r}, which was not called")
                    )
                pending.remove(msg.name if msg.name in pending else pending[0])
        else:
            pending, pending_ids = [], set()
    return problems
