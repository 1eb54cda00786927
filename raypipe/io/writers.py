"""Writers of sample datasets, all through the commit contract (`raypipe.io.dataset`).

    out_dir/
      data/<gen>-<name>.parquet     samples, Arrow schema `raypipe.schema.arrow_schema()`
      rejects/<gen>-<name>.parquet  rows that could not be used: file, line, id, stage, reason, raw
      _commits/ _manifest.json      what is committed (readers read through it)
      summary.json                  counts (in = out + rejected), schema version, shards, sources

`ShardWriter` streams rows into shards (memory stays flat) and commits each shard as it closes;
`write_samples` writes a whole Ray Dataset (committed batch by batch from the workers) or an
iterable, in a new generation that replaces the old output only once it is complete.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from typing import Any, Iterable

from raypipe.io import fs
from raypipe.io.dataset import DATA, REJECTS, DatasetWriter, begin_write
from raypipe.schema import SCHEMA_VERSION, Sample

DEFAULT_SHARD_ROWS = 50_000
OUTPUT_FORMATS = ("parquet", "jsonl")
REJECT_COLUMNS = ("file", "line", "id", "stage", "reason", "raw")


def rejects_schema():
    """The one schema of every rejects file raypipe writes."""
    import pyarrow as pa

    return pa.schema([
        ("file", pa.string()), ("line", pa.int64()), ("id", pa.string()),
        ("stage", pa.string()), ("reason", pa.string()), ("raw", pa.string()),
    ])


def make_reject(file: str, line: int | None, reason: str, raw: str, stage: str, id: str | None = None) -> dict:
    return {"file": file, "line": line, "id": id, "stage": stage, "reason": reason, "raw": raw}


def check_shard_rows(shard_rows: int) -> int:
    from raypipe.errors import RaypipeError

    if not isinstance(shard_rows, int) or shard_rows < 1:
        raise RaypipeError(f"shard_rows must be a whole number >= 1, got {shard_rows!r}")
    return shard_rows


class ShardWriter:
    """Rows of one kind (data or rejects) into shards of at most `shard_rows` rows, each
    committed as `<name>-<d|r><k>` when it closes (deterministic names: a retried task that
    writes the same rows overwrites its own shards)."""

    def __init__(self, writer: DatasetWriter, kind: str, schema, name: str, output: str = "parquet",
                 shard_rows: int = DEFAULT_SHARD_ROWS):
        if output not in OUTPUT_FORMATS:
            raise ValueError(f"output must be one of {OUTPUT_FORMATS}, got {output!r}")
        self.writer, self.kind, self.schema, self.name = writer, kind, schema, name
        self.output, self.shard_rows = output, check_shard_rows(shard_rows)
        self.shards: list[dict[str, Any]] = []
        self.rows = 0
        self._buffer: list[dict] = []
        self._open = None  # [handle, commit name, relative path, rows in it]

    def write(self, row: dict) -> None:
        self._buffer.append(row)
        self.rows += 1
        if len(self._buffer) >= 1000:
            self._flush()
        if self._open and self._open[3] + len(self._buffer) >= self.shard_rows:
            self._flush()

    def _flush(self) -> None:
        while self._buffer:
            if self._open is None:
                self._open_shard()
            room = self.shard_rows - self._open[3]
            chunk, self._buffer = self._buffer[:room], self._buffer[room:]
            self._write_chunk(chunk)
            if self._open[3] >= self.shard_rows:
                self._close_shard()

    def _open_shard(self) -> None:
        import pyarrow.parquet as pq

        commit = f"{self.name}-{self.kind[0]}{len(self.shards):05d}"
        rel = self.writer.file_path(self.kind, commit, "." + self.output)
        filesystem, inner = fs.resolve(fs.join(self.writer.out, rel))
        filesystem.create_dir(inner.rsplit("/", 1)[0], recursive=True)
        if self.output == "parquet":
            handle = pq.ParquetWriter(inner, self.schema, filesystem=filesystem, compression="zstd")
        else:
            handle = filesystem.open_output_stream(inner)
        self._open = [handle, commit, rel, 0]

    def _write_chunk(self, rows: list[dict]) -> None:
        import pyarrow as pa

        handle = self._open[0]
        if self.output == "parquet":
            handle.write_table(pa.Table.from_pylist(rows, schema=self.schema))
        else:
            handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8"))
        self._open[3] += len(rows)

    def _close_shard(self) -> None:
        handle, commit, rel, rows = self._open
        handle.close()
        self.writer.commit(commit, written={self.kind: (rel, rows)})
        self.shards.append({"path": fs.join(self.writer.out, rel), "rows": rows})
        self._open = None

    def close(self) -> list[dict[str, Any]]:
        self._flush()
        if self._open:
            self._close_shard()
        return self.shards


class SampleWriter:
    """Samples and rejects of one unit of work (one input file, one iterable) into shards
    named `<name>-d<k>` / `<name>-r<k>`."""

    def __init__(self, writer: DatasetWriter, name: str = "part", output: str = "parquet",
                 shard_rows: int = DEFAULT_SHARD_ROWS):
        from raypipe.schema import arrow_schema

        self.output = output
        self.data = ShardWriter(writer, DATA, arrow_schema(), name, output, shard_rows)
        self.rejects = ShardWriter(writer, REJECTS, rejects_schema(), name, output, shard_rows)

    def add(self, sample: Sample) -> None:
        self.data.write(sample.to_row() if self.output == "parquet" else sample.to_dict())

    def reject(self, reject: dict) -> None:
        self.rejects.write(reject)

    def finish(self) -> tuple[list[dict], list[dict]]:
        """Close (and commit) the last shards: (data shards, reject shards)."""
        return self.data.close(), self.rejects.close()


def summary_body(n_out: int, n_rejected: int, shards: list, reject_shards: list,
                 extra: dict | None = None) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "counts": {"in": n_out + n_rejected, "out": n_out, "rejected": n_rejected},
        "shards": shards,
        "rejects_shards": reject_shards,
        **(extra or {}),
    }


def write_samples(ds_or_samples: Any, out_dir: str, *, rejects: Any = None,
                  summary_extra: dict | None = None, output: str = "parquet",
                  shard_rows: int = DEFAULT_SHARD_ROWS, inputs: Iterable[str] = (),
                  stage: str = "write", order_column: str | None = None) -> dict:
    """Write samples (a Ray Dataset of sample rows, or an iterable of `Sample` / row dicts) and
    rejects (an iterable of reject dicts or a Ray Dataset of them) as a new generation of
    `out_dir`, which replaces the old one only once it is complete. `inputs` are refused as the
    output. With `order_column` (Ray Datasets) shards are named so that reading them in name
    order gives the rows in that column's order; the column itself is not written."""
    check_shard_rows(shard_rows)
    with begin_write(out_dir, stage, inputs) as writer:
        if _is_ray_dataset(ds_or_samples):
            _commit_dataset(ds_or_samples, writer, DATA, shard_rows, order_column)
            bad = _commit_dataset(rejects, writer, REJECTS, shard_rows, None) if _is_ray_dataset(rejects) else None
            if bad is None:
                sw = ShardWriter(writer, REJECTS, rejects_schema(), "rejects", "parquet", shard_rows)
                for r in rejects or []:
                    sw.write(r)
                sw.close()
        else:
            sw = SampleWriter(writer, "part", output, shard_rows)
            for item in ds_or_samples:
                sw.add(item if isinstance(item, Sample) else Sample.from_row(item))
            for r in _iter_rejects(rejects):
                sw.reject(r)
            sw.finish()
        return finalize_samples(writer, summary_extra)


