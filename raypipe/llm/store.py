"""The on-disk layout of an LLM stage's output, and how resume reads it back.

    out_dir/data/part-<uid>.parquet      output rows of one input batch
    out_dir/rejects/part-<uid>.parquet   rejected input rows of that batch, with reasons
    out_dir/_done/part-<uid>.json        completion marker: the input ids the batch finished,
                                         its files and counts; written last (tmp + rename)
    out_dir/summary.json

A batch counts only once its marker exists. A run killed between writing a batch's Parquet
files and its marker leaves orphan files that the next run deletes before it starts (and its
rows are redone; their answers come from the request cache, so nothing is paid twice).
Everything goes through `pyarrow.fs`, so `out_dir` may be a local path or an s3:// URI.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from raypipe.llm.cache import resolve_fs

REJECT_COLUMNS = ("file", "line", "id", "stage", "reason", "raw")


def rejects_schema():
    import pyarrow as pa

    return pa.schema(
        [("file", pa.string()), ("line", pa.int64()), ("id", pa.string()),
         ("stage", pa.string()), ("reason", pa.string()), ("raw", pa.string())]
    )


class StageStore:
    def __init__(self, out_uri: str):
        self.out_uri = out_uri
        self._fs = None
        self._root = ""

    def __getstate__(self):
        return {"out_uri": self.out_uri, "_fs": None, "_root": ""}

    @property
    def fs(self):
        if self._fs is None:
            self._fs, self._root = resolve_fs(self.out_uri)
        return self._fs

    def path(self, *parts: str) -> str:
        self.fs
        return "/".join([self._root.rstrip("/"), *[p for p in parts if p]])

    # -- writing (workers) ------------------------------------------------------------------
    def _write_atomic(self, rel_dir: str, name: str, write) -> None:
        fs = self.fs
        directory = self.path(rel_dir)
        fs.create_dir(directory, recursive=True)
        tmp = f"{directory}/.tmp-{uuid.uuid4().hex}"
        write(tmp)
        fs.move(tmp, f"{directory}/{name}")

    def write_batch(self, ids: list[str], data, rejects, counts: dict[str, Any]) -> str:
        """Write one finished input batch: Parquet files first, then its marker."""
        import pyarrow.parquet as pq

        uid = uuid.uuid4().hex[:20]
        marker: dict[str, Any] = {"ids": ids, "data": None, "rejects": None, **counts}
        for kind, table in (("data", data), ("rejects", rejects)):
            if table is not None and table.num_rows:
                name = f"part-{uid}.parquet"
                self._write_atomic(kind, name, lambda p, t=table: pq.write_table(t, p, filesystem=self.fs))
                marker[kind] = f"{kind}/{name}"
        body = json.dumps(marker, ensure_ascii=False).encode("utf-8")

        def write_marker(p: str) -> None:
            with self.fs.open_output_stream(p) as f:
                f.write(body)

        self._write_atomic("_done", f"part-{uid}.json", write_marker)
        return uid

    def write_summary(self, summary: dict) -> None:
        body = json.dumps(summary, indent=2, sort_keys=True, default=str).encode("utf-8")

        def write(p: str) -> None:
            with self.fs.open_output_stream(p) as f:
                f.write(body)

        self._write_atomic("", "summary.json", write)

    # -- reading (driver) --------------------------------------------------------------------
    def _list(self, rel_dir: str) -> list[str]:
        from pyarrow import fs as pafs

        info = self.fs.get_file_info(self.path(rel_dir))
        if info.type != pafs.FileType.Directory:
            return []
        return [
            f.path for f in self.fs.get_file_info(pafs.FileSelector(self.path(rel_dir)))
            if f.type == pafs.FileType.File
        ]

    def read_markers(self) -> list[dict]:
        markers = []
        for p in sorted(self._list("_done")):
            if not p.rsplit("/", 1)[-1].startswith("part-"):
                continue
            with self.fs.open_input_stream(p) as f:
                markers.append(json.loads(f.read().decode("utf-8")))
        return markers

    def remove_orphans(self, markers: list[dict]) -> int:
        """Delete files no marker refers to (left by a killed run). Only call when no worker
        of this stage is running."""
        keep = {m[k] for m in markers for k in ("data", "rejects") if m.get(k)}
        removed = 0
        for rel_dir in ("data", "rejects", "_done", ""):
            for p in self._list(rel_dir):
                name = p.rsplit("/", 1)[-1]
                rel = f"{rel_dir}/{name}"
                if name.startswith(".tmp-") or (rel_dir in ("data", "rejects") and rel not in keep):
                    self.fs.delete_file(p)
                    removed += 1
        return removed
