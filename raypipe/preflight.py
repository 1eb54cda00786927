"""Checks of a whole job that need the filesystem: `raypipe run --check`, and before a run.

Step configs declare what their fields hold (`raypipe.config.input_paths`, `output_path`);
this walks every step's config (nested configs and lists of them too) and reports, all at once:

- an input that does not exist and that no earlier step of the job writes;
- an output that is a file where a folder is needed (or the reverse), lies under a file, or
  cannot be written;
- an output that is one of its step's inputs, holds one, or lies inside an input folder;
- two steps writing the same output.

Values (ranges, URLs, variable names) were already checked when the config was loaded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator

from raypipe.config import FieldCheck, Problems, field_check
from raypipe.io import paths
from raypipe.io.fs import is_uri


@dataclass
class PathField:
    field: str  # field path inside the step, e.g. ".sources[1].inputs[0]"
    value: str
    check: FieldCheck


def path_fields(config: Any, prefix: str = "") -> Iterator[PathField]:
    """Every declared input/output path of a config, with its field path."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        return
    for f in dataclasses.fields(config):
        value = getattr(config, f.name, None)
        where = f"{prefix}.{f.name}"
        check = field_check(f)
        if check is not None and check.kind in ("input", "output"):
            values = value if isinstance(value, list) else [value]
            for i, item in enumerate(values):
                if isinstance(item, str):
                    shown = f"{where}[{i}]" if isinstance(value, list) else where
                    yield PathField(shown, _strip_format(item) if check.format_prefix else item, check)
            continue
        if dataclasses.is_dataclass(value):
            yield from path_fields(value, where)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                yield from path_fields(item, f"{where}[{i}]")
        elif isinstance(value, dict):
            for key, item in value.items():
                yield from path_fields(item, f"{where}.{key}")


def raw_path_fields(cls: type, data: Any, prefix: str = "") -> Iterator[PathField]:
    """The same from the raw data of a config that did not load (its other problems are
    reported already; its paths are checked all the same)."""
    import typing

    if not dataclasses.is_dataclass(cls) or not isinstance(data, dict):
        return
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation that cannot be resolved here: nothing to walk
        return
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value, where, check = data[f.name], f"{prefix}.{f.name}", field_check(f)
        if check is not None and check.kind in ("input", "output"):
            values = value if isinstance(value, list) else [value]
            for i, item in enumerate(values):
                if isinstance(item, str):
                    shown = f"{where}[{i}]" if isinstance(value, list) else where
                    yield PathField(shown, _strip_format(item) if check.format_prefix else item, check)
            continue
        for inner in _dataclass_types(hints.get(f.name)):
            if isinstance(value, list):
                for i, item in enumerate(value):
                    yield from raw_path_fields(inner, item, f"{where}[{i}]")
            else:
                yield from raw_path_fields(inner, value, where)


def _dataclass_types(tp: Any) -> list[type]:
    import typing

    if dataclasses.is_dataclass(tp):
        return [tp]
    return [t for arg in typing.get_args(tp) for t in _dataclass_types(arg)]


def _strip_format(path: str) -> str:
    """`xlam:data/x.json` -> `data/x.json` (tool files given with their converter's name)."""
    name, sep, rest = path.partition(":")
    if sep and not rest.startswith("//") and name.isalpha():
        from raypipe.io.formats import formats

        if name in formats():
            return rest
    return path


def _written_before(path: str, outputs: list[tuple[str, PathField]]) -> bool:
    """Whether an earlier step writes `path` (or the folder holding it)."""
    if is_uri(path):
        return False
    target = paths.glob_base(path)
    for _, out in outputs:
        base = paths.local_path(out.value)
        if target == base or (out.check.output_kind == "dir" and paths.is_under(target, base)):
            return True
    return False


def check_job(planned: list) -> list[str]:
    """Every path problem of a planned job (`raypipe.jobs.load_job`), each naming file, line
    and field, in step order. A step whose config did not load has `config` None and `raw`, its
    data as given: its paths are read from that."""
    found: list[str] = []
    earlier_outputs: list[tuple[str, PathField]] = []  # (step where, field)
    for p in planned:
        problems = Problems(p.where, p.file, p.lines)
        fields = list(path_fields(p.config) if p.config is not None
                      else raw_path_fields(p.step.config, p.raw))
        inputs = [f for f in fields if f.check.kind == "input"]
        outputs = [f for f in fields if f.check.kind == "output"]
        for f in inputs:
            if _written_before(f.value, earlier_outputs):
                continue
            problem = paths.input_problem(f.value)
            if problem:
                problems.add(p.where + f.field, problem)
        for f in outputs:
            problem = (paths.output_problem(f.value, f.check.output_kind)
                       or paths.overlap_problem(f.value, [i.value for i in inputs], f.check.output_kind))
            if problem is None and not is_uri(f.value) and not f.check.shared:
                same = [w + o.field for w, o in earlier_outputs if not is_uri(o.value) and not o.check.shared
                        and paths.local_path(o.value) == paths.local_path(f.value)]
                if same:
                    problem = f"{f.value}: {same[0]} writes it too (one writer per output)"
            if problem:
                problems.add(p.where + f.field, problem)
        earlier_outputs += [(p.where, f) for f in outputs]
        found += problems
    return found
