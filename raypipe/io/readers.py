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
from raypipe.io.records import iter_records
from raypipe.schema import Sample

SAMPLE_EXTENSIONS = (".parquet", ".jsonl", ".json")


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


def iter_samples(paths: list[str] | str) -> Iterator[Sample]:
    for path in fs.expand(paths, SAMPLE_EXTENSIONS):
        yield from read_sample_file(path)


def read_samples(paths_or_globs: list[str] | str):
    """A Ray Dataset of sample rows (`raypipe.schema.arrow_schema()`) from files, globs or
    dataset folders, local or any pyarrow filesystem URI. Parquet is read by Ray's parallel
    reader; JSON Lines files are read one task per file (keeping file:line in errors)."""
    import ray.data

    from raypipe.schema import arrow_schema

    files = fs.expand(paths_or_globs, SAMPLE_EXTENSIONS)
    parquet = [f for f in files if f.endswith(".parquet")]
    jsonl = [f for f in files if not f.endswith(".parquet")]
    parts = []
    if parquet:
        parts.append(ray.data.read_parquet(parquet, schema=arrow_schema()))
    if jsonl:
        parts.append(
            ray.data.from_items([{"path": p} for p in jsonl], override_num_blocks=len(jsonl))
            .map_batches(_table_of_files, batch_size=1, batch_format="pyarrow")
        )
    ds = parts[0]
    for extra in parts[1:]:
        ds = ds.union(extra)
    return ds


def _table_of_files(batch):
    import pyarrow as pa

    from raypipe.schema import arrow_schema

    rows = [s.to_row() for path in batch.column("path").to_pylist() for s in read_sample_file(path)]
    return pa.Table.from_pylist(rows, schema=arrow_schema())
