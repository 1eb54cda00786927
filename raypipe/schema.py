"""The canonical sample: one function-calling or instruction-following conversation.

In Python a sample is a `Sample` dataclass with plain values (arguments are dicts of any
JSON value). On disk and inside Ray Data it is a flat row of the Arrow schema `SAMPLE_SCHEMA`.
Values whose type varies from row to row (function specs, tool-call arguments, meta) are
stored as canonical JSON strings: Arrow/Parquet have no union type that round-trips, and JSON
keeps nested mixed-type values (``[1, "a", {"b": 2.5}]``) exact.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from raypipe import safejson

SCHEMA_VERSION = 1

ROLES = ("system", "user", "assistant", "tool")


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, unicode kept as is."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "arguments": self.arguments}
        if self.id is not None:
            out["id"] = self.id
        return out


@dataclass
class Message:
    role: str
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning: str | None = None
    name: str | None = None  # tool messages: the function whose result this is
    tool_call_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        for key in ("reasoning", "name", "tool_call_id"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Message":
        """From `to_dict()`'s form or the OpenAI wire form: calls nested under ``function``,
        ``arguments`` as a JSON string, ``content`` as a list of text parts, reasoning as
        ``reasoning_content``. Raises ValueError for what none of these forms allows."""
        reasoning = d.get("reasoning")
        return cls(
            role=d["role"],
            content=content_text(d.get("content")),
            tool_calls=[_call_from_dict(c) for c in (d.get("tool_calls") or [])],
            reasoning=reasoning if reasoning is not None else d.get("reasoning_content"),
            name=d.get("name"),
            tool_call_id=d.get("tool_call_id"),
        )


def content_text(content: Any) -> str | None:
    """Message content as text: a string as is, OpenAI content parts (``[{"type": "text",
    "text": ...}]``) joined."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if len(texts) == len(content) and all(isinstance(t, str) for t in texts):
            return "".join(texts)
        raise ValueError("content: only text parts ({'type': 'text', 'text': ...}) are supported")
    raise ValueError(f"content: expected a string or a list of text parts, got {type(content).__name__}")


def _call_from_dict(c: dict[str, Any]) -> ToolCall:
    fn = c["function"] if isinstance(c.get("function"), dict) else c
    arguments = fn.get("arguments")
    if isinstance(arguments, str):
        from raypipe import safejson

        try:
            arguments = safejson.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"arguments of {fn.get('name')!r} are not valid JSON: {exc.msg}") from None
    if arguments is not None and not isinstance(arguments, dict):
        raise ValueError(f"arguments of {fn.get('name')!r} must be an object, got {type(arguments).__name__}")
    return ToolCall(name=fn["name"], arguments=dict(arguments or {}), id=c.get("id"))


@dataclass
class Lineage:
    """One step of a sample's history: `stage` made this sample from `parent_id`."""

    stage: str
    parent_id: str | None = None