def finalize_samples(writer: DatasetWriter, extra: dict | None = None,
                     extra_manifest: dict | None = None) -> dict:
    """Finalize a sample dataset: summary.json from the commit records, then the manifest."""
    records = writer.records()
    n_out = sum(r["rows"] for r in records)
    n_rejected = sum(r["rejected"] for r in records)
    shards = [{"path": fs.join(writer.out, r[DATA]), "rows": r["rows"]} for r in records if r.get(DATA)]
    reject_shards = [{"path": fs.join(writer.out, r[REJECTS]), "rows": r["rejected"]}
                     for r in records if r.get(REJECTS)]
    summary = summary_body(n_out, n_rejected, sorted(shards, key=lambda s: s["path"]),
                           sorted(reject_shards, key=lambda s: s["path"]), extra)
    writer.finalize(rows_in=None, summary=summary, extra_manifest=extra_manifest)
    return summary


def _is_ray_dataset(obj: Any) -> bool:
    return type(obj).__module__.startswith("ray.data") and hasattr(obj, "write_parquet")


def _iter_rejects(rejects: Any) -> Iterable[dict]:
    if rejects is None:
        return []
    if _is_ray_dataset(rejects):
        return rejects.iter_rows()
    return rejects


def _commit_dataset(ds, writer: DatasetWriter, kind: str, shard_rows: int, order_column: str | None) -> int:
    """Each batch is committed by the worker that made it; the driver only adds up counts."""
    import ray.data

    rows = 0
    options = ray.data.DataContext.get_current().execution_options
    saved = options.preserve_order
    if order_column is not None:  # batches of adjacent rows, so each shard is one run of the order
        options.preserve_order = True
    try:
        out = ds.map_batches(_commit_batch, fn_kwargs={"writer": writer, "kind": kind,
                                                       "order_column": order_column},
                             batch_size=shard_rows, batch_format="pyarrow")
        for batch in out.iter_batches(batch_size=None, batch_format="pyarrow"):
            rows += sum(batch.column("rows").to_pylist())
    finally:
        options.preserve_order = saved
    return rows


def batch_name(table, order_column: str | None = None) -> str:
    """A name from the batch's content: a retried task recomputes the same name. With an
    order column, prefixed by the batch's first position so names sort in that order."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    digest = hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()[:20]
    if order_column is None:
        return f"b{digest}"
    first = min(table.column(order_column).to_pylist()) + 2**63  # int64 keys, sortable as text
    return f"o{int(first):020d}-{digest}"


def _commit_batch(batch, writer: DatasetWriter, kind: str, order_column: str | None):
    import pyarrow as pa

    if batch.num_rows == 0:
        return pa.table({"rows": pa.array([0], pa.int64())})
    name = batch_name(batch, order_column)
    if kind == DATA:
        table = conform_to_sample_schema(batch.drop_columns([order_column]) if order_column else batch)
        writer.commit(name, data=table)
    else:
        writer.commit(name, rejects=batch.select(list(REJECT_COLUMNS)).cast(rejects_schema()))
    return pa.table({"rows": pa.array([batch.num_rows], pa.int64())})


def conform_to_sample_schema(batch):
    """A pyarrow batch cast to the canonical schema (columns in order)."""
    import pyarrow as pa

    from raypipe.schema import arrow_schema

    schema = arrow_schema()
    try:
        return batch.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, KeyError):
        return pa.Table.from_pylist(batch.to_pylist(), schema=schema)
