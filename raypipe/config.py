"""Typed configs: plain dataclasses filled from YAML/JSON dicts.

`load_config(SomeConfig, data, where="steps[0].convert")` checks every key against the
dataclass: unknown keys, missing required fields, wrong types and the field checks below are
all collected and raised together in one `ConfigError`, each naming its path (and, for a job
file, its line). All defaults live in the dataclasses; nothing is filled in silently elsewhere.

Field checks are declared once, as dataclass field metadata, never as per-step code:

    inputs: list[str] = input_paths()               # files, globs or folders that must exist
    out: str = output_path()                        # a folder raypipe writes (kind="file": a file)
    base_url: str = url(default="https://...")      # an http(s) URL
    api_key_env: str = env_var(default="OPENAI_API_KEY")   # the *name* of a variable
    shard_rows: int = number(ge=1, default=50_000)  # a range

Ranges, URLs and variable names are checked here, whenever a config is loaded. Paths need the
filesystem and the whole job (an input may be an earlier step's output): `raypipe.preflight`
checks them for `raypipe run --check` and before a job runs.
"""

from __future__ import annotations

import dataclasses
import re
import reprlib
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

from raypipe.errors import RaypipeError


class ConfigError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


# -- bounded repr: a config value in a message never costs more than a line ------------------

_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 5
_REPR.maxlevel = 2
MAX_REPR = 100


def short_repr(value: Any) -> str:
    """repr() cut to about MAX_REPR characters, without walking more of the value than it shows
    (a value expanded from YAML aliases may hold billions of elements)."""
    text = _REPR.repr(value)
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


# -- field checks ------------------------------------------------------------------------------

CHECK_KEY = "raypipe.check"


