"""Typed configs: plain dataclasses filled from YAML/JSON dicts.

`load_config(SomeConfig, data, where="jobs/x.yaml: steps[0].convert")` checks every key
against the dataclass: unknown keys, missing required fields and wrong types are all
collected and raised together in one `ConfigError`, each naming its path. All defaults
live in the dataclasses; nothing is filled in silently elsewhere.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union


class ConfigError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


_MISSING = object()


def load_config(cls: type, data: Any, where: str = "config") -> Any:
    problems: list[str] = []
    value = _convert(cls, data, where, problems)
    if problems:
        raise ConfigError(problems)
    return value


def _convert(tp: Any, value: Any, path: str, problems: list[str]) -> Any:
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
            trial: list[str] = []
            out = _convert(a, value, path, trial)
            if not trial:
                return out
        problems.append(f"{path}: {value!r} matches none of {_type_name(tp)}")
        return None
    if origin is Literal:
        if value not in args:
            problems.append(f"{path}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, path, problems)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {type(value).__name__}")
            return []
        item_t = args[0] if args else Any
        return [_convert(item_t, v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping, got {type(value).__name__}")
            return {}
        val_t = args[1] if len(args) == 2 else Any
        return {k: _convert(val_t, v, f"{path}.{k}", problems) for k, v in value.items()}
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    problems.append(f"{path}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return value


def _convert_dataclass(cls: type, value: Any, path: str, problems: list[str]) -> Any:
    if isinstance(value, cls):
        return value
    if value is None:
        value = {}
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a mapping, got {type(value).__name__}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in value:
        if key not in fields:
            known = ", ".join(sorted(fields))
            problems.append(f"{path}.{key}: unknown key (known: {known})")
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = _convert(hints[name], value[name], f"{path}.{name}", problems)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"{path}.{name}: required key missing")
    if any(p.startswith(path) for p in problems):
        return None
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # __post_init__ cross-field checks
        problems.append(f"{path}: {exc}")
        return None


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
