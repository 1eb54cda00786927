"""Tool pools: the deduplicated set of function specs both multi-turn methods start from.

A pool is read from any mix of
- a plain JSON list of specs (``[{"name": ..., "parameters": ...}, ...]``, OpenAI's
  ``{"type": "function", "function": {...}}`` wrapping accepted),
- BFCL question files (JSON lines with a ``function`` key holding one spec or a list),
- canonical sample files (JSONL or Parquet of `raypipe.schema.Sample`): their ``functions``,
- any source format `raypipe convert` reads, named as a prefix: ``xlam:data/xlam.json``,
  ``glaive:...``, ``sharegpt:...`` (the functions of every record that converts).

Two specs are the same tool when name and signature (parameter names, types, required set)
agree; the first description wins. Specs sharing a name but not a signature are both kept, under
distinct node ids (``name``, ``name~2``...), because they are different tools; samplers never put
two tools with one name into a dialog.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from raypipe.errors import RaypipeError


def unwrap(spec: dict[str, Any]) -> dict[str, Any]:
    """The bare function spec, whether or not it is wrapped as OpenAI's {"type": "function"}."""
    if spec.get("type") == "function" and isinstance(spec.get("function"), dict):
        return spec["function"]
    return spec


def parameters_of(spec: dict[str, Any]) -> dict[str, Any]:
    params = unwrap(spec).get("parameters") or {}
    return params if isinstance(params, dict) else {}


def properties_of(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    props = parameters_of(spec).get("properties") or {}
    return {k: (v if isinstance(v, dict) else {}) for k, v in props.items()}


def required_of(spec: dict[str, Any]) -> list[str]:
    return [r for r in parameters_of(spec).get("required") or [] if isinstance(r, str)]


def signature(spec: dict[str, Any]) -> str:
    """name(param:type!, ...) with ! marking required parameters; what dedup compares."""
    spec = unwrap(spec)
    req = set(required_of(spec))
    parts = [
        f"{p}:{(s.get('type') or 'any')}{'!' if p in req else ''}"
        for p, s in sorted(properties_of(spec).items())
    ]
    return f"{spec.get('name', '')}({', '.join(parts)})"


def check_spec(spec: Any, where: str) -> dict[str, Any]:
    """A usable spec or a RaypipeError naming where the bad one came from."""
    if not isinstance(spec, dict):
        raise RaypipeError(f"{where}: a function spec must be an object, got {type(spec).__name__}")
    bare = unwrap(spec)
    name = bare.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RaypipeError(f"{where}.name: function spec has no name")
    params = bare.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise RaypipeError(f"{where}.parameters: must be an object")
    props = (params or {}).get("properties")
    if props is not None and not isinstance(props, dict):
        raise RaypipeError(f"{where}.parameters.properties: must be an object")
    return bare


@dataclass
class ToolPool:
    """Specs keyed by node id, in first-seen order, plus what reading them dropped."""

    tools: dict[str, dict[str, Any]] = field(default_factory=dict)
    read: int = 0
    duplicates: int = 0
    _seen: dict[str, str] = field(default_factory=dict, repr=False)  # signature -> node id

    def add(self, spec: dict[str, Any]) -> str | None:
        """Add one (already checked) spec; returns its node id, or None for a duplicate."""
        self.read += 1
        sig = signature(spec)
        if sig in self._seen:
            self.duplicates += 1
            return None
        node_id = spec["name"]
        n = 1
        while node_id in self.tools:
            n += 1
            node_id = f"{spec['name']}~{n}"
        self.tools[node_id] = spec
        self._seen[sig] = node_id
        return node_id

    def __len__(self) -> int:
        return len(self.tools)

    def ids(self) -> list[str]:
        return list(self.tools)

    def specs(self) -> list[dict[str, Any]]:
        return list(self.tools.values())

    def summary(self) -> dict[str, int]:
        return {"read": self.read, "duplicates": self.duplicates, "tools": len(self.tools)}


def pool_from_specs(specs: Iterable[dict[str, Any]], where: str = "specs") -> ToolPool:
    pool = ToolPool()
    for i, spec in enumerate(specs):
        pool.add(check_spec(spec, f"{where}[{i}]"))
    return pool


def load_tool_pool(paths: Iterable[str | Path]) -> ToolPool:
    """Read every file (see module doc) into one deduplicated pool."""
    pool = ToolPool()
    for path in paths:
        for where, spec in _specs_in_file(Path(path)):
            pool.add(check_spec(spec, where))
    if not pool.tools:
        raise RaypipeError(f"no function specs found in {', '.join(map(str, paths))}")
    return pool


def _source_format(path: str) -> tuple[str | None, str]:
    """("xlam", "data/x.json") for "xlam:data/x.json"; (None, path) otherwise (URIs included)."""
    name, sep, rest = str(path).partition(":")
    if sep and not rest.startswith("//") and name.isalpha():
        from raypipe.io.formats import formats

        if name in formats():
            return name, rest
    return None, str(path)


def _specs_via_converter(fmt_name: str, path: str) -> Iterable[tuple[str, Any]]:
    from raypipe.io import convert_file, get_format

    if not Path(path).exists():
        raise RaypipeError(f"{path}: tool file not found")
    for i, (sample, reject) in enumerate(convert_file(path, get_format(fmt_name), validate=False)):
        if sample is None:
            raise RaypipeError(f"{reject['file']}: line {reject['line']}: {reject['reason']}")
        for j, spec in enumerate(sample.functions):
            yield f"{path}: record {i}: functions[{j}]", spec


def _specs_in_file(path: Path) -> Iterable[tuple[str, Any]]:
    fmt_name, plain = _source_format(str(path))
    if fmt_name is not None:
        yield from _specs_via_converter(fmt_name, plain)
        return
    if not path.exists():
        raise RaypipeError(f"{path}: tool file not found")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for i, row in enumerate(pq.read_table(path, columns=["functions"]).to_pylist()):
            for j, f in enumerate(row["functions"] or []):
                yield f"{path}: row {i}: functions[{j}]", json.loads(f)
        return
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            specs = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RaypipeError(f"{path}: line {exc.lineno}: not valid JSON: {exc.msg}") from None
        for i, spec in enumerate(specs):
            yield f"{path}: [{i}]", spec
        return
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RaypipeError(f"{path}: line {lineno}: not valid JSON: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise RaypipeError(f"{path}: line {lineno}: expected an object")
        if "function" in obj:  # BFCL question file
            funcs = obj["function"] if isinstance(obj["function"], list) else [obj["function"]]
            key = "function"
        elif "functions" in obj:  # canonical sample
            funcs, key = obj["functions"] or [], "functions"
        elif "name" in obj or obj.get("type") == "function":  # JSON lines of specs
            funcs, key = [obj], None
        else:
            raise RaypipeError(
                f"{path}: line {lineno}: neither a function spec, a BFCL question "
                "('function') nor a sample ('functions')"
            )
        for j, spec in enumerate(funcs):
            yield (f"{path}: line {lineno}" + (f": {key}[{j}]" if key else "")), spec
