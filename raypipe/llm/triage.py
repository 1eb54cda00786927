"""Triage: which input rows a run still has to do. One step inside the Ray Data pipeline, before
the stage's workers, that marks every row `new`, `done` (settled by an earlier run: it travels
on as an id-only stub, so rows in = rows seen) or `duplicate#k` (the k-th extra copy of an id
in this input: settled as a reject without a request, because a stage takes each id once).

The done set is the `_ids` files of the output's commits, loaded by a Ray task into the object
store (the driver holds only a reference, whatever the size). The triage actor keeps the ids it
has seen with the position of their first copy (a hash of the block plus the row index), so a
block that Ray runs again after a failure marks the same rows the same way.
"""

from __future__ import annotations

import hashlib
from typing import Any

STATE = "_state"


def load_done(ids_files: list[str]):
    """All settled ids (an Arrow string array). Runs as a Ray task or in-process."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raypipe.io import fs

    chunks = []
    for path in ids_files:
        filesystem, inner = fs.resolve(path)
        chunks.append(pq.read_table(inner, filesystem=filesystem).column("id"))
    if not chunks:
        return pa.array([], pa.string())
    return pa.chunked_array([c for col in chunks for c in col.chunks], pa.string()).combine_chunks()


class Triage:
    def __init__(self, done: Any = None):
        self._done_ref = done
        self._done: set[str] | None = None
        self._first: dict[str, tuple[str, int]] = {}  # id -> (block hash, row) of its first copy
        self._copies: dict[tuple[str, int], int] = {}  # (block hash, row) of an extra copy -> k
        self._extra: dict[str, int] = {}  # id -> extra copies seen so far

    def _done_set(self) -> set[str]:
        if self._done is None:
            done = self._done_ref
            if done is not None and type(done).__name__ == "ObjectRef":
                import ray

                done = ray.get(done)
            self._done = set(done.to_pylist()) if done is not None else set()
        return self._done

    def __call__(self, batch):
        import pyarrow as pa

        ids = batch.column("id").to_pylist()
        block = hashlib.sha256("\0".join(str(i) for i in ids).encode("utf-8")).hexdigest()[:16]
        done = self._done_set()
        states = []
        for n, row_id in enumerate(ids):
            where = (block, n)
            first = self._first.setdefault(row_id, where)
            if row_id in done:
                states.append("done")
            elif first == where:
                states.append("new")
            else:
                if where not in self._copies:  # number extra copies in the order first seen
                    self._extra[row_id] = self._extra.get(row_id, 0) + 1
                    self._copies[where] = self._extra[row_id]
                k = self._copies[where]
                states.append("done" if f"dup:{row_id}#{k}" in done else f"duplicate#{k}")
        out = batch.append_column(STATE, pa.array(states, pa.string()))
        settled = [s == "done" for s in states]
        if any(settled):  # id-only stubs: they count, they need no payload
            mask = pa.array(settled)
            import pyarrow.compute as pc

            keep = [pc.if_else(mask, pa.nulls(len(ids), out.column(name).type), out.column(name))
                    if name not in ("id", STATE) else out.column(name) for name in out.column_names]
            out = pa.table(keep, names=out.column_names)
        return out
