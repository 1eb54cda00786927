"""Writers: a dataset folder is `data/part-*.parquet|jsonl`, `rejects/part-*` and `summary.json`.

    out_dir/
      data/part-00000.parquet     samples, Arrow schema `raypipe.schema.arrow_schema()`
      rejects/part-00000.parquet  rows that could not be used: file, line, id, stage, reason, raw
      summary.json                counts (in = out + rejected), schema version, shards, sources

Shards are written as rows stream in (memory stays flat); a re-run replaces the old shards.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any, Iterable

from raypipe.io import fs
from raypipe.schema import SCHEMA_VERSION, Sample

DEFAULT_SHARD_ROWS = 50_000
OUTPUT_FORMATS = ("parquet", "jsonl")


def rejects_schema():
    import pyarrow as pa

    return pa.schema([
        ("file", pa.string()), ("line", pa.int64()), ("id", pa.string()),
        ("stage", pa.string()), ("reason", pa.string()), ("raw", pa.string()),
    ])


def make_reject(file: str, line: int | None, reason: str, raw: str, stage: str, id: str | None = None) -> dict:
    return {"file": file, "line": line, "id": id, "stage": stage, "reason": reason, "raw": raw}


class ShardWriter:
    """Rows into numbered shards `NAME-00000.parquet|jsonl` of at most `shard_rows` rows.

    `clear` removes the `part-*` shards of an earlier run first; writers that share a folder
    (one per input file, in parallel) use distinct names and let the caller clear it once.
    """

    def __init__(self, folder: str, schema, output: str = "parquet", shard_rows: int = DEFAULT_SHARD_ROWS,
                 name: str = "part", clear: bool = True):
        if output not in OUTPUT_FORMATS:
            raise ValueError(f"output must be one of {OUTPUT_FORMATS}, got {output!r}")
        self.folder, self.schema, self.output, self.shard_rows = folder, schema, output, shard_rows
        self.name = name
        self.shards: list[dict[str, Any]] = []
        self.rows = 0
        self._buffer: list[dict] = []
        self._open = None  # (writer or stream, path, rows in it)
        fs.make_dirs(folder)
        if clear:
            fs.remove_files(folder, "part-")

    def write(self, row: dict) -> None:
        self._buffer.append(row)
        self.rows += 1
        if len(self._buffer) >= 1000:
            self._flush()
        if self._open and self._open[2] + len(self._buffer) >= self.shard_rows:
            self._flush()
            self._close_shard()

    def _flush(self) -> None:
        if not self._buffer:
            return
        while self._buffer:
            if self._open is None:
                self._open_shard()
            room = self.shard_rows - self._open[2]
            chunk, self._buffer = self._buffer[:room], self._buffer[room:]
            self._write_chunk(chunk)
            if self._open[2] >= self.shard_rows:
                self._close_shard()

    def _open_shard(self) -> None:
        import pyarrow.parquet as pq

        path = fs.join(self.folder, f"{self.name}-{len(self.shards):05d}.{self.output}")
        filesystem, inner = fs.resolve(path)
        if self.output == "parquet":
            handle = pq.ParquetWriter(inner, self.schema, filesystem=filesystem, compression="zstd")
        else:
            handle = filesystem.open_output_stream(inner)
        self._open = [handle, path, 0]

    def _write_chunk(self, rows: list[dict]) -> None:
        import pyarrow as pa

        handle = self._open[0]
        if self.output == "parquet":
            handle.write_table(pa.Table.from_pylist(rows, schema=self.schema))
        else:
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            handle.write(text.encode("utf-8"))
        self._open[2] += len(rows)

    def _close_shard(self) -> None:
        handle, path, rows = self._open
        handle.close()
        self.shards.append({"path": path, "rows": rows})
        self._open = None

    def close(self) -> list[dict[str, Any]]:
        self._flush()
        if self._open:
            self._close_shard()
        return self.shards


class SampleWriter:
    """Samples and rejects into one dataset folder; `close()` writes summary.json."""

    def __init__(self, out_dir: str, output: str = "parquet", shard_rows: int = DEFAULT_SHARD_ROWS,
                 name: str = "part", clear: bool = True):
        from raypipe.schema import arrow_schema

        self.out_dir, self.output = out_dir, output
        self.data = ShardWriter(fs.join(out_dir, "data"), arrow_schema(), output, shard_rows, name, clear)
        self.rejects = ShardWriter(fs.join(out_dir, "rejects"), rejects_schema(), output, shard_rows, name, clear)

    def add(self, sample: Sample) -> None:
        if self.output == "parquet":
            self.data.write(sample.to_row())
        else:
            self.data.write(sample.to_dict())

    def reject(self, reject: dict) -> None:
        self.rejects.write(reject)

    def finish(self) -> tuple[list[dict], list[dict]]:
        """Close the shards without a summary: (data shards, reject shards)."""
        return self.data.close(), self.rejects.close()

    def close(self, summary_extra: dict | None = None) -> dict:
        data_shards, reject_shards = self.finish()
        return write_summary(self.out_dir, self.data.rows, self.rejects.rows, data_shards,
                             reject_shards, summary_extra)


def write_summary(out_dir: str, n_out: int, n_rejected: int, shards: list, reject_shards: list,
                  extra: dict | None = None) -> dict:
    summary = {
        "schema_version": SCHEMA_VERSION,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "counts": {"in": n_out + n_rejected, "out": n_out, "rejected": n_rejected},
        "shards": shards,
        "rejects_shards": reject_shards,
        **(extra or {}),
    }
    fs.write_text(fs.join(out_dir, "summary.json"), json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


def write_samples(ds_or_samples: Any, out_dir: str, *, rejects: Any = None,
                  summary_extra: dict | None = None, output: str = "parquet",
                  shard_rows: int = DEFAULT_SHARD_ROWS) -> dict:
    """Write samples (a Ray Dataset of sample rows, or an iterable of `Sample` / row dicts) and
    rejects (an iterable of reject dicts or a Ray Dataset of them) as a dataset folder."""
    if _is_ray_dataset(ds_or_samples):
        return _write_dataset(ds_or_samples, out_dir, rejects, summary_extra, shard_rows)
    writer = SampleWriter(out_dir, output, shard_rows)
    for item in ds_or_samples:
        writer.add(item if isinstance(item, Sample) else Sample.from_row(item))
    for r in _iter_rejects(rejects):
        writer.reject(r)
    return writer.close(summary_extra)


def _is_ray_dataset(obj: Any) -> bool:
    return type(obj).__module__.startswith("ray.data") and hasattr(obj, "write_parquet")


def _iter_rejects(rejects: Any) -> Iterable[dict]:
    if rejects is None:
        return []
    if _is_ray_dataset(rejects):
        return rejects.iter_rows()
    return rejects


def conform_to_sample_schema(batch):
    """Ray Data map_batches fn: cast a pyarrow batch to the canonical schema (columns in order)."""
    import pyarrow as pa

    from raypipe.schema import arrow_schema

    schema = arrow_schema()
    try:
        return batch.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, KeyError):
        return pa.Table.from_pylist(batch.to_pylist(), schema=schema)


def _write_dataset(ds, out_dir: str, rejects: Any, extra: dict | None, shard_rows: int) -> dict:
    """Ray writes the shards from the workers; counts come from the written files' footers."""
    import pyarrow.parquet as pq

    data_dir = fs.join(out_dir, "data")
    fs.make_dirs(data_dir)
    fs.remove_files(data_dir, "part-")
    filesystem, inner = fs.resolve(data_dir)
    ds.map_batches(conform_to_sample_schema, batch_format="pyarrow").write_parquet(
        inner, filesystem=filesystem, filename_provider=_part_names(), max_rows_per_file=shard_rows,
    )
    shards = []
    for path in fs.expand(data_dir, extensions=(".parquet",)):
        f_sys, f_inner = fs.resolve(path)
        with f_sys.open_input_file(f_inner) as f:
            shards.append({"path": path, "rows": pq.ParquetFile(f).metadata.num_rows})
    reject_writer = ShardWriter(fs.join(out_dir, "rejects"), rejects_schema(), "parquet", shard_rows)
    for r in _iter_rejects(rejects):
        reject_writer.write(r)
    reject_shards = reject_writer.close()
    return write_summary(out_dir, sum(s["rows"] for s in shards), reject_writer.rows, shards,
                         reject_shards, extra)


def _part_names():
    from ray.data.datasource import FilenameProvider

    class PartNames(FilenameProvider):
        def get_filename_for_task(self, write_uuid, task_index):
            return f"part-{task_index:05d}-{write_uuid}.parquet"

    return PartNames()