@dataclass
class Sample:
    functions: list[dict[str, Any]]
    messages: list[Message]
    source: str = ""
    lang: str = "en"
    meta: dict[str, Any] = field(default_factory=dict)
    lineage: list[Lineage] = field(default_factory=list)
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            self.id = content_id(self.functions, self.messages)

    # -- conversions -------------------------------------------------------------------
    def content_dict(self) -> dict[str, Any]:
        return {
            "functions": self.functions,
            "messages": [m.to_dict() for m in self.messages],
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (the JSONL form)."""
        return {
            "id": self.id,
            "source": self.source,
            "lang": self.lang,
            **self.content_dict(),
            "meta": self.meta,
            "lineage": [{"stage": x.stage, "parent_id": x.parent_id} for x in self.lineage],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Sample":
        return cls(
            id=_given(d, "id", ""),
            source=_given(d, "source", ""),
            lang=_given(d, "lang", "en"),
            functions=_copy(_given(d, "functions", [])),
            messages=[Message.from_dict(m) for m in _given(d, "messages", [])],
            meta=_copy(_given(d, "meta", {})),
            lineage=[Lineage(x["stage"], x.get("parent_id")) for x in _given(d, "lineage", [])],
        )

    def to_row(self) -> dict[str, Any]:
        """The flat Arrow row (see `SAMPLE_SCHEMA`)."""
        return {
            "id": self.id,
            "source": self.source,
            "lang": self.lang,
            "functions": [canonical_json(f) for f in self.functions],
            "messages": [
                {
                    "role": m.role,
                    "content": m.content,
                    "reasoning": m.reasoning,
                    "name": m.name,
                    "tool_call_id": m.tool_call_id,
                    "tool_calls": [
                        {"id": c.id, "name": c.name, "arguments": canonical_json(c.arguments)}
                        for c in m.tool_calls
                    ],
                }
                for m in self.messages
            ],
            "meta": canonical_json(self.meta),
            "lineage": [{"stage": x.stage, "parent_id": x.parent_id} for x in self.lineage],
            "schema_version": SCHEMA_VERSION,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Sample":
        """Inverse of `to_row`; accepts rows as Ray Data / pyarrow hand them out."""
        messages = []
        for m in _as_list(row.get("messages")):
            calls = [
                ToolCall(name=c["name"], arguments=safejson.loads(c["arguments"]), id=c.get("id"))
                for c in _as_list(m.get("tool_calls"))
            ]
            messages.append(
                Message(
                    role=m["role"],
                    content=m.get("content"),
                    tool_calls=calls,
                    reasoning=m.get("reasoning"),
                    name=m.get("name"),
                    tool_call_id=m.get("tool_call_id"),
                )
            )
        return cls(
            id=row["id"],
            source=row.get("source") or "",
            lang=row.get("lang") or "en",
            functions=[safejson.loads(f) for f in _as_list(row.get("functions"))],
            messages=messages,
            meta=safejson.loads(row.get("meta") or "{}"),
            lineage=[Lineage(x["stage"], x.get("parent_id")) for x in _as_list(row.get("lineage"))],
        )

    # -- conveniences -----------------------------------------------------------------
    def tool_calls(self) -> list[ToolCall]:
        return [c for m in self.messages if m.role == "assistant" for c in m.tool_calls]

    def function_names(self) -> list[str]:
        return [f.get("name", "") for f in self.functions]

    def derive(self, stage: str, **changes: Any) -> "Sample":
        """A new sample made from this one by `stage`: fresh content id, lineage extended."""
        data = {
            "functions": self.functions,
            "messages": self.messages,
            "source": self.source,
            "lang": self.lang,
            "meta": dict(self.meta),
            **changes,
        }
        return Sample(
            lineage=[*self.lineage, Lineage(stage=stage, parent_id=self.id)],
            **data,
        )


def _given(d: dict[str, Any], key: str, default: Any) -> Any:
    """d[key], or the default when it is absent, null or empty. A value of another type is kept
    as it is (never coerced: `list("abc")` would invent data), for `shape_problems` to name."""
    value = d.get(key)
    return default if value is None or value == "" or value == [] or value == {} else value


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if hasattr(value, "tolist"):  # numpy arrays from Ray Data's pandas/numpy batches
        return list(value.tolist())
    return list(value)


def content_id(functions: Iterable[dict[str, Any]], messages: Iterable[Message]) -> str:
    """Stable id from the content alone (not source or meta), so dedup across runs agrees."""
    payload = canonical_json(
        {"functions": list(functions), "messages": [m.to_dict() for m in messages]}
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]


# The form of `content_id`: a sample whose id has this form claims to be that hash.
CONTENT_ID = re.compile(r"[0-9a-f]{24}")


def id_problem(sample: "Sample") -> str | None:
    """Why the sample's id cannot be trusted, or None.

    An id of the content-hash form must be the hash of this sample's functions and messages:
    a copied or stale id would make two different samples one (dedup, mixing and resume key
    on ids). Other ids are names given by the stage that generated the sample (ToolFlow and
    MAGNET dialog ids) and are taken as given."""
    if not isinstance(sample.id, str) or not sample.id:
        return f"id: expected a non-empty string, got {type(sample.id).__name__}"
    if CONTENT_ID.fullmatch(sample.id):
        expected = content_id(sample.functions, sample.messages)
        if expected != sample.id:
            return (f"id: {sample.id} is not the id of this content ({expected}): the sample was "
                    "edited after its id was made, or carries another sample's id")
    return None


def _check_type(problems: list[tuple[str, str]], path: str, value: Any, kinds: tuple[type, ...],
                optional: bool = False) -> bool:
    if value is None and optional:
        return True
    if isinstance(value, kinds) and not isinstance(value, bool):
        return True
    want = "/".join(k.__name__ for k in kinds) + (" or null" if optional else "")
    problems.append((path, f"expected {want}, got {type(value).__name__}"))
    return False


def shape_problems(sample: "Sample") -> list[tuple[str, str]]:
    """(field path, message) for every value whose type the sample schema (and so Arrow) cannot
    hold: a number where a string belongs, a list where arguments (an object) belong. Checked
    before anything else looks inside a sample, so hostile rows become rejects, not crashes."""
    problems: list[tuple[str, str]] = []
    for name in ("id", "source", "lang"):
        _check_type(problems, name, getattr(sample, name), (str,))
    if _check_type(problems, "functions", sample.functions, (list,)):
        for i, spec in enumerate(sample.functions):
            _check_type(problems, f"functions[{i}]", spec, (dict,))
    _check_type(problems, "meta", sample.meta, (dict,))
    if _check_type(problems, "lineage", sample.lineage, (list,)):
        for i, step in enumerate(sample.lineage):
            if _check_type(problems, f"lineage[{i}]", step, (Lineage,)):
                _check_type(problems, f"lineage[{i}].stage", step.stage, (str,))
                _check_type(problems, f"lineage[{i}].parent_id", step.parent_id, (str,), optional=True)
    if not _check_type(problems, "messages", sample.messages, (list,)):
        return problems
    for i, msg in enumerate(sample.messages):
        where = f"messages[{i}]"
        if not _check_type(problems, where, msg, (Message,)):
            continue
        _check_type(problems, f"{where}.role", msg.role, (str,))
        for key in ("content", "reasoning", "name", "tool_call_id"):
            _check_type(problems, f"{where}.{key}", getattr(msg, key), (str,), optional=True)
        if not _check_type(problems, f"{where}.tool_calls", msg.tool_calls, (list,)):
            continue
        for j, call in enumerate(msg.tool_calls):
            cpath = f"{where}.tool_calls[{j}]"
            if _check_type(problems, cpath, call, (ToolCall,)):
                _check_type(problems, f"{cpath}.name", call.name, (str,))
                _check_type(problems, f"{cpath}.arguments", call.arguments, (dict,))
                _check_type(problems, f"{cpath}.id", call.id, (str,), optional=True)
    return problems


def arrow_schema():
    """The Arrow schema of a sample row. Built lazily so `import raypipe` stays light."""
    import pyarrow as pa

    tool_call = pa.struct(
        [("id", pa.string()), ("name", pa.string()), ("arguments", pa.string())]
    )
    message = pa.struct(
        [
            ("role", pa.string()),
            ("content", pa.string()),
            ("reasoning", pa.string()),
            ("name", pa.string()),
            ("tool_call_id", pa.string()),
            ("tool_calls", pa.list_(tool_call)),
        ]
    )
    lineage = pa.struct([("stage", pa.string()), ("parent_id", pa.string())])
    return pa.schema(
        [
            ("id", pa.string()),
            ("source", pa.string()),
            ("lang", pa.string()),
            ("functions", pa.list_(pa.string())),
            ("messages", pa.list_(message)),
            ("meta", pa.string()),
            ("lineage", pa.list_(lineage)),
            ("schema_version", pa.int32()),
        ],
        metadata={b"raypipe.schema_version": str(SCHEMA_VERSION).encode()},
    )


def samples_to_table(samples: Iterable[Sample]):
    import pyarrow as pa

    return pa.Table.from_pylist([s.to_row() for s in samples], schema=arrow_schema())


def table_to_samples(table) -> list[Sample]:
    return [Sample.from_row(r) for r in table.to_pylist()]


def dpo_pair_schema():
    """Arrow schema of a multi-turn DPO pair (MAGNET): the same conversation prefix, a positive
    (`chosen`) and a negative (`rejected`) trajectory, which turn was corrupted and how."""
    import pyarrow as pa

    sample = pa.struct(list(arrow_schema()))
    return pa.schema(
        [
            ("id", pa.string()),
            ("chosen", sample),
            ("rejected", sample),
            ("turn", pa.int32()),  # index into messages of the first differing assistant turn
            ("corruption", pa.string()),  # e.g. "guess_missing_argument", "unrelated_function"
            ("source", pa.string()),
            ("meta", pa.string()),
        ]
    )
