"""Readers of canonical sample files (JSON Lines of `Sample.to_dict()` or Parquet rows).

`read_sample_file` streams one file in-process; `iter_samples` follows paths, globs and dataset
folders; `read_samples` gives a Ray Dataset of sample rows for stages to map over.
"""

from __future__ import annotations

from typing import Iterator

from raypipe.errors import RaypipeError
from raypipe.io import fs
from raypipe.io.formats import ConversionError, SourceContext
from raypipe.io.formats.canonical import convert as _canonical
from raypipe.io.dataset import expand_inputs
from raypipe.io.fs import count_newlines, iter_line_range
from raypipe.io.records import first_char, iter_records, parse_line
from raypipe.schema import Sample

SAMPLE_EXTENSIONS = (".parquet", ".jsonl", ".json")
RANGE_BYTES = 64 << 20  # JSON Lines files larger than this are read by several tasks


def read_sample_file(path: str) -> Iterator[Sample]:
    """Samples of one file; a row that is not a canonical sample raises naming file and line."""
    ctx = SourceContext(path=path, source="")
    for rec in iter_records(path):
        if rec.error:
            raise RaypipeError(f"{path}:{rec.line}: {rec.error}")
        try:
            yield _canonical(rec.value, ctx)
        except ConversionError as exc:
            raise RaypipeError(f"{path}:{rec.line}: {exc}") from None


def iter_samples(paths: list[str] | str, *, allow_incomplete: bool = False) -> Iterator[Sample]:
    for path in expand_inputs(paths, SAMPLE_EXTENSIONS, allow_incomplete=allow_incomplete):
        yield from read_sample_file(path)


def read_samples(paths_or_globs: list[str] | str, *, allow_incomplete: bool = False):
    """A Ray Dataset of sample rows (`raypipe.schema.arrow_schema()`) from files, globs or
    dataset folders (their committed files), local or any pyarrow filesystem URI. Parquet is
    read by Ray's parallel reader; JSON Lines files are cut into byte ranges of about
    `RANGE_BYTES` read by parallel tasks, each knowing its first line number (so errors still
    name file:line); a JSON-array file is one task."""
    import ray.data

    from raypipe.schema import arrow_schema

    files = expand_inputs(paths_or_globs, SAMPLE_EXTENSIONS, allow_incomplete=allow_incomplete)
    parquet = [f for f in files if f.endswith(".parquet")]
    text = [f for f in files if not f.endswith(".parquet")]
    parts = []
    if parquet:
        parts.append(ray.data.read_parquet(parquet, schema=arrow_schema()))
    if text:
        ranges = line_ranges(text)
        parts.append(
            ray.data.from_items(ranges, override_num_blocks=len(ranges))
            .map_batches(_table_of_ranges, batch_size=1, batch_format="pyarrow")
        )
    if not parts:  # a committed dataset with no rows
        return ray.data.from_arrow(arrow_schema().empty_table())
    ds = parts[0]
    for extra in parts[1:]:
        ds = ds.union(extra)
    return ds


def line_ranges(paths: list[str], range_bytes: int | None = None) -> list[dict]:
    """Work units over text files: {path, start, end, first_line}. A JSON Lines file larger
    than `range_bytes` is cut at byte offsets; the lines that *start* inside [start, end) are
    the unit's. Newlines before each cut are counted in parallel Ray tasks, so every unit
    knows the number of its first line."""
    import ray

    range_bytes = range_bytes or RANGE_BYTES
    units: list[dict] = []
    to_count: list[dict] = []
    for path in paths:
        size = fs.stat(path)[0]
        if size <= range_bytes or first_char(path) == "[":
            units.append({"path": path, "start": 0, "end": -1, "first_line": 1})
            continue
        cuts = list(range(0, size, range_bytes))
        file_units = [{"path": path, "start": a, "end": min(a + range_bytes, size), "first_line": 1}
                      for a in cuts]
        units += file_units
        to_count.append(file_units)
    if to_count:
        counter = ray.remote(num_cpus=0.25)(count_newlines)
        refs = [[counter.remote(u["path"], u["start"], u["end"]) for u in fu] for fu in to_count]
        for file_units, counts in zip(to_count, [ray.get(r) for r in refs]):
            line = 1
            for unit, n in zip(file_units, counts):
                unit["first_line"] = line
                line += n
    return units


def _table_of_ranges(batch):
    import pyarrow as pa

    from raypipe.schema import arrow_schema

    rows = []
    for unit in batch.to_pylist():
        if unit["end"] < 0:
            samples = read_sample_file(unit["path"])
        else:
            samples = _samples_in_range(unit["path"], unit["start"], unit["end"], unit["first_line"])
        rows.extend(s.to_row() for s in samples)
    return pa.Table.from_pylist(rows, schema=arrow_schema())


def _samples_in_range(path: str, start: int, end: int, first_line: int) -> Iterator[Sample]:
    ctx = SourceContext(path=path, source="")
    for line, raw in iter_line_range(path, start, end, first_line):
        if not raw.strip():
            continue
        rec = parse_line(path, line, raw)
        if rec.error:
            raise RaypipeError(f"{path}:{rec.line}: {rec.error}")
        try:
            yield _canonical(rec.value, ctx)
        except ConversionError as exc:
            raise RaypipeError(f"{path}:{rec.line}: {exc}") from None
