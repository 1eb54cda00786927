"""The environment protocol: a JSON-like database, whitelisted tools, a policy text.

A domain (`Domain`) holds what never changes (the initial database as canonical JSON text,
the tool specs, the policy, a toolkit factory); `Domain.new_env()` gives an `Environment` with
its own fresh copy of the database, one per episode or replay.

Calling a tool follows tau2-bench's environment exactly, because its answers are part of the
benchmark (hidden checks compare them with the benchmark's own code):

- only whitelisted names are dispatched; another name answers ``Error: Tool 'x' not found.``;
- the arguments are passed as keyword arguments to the toolkit's method, so a missing or
  unexpected argument answers with Python's own message for that call;
- arguments longer than `MAX_ARGUMENT_CHARS` as JSON are refused (raypipe's only addition);
- any exception a tool raises becomes the answer ``Error: {exception}`` (error=True), never a
  crash; the state changes a tool made before raising stay, as in the benchmark;
- a result is serialised as the benchmark does: text as it is, anything else as
  ``json.dumps`` with its default separators and ASCII escapes (numbers and booleans as the
  JSON string of their text).

Nothing here evaluates or executes text: tools are plain Python methods over dicts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

TOOL_NOT_FOUND = "Tool '{name}' not found."
# Model output is hostile: a call whose arguments are this long is refused before any tool runs
# (the retail tools count list items quadratically). Gold actions are far below it.
MAX_ARGUMENT_CHARS = 20_000


@dataclass(frozen=True)
class ToolResult:
    name: str
    content: str
    error: bool

    def to_dict(self) -> dict:
        return {"name": self.name, "error": self.error, "content": self.content}


@dataclass
class Domain:
    """Everything an episode of one domain needs, apart from the mutable database copy.

    `make_toolkit(db) -> object` builds the object whose methods named in `specs` are the
    tools (the whitelist); `mutating` names the tools that change the database.
    """

    name: str
    db_json: str  # the initial database, canonical JSON text (json.loads gives a fresh copy)
    specs: list[dict]  # OpenAI function specs {"type": "function", "function": {...}}
    policy: str
    make_toolkit: Callable[[dict], Any]
    mutating: frozenset[str] = field(default_factory=frozenset)
    source: dict = field(default_factory=dict)  # where it was loaded from (paths, hashes)

    @property
    def tool_names(self) -> list[str]:
        return [s["function"]["name"] for s in self.specs]

    def new_env(self) -> "Environment":
        # json.loads of the canonical text is a deep copy that keeps key order and every
        # float exactly (repr round-trips), and is faster than copy.deepcopy of the dicts.
        return Environment(self, json.loads(self.db_json))


class Environment:
    def __init__(self, domain: Domain, db: dict):
        self.domain = domain
        self.db = db
        self.toolkit = domain.make_toolkit(db)
        self._whitelist = frozenset(domain.tool_names)

    @property
    def specs(self) -> list[dict]:
        return self.domain.specs

    def call(self, name: Any, arguments: Any) -> ToolResult:
        """Run one tool call; every failure is an answer (error=True), never an exception."""
        if not isinstance(name, str) or name not in self._whitelist:
            return ToolResult(str(name), "Error: " + TOOL_NOT_FOUND.format(name=name), True)
        if not isinstance(arguments, dict):
            return ToolResult(name, f"Error: arguments must be a JSON object, got {type(arguments).__name__}", True)
        size = len(json.dumps(arguments, default=str))
        if size > MAX_ARGUMENT_CHARS:
            return ToolResult(name, f"Error: arguments too large ({size} characters; at most {MAX_ARGUMENT_CHARS})", True)
        method = getattr(self.toolkit, name)
        try:
            result = method(**arguments)
        except Exception as exc:  # noqa: BLE001 - a tool's failure is an answer to the model
            return ToolResult(name, f"Error: {exc}", True)
        return ToolResult(name, result_text(result), False)

    def db_sha256(self) -> str:
        return db_sha256(self.db)


def result_text(value: Any) -> str:
    """A tool's return value as the benchmark's environment writes it into the tool message."""
    if isinstance(value, str):
        return value
    return json.dumps(_plain(value), default=str)


def _plain(value: Any) -> Any:
    if isinstance(value, (int, float)):  # bool included
        return str(value)  # the benchmark answers numbers as their text (a JSON string)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    # A dict is a database record (the benchmark's model, dumped as it is). None -> null.
    return value


def strip_nulls(value: Any) -> Any:
    """`value` without any object key whose value is null (recursively)."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


def canonical_db_json(db: Any) -> str:
    return json.dumps(strip_nulls(db), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def db_sha256(db: Any) -> str:
    """sha256 of the database's UTF-8 JSON: nulls removed, keys sorted, compact, not escaped."""
    return hashlib.sha256(canonical_db_json(db).encode("utf-8")).hexdigest()