@dataclass(frozen=True)
class FieldCheck:
    """What a field holds, for the checks. `kind`: input | output | url | env | number."""

    kind: str
    output_kind: str = "dir"  # outputs: "dir" (a folder raypipe fills) or "file"
    format_prefix: bool = False  # inputs: "FORMAT:PATH" names a path read by a converter
    shared: bool = False  # outputs: a store many steps write on purpose (a cache)
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def value_problem(self, value: Any) -> str | None:
        """The problem with a value that needs no filesystem, or None."""
        if self.kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
            for bound, ok, word in ((self.ge, lambda b: value >= b, ">="), (self.gt, lambda b: value > b, ">"),
                                    (self.le, lambda b: value <= b, "<="), (self.lt, lambda b: value < b, "<")):
                if bound is not None and not ok(bound):
                    return f"must be {word} {bound:g}, got {short_repr(value)}"
        elif self.kind == "url" and isinstance(value, str):
            return url_problem(value)
        elif self.kind == "env" and isinstance(value, str):
            if not ENV_NAME.fullmatch(value):
                return (f"{short_repr(value)} is not an environment variable name (letters, digits "
                        "and _, not starting with a digit); it names the variable, never holds the key")
        return None


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def url_problem(value: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"{short_repr(value)} is not a URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{short_repr(value)} is not a URL (expected http://host[:port]/... or https://...)"
    return None


def _field(check: FieldCheck, kw: dict) -> Any:
    metadata = {**kw.pop("metadata", {}), CHECK_KEY: check}
    return dataclasses.field(metadata=metadata, **kw)


def input_paths(format_prefix: bool = False, **kw) -> Any:
    """Files, globs or folders (one or a list) that must exist when the step runs."""
    return _field(FieldCheck("input", format_prefix=format_prefix), kw)


def output_path(kind: str = "dir", shared: bool = False, **kw) -> Any:
    """Where the step writes: a folder (kind="dir") or a file. Must be writable, not an input,
    and written by no other step unless `shared` (a cache steps share on purpose)."""
    return _field(FieldCheck("output", output_kind=kind, shared=shared), kw)


def url(**kw) -> Any:
    return _field(FieldCheck("url"), kw)


def env_var(**kw) -> Any:
    return _field(FieldCheck("env"), kw)


def number(ge: float | None = None, gt: float | None = None, le: float | None = None,
           lt: float | None = None, **kw) -> Any:
    return _field(FieldCheck("number", ge=ge, gt=gt, le=le, lt=lt), kw)


def field_check(f: dataclasses.Field) -> FieldCheck | None:
    return f.metadata.get(CHECK_KEY)


# -- loading -----------------------------------------------------------------------------------


class Problems(list):
    """Problems, each `<where>.<field path>: message`, or with a job file's lines
    `<file>:<line>: <where>.<field path>: message`."""

    def __init__(self, where: str, file: str | None, lines: dict[str, int] | None):
        super().__init__()
        self.where, self.file, self.lines = where, file, lines or {}

    def add(self, path: str, message: str) -> None:
        shown = path[1:] if path.startswith(".") else path  # fields of the root: no leading dot
        if self.file is None:
            self.append(f"{shown}: {message}")
            return
        rel = path[len(self.where):] if path.startswith(self.where) else path
        line = None
        probe = rel
        while line is None:
            line = self.lines.get(probe)
            if not probe:
                break
            probe = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", probe)
        self.append(f"{self.file}:{line}: {shown}: {message}" if line else f"{self.file}: {shown}: {message}")


def load_config(cls: type, data: Any, where: str = "config", *, file: str | None = None,
                lines: dict[str, int] | None = None) -> Any:
    """A typed `cls` from plain data; every problem at once in a ConfigError. With `file` and
    `lines` (field path relative to `where` -> line, as `raypipe.safeyaml` gives), each problem
    names the file and line."""
    problems = Problems(where, file, lines)
    value = _convert(cls, data, where, problems)
    if problems:
        raise ConfigError(list(problems))
    return value


def _convert(tp: Any, value: Any, path: str, problems: Problems) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _convert(non_none[0], value, path, problems)
        for a in non_none:  # first alternative that converts cleanly
            trial = Problems(problems.where, None, None)
            out = _convert(a, value, path, trial)
            if not trial:
                return out
        problems.add(path, f"{short_repr(value)} matches none of {_type_name(tp)}")
        return None
    if origin is Literal:
        if not _hashable(value) or value not in args:
            problems.add(path, f"{short_repr(value)} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, path, problems)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, list):
            problems.add(path, f"expected a list, got {type(value).__name__}")
            return []
        item_t = args[0] if args else Any
        return [_convert(item_t, v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            problems.add(path, f"expected a mapping, got {type(value).__name__}")
            return {}
        key_t = args[0] if len(args) == 2 else Any
        val_t = args[1] if len(args) == 2 else Any
        out = {}
        for k, v in value.items():
            if key_t is str and not isinstance(k, str):
                problems.add(f"{path}.{_key(k)}", f"keys must be strings, got {type(k).__name__}")
            out[k] = _convert(val_t, v, f"{path}.{_key(k)}", problems)
        return out
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    problems.add(path, f"expected {_type_name(tp)}, got {type(value).__name__} {short_repr(value)}")
    return value


def _key(key: Any) -> str:
    """A mapping key as a field path shows it (bounded: keys come from the user's file)."""
    text = str(key) if isinstance(key, (str, int, float, bool)) or key is None else short_repr(key)
    return text if len(text) <= 60 else short_repr(text)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _convert_dataclass(cls: type, value: Any, path: str, problems: Problems) -> Any:
    if isinstance(value, cls):
        return value
    if value is None:
        value = {}
    if not isinstance(value, dict):
        problems.add(path, f"expected a mapping, got {type(value).__name__}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    before = len(problems)
    for key in value:
        if key not in fields:
            known = ", ".join(sorted(fields))
            problems.add(f"{path}.{_key(key)}", f"unknown key (known: {known})")
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = _convert(hints[name], value[name], f"{path}.{name}", problems)
            check = field_check(f)
            problem = check.value_problem(kwargs[name]) if check else None
            if problem:
                problems.add(f"{path}.{name}", problem)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.add(f"{path}.{name}", "required key missing")
    if len(problems) > before:
        return None
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # a __post_init__ that loads a nested config (e.g. `llm: {...}`)
        for problem in exc.problems:
            problems.add(path, problem)
        return None
    except (ValueError, TypeError, RaypipeError) as exc:  # __post_init__ cross-field checks
        message = " ".join(str(exc).split())  # their {value!r} is not bounded: the message is
        problems.add(path, message if len(message) <= 300 else message[:297] + "...")
        return None


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
