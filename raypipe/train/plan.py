"""What trains when: the data plan every worker follows, identical under Ray Train and in process.

The driver turns the prepared rows (`raypipe.train.data`) into *units*, the things a
micro-batch holds: one row (or one DPO pair), or, with packing, a fixed-length packed row of
several samples (first-fit decreasing over `num_tokens`, before any split). Each epoch is a
permutation of the units drawn from `(seed, epoch)`; optimizer step s of the epoch takes units
`[s*G, (s+1)*G)` of it (G = global batch), and rank r takes the r-th slice of those, split
into its micro-batches. So a rank knows exactly which units it trains at any step: a restarted
run jumps to the step it resumes at, reads the same rows, and the in-process recipe (one rank)
sees the same units per step, in the same order, as N Ray Train workers.

Rows are read by the workers themselves from the tokenized Parquet (the driver handles only
the small index columns): at the start of an epoch each rank reads the rows of its units for
that epoch, one file at a time, so a worker holds about 1/N of the data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

PLAN_FILE = "plan.json"
ITEMS_FILE = "items.npz"


@dataclass
class TrainPlan:
    files: list[str]  # tokenized Parquet files, in the order item_file indexes them
    item_file: np.ndarray  # per item (a row as used in an epoch; ratios repeat rows): file index
    item_row: np.ndarray  # row within that file
    item_source: np.ndarray  # source index (per-source loss)
    item_id: np.ndarray  # row id (str)
    item_tokens: np.ndarray  # tokens of the row (pairs: both sides)
    unit_offsets: np.ndarray  # unit u holds items unit_items[unit_offsets[u]:unit_offsets[u+1]]
    unit_items: np.ndarray
    pack_len: int | None  # tokens per packed row; None: one row per unit, padded per micro-batch
    pairs: bool = False
    rows: list[dict[str, Any]] | None = None  # rows in memory instead of files (the GPU bench)

    @property
    def num_units(self) -> int:
        return len(self.unit_offsets) - 1

    def members(self, unit: int) -> np.ndarray:
        return self.unit_items[self.unit_offsets[unit]:self.unit_offsets[unit + 1]]

    def fingerprint(self) -> str:
        """Changes when any unit's rows (ids, token counts) or their order change: a resumed run
        must train on the same plan."""
        h = hashlib.sha256()
        h.update(json.dumps({"pack_len": self.pack_len, "pairs": self.pairs}).encode())
        h.update(np.ascontiguousarray(self.unit_offsets, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(self.item_tokens[self.unit_items], dtype=np.int64).tobytes())
        h.update("\n".join(self.item_id[self.unit_items].tolist()).encode())
        return h.hexdigest()[:16]

    def epoch_order(self, epoch: int, seed: int) -> np.ndarray:
        return np.random.default_rng([seed, epoch]).permutation(self.num_units)

    def step_units(self, order: np.ndarray, step: int, global_batch: int) -> np.ndarray:
        return order[step * global_batch:(step + 1) * global_batch]

    def step_ids(self, epoch: int, step: int, seed: int, global_batch: int) -> list[str]:
        """Row ids of one optimizer step, in training order (all ranks, rank by rank)."""
        units = self.step_units(self.epoch_order(epoch, seed), step, global_batch)
        return [str(self.item_id[i]) for u in units for i in self.members(int(u))]

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / ITEMS_FILE, item_file=self.item_file, item_row=self.item_row,
                 item_source=self.item_source, item_id=self.item_id.astype(str), item_tokens=self.item_tokens,
                 unit_offsets=self.unit_offsets, unit_items=self.unit_items)
        (directory / PLAN_FILE).write_text(json.dumps({
            "files": self.files, "pack_len": self.pack_len, "pairs": self.pairs,
            "units": self.num_units, "items": len(self.item_id), "fingerprint": self.fingerprint(),
        }, indent=1))

    @classmethod
    def load(cls, directory: str | Path) -> "TrainPlan":
        directory = Path(directory)
        meta = json.loads((directory / PLAN_FILE).read_text())
        with np.load(directory / ITEMS_FILE, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return cls(files=meta["files"], pack_len=meta["pack_len"], pairs=meta["pairs"], **arrays)


def rows_digest(ids: list[str]) -> str:
    """A short digest of the row ids of a step (recorded per step in metrics.json)."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def build_units(lengths: np.ndarray, pack_len: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(unit_offsets, unit_items): one item per unit, or items packed first-fit decreasing into
    units of at most `pack_len` tokens (items in the order given; the packing is deterministic)."""
    if pack_len is None:
        return np.arange(len(lengths) + 1, dtype=np.int64), np.arange(len(lengths), dtype=np.int64)
    from raypipe.templates.batching import first_fit_decreasing

    bins = first_fit_decreasing([int(x) for x in lengths], pack_len)
    offsets = np.zeros(len(bins) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in bins])
    items = np.fromiter((i for b in bins for i in b), dtype=np.int64, count=int(offsets[-1]))
    return offsets, items


def rank_steps(plan: TrainPlan, epoch: int, seed: int, first_step: int, steps: int, *, rank: int,
               micro_batch: int, accum: int, world: int) -> Iterator[tuple[list[list[int]], list[str]]]:
    """For each optimizer step `first_step..steps-1` of `epoch`: this rank's micro-batches (lists
    of units) and the row ids it trains in that step, in order."""
    order = plan.epoch_order(epoch, seed)
    per_rank = micro_batch * accum
    for step in range(first_step, steps):
        units = plan.step_units(order, step, per_rank * world)[rank * per_rank:(rank + 1) * per_rank]
        micro = [[int(u) for u in units[i * micro_batch:(i + 1) * micro_batch]] for i in range(accum)]
        yield micro, [str(plan.item_id[i]) for u in units for i in plan.members(int(u))]


class RowStore:
    """The rows of one epoch's units for one rank, read from the tokenized Parquet (or memory)."""

    def __init__(self, plan: TrainPlan, columns: tuple[str, ...]) -> None:
        self.plan = plan
        self.columns = columns
        self.rows: dict[int, dict[str, Any]] = {}

    def load(self, units: list[int]) -> None:
        """Keep exactly the rows of `units` (reading each needed file once)."""
        plan = self.plan
        items = np.unique(np.concatenate([plan.members(u) for u in units])) if units else np.array([], np.int64)
        self.rows = {}
        if plan.rows is not None:
            self.rows = {int(i): plan.rows[int(i)] for i in items}
            return
        import pyarrow.parquet as pq

        for f in np.unique(plan.item_file[items]):
            mine = items[plan.item_file[items] == f]
            table = pq.read_table(plan.files[int(f)], columns=list(self.columns))
            taken = table.take(plan.item_row[mine])
            cols = {name: _list_column(taken.column(name)) for name in self.columns}
            for k, item in enumerate(mine):
                self.rows[int(item)] = {name: cols[name][k] for name in self.columns}
        for item in items:
            row = self.rows[int(item)]
            row["id"] = str(plan.item_id[item])
            row["source_idx"] = int(plan.item_source[item])

    def unit_rows(self, unit: int) -> list[dict[str, Any]]:
        return [self.rows[int(i)] for i in self.plan.members(unit)]


def _list_column(column) -> list[np.ndarray]:
    """A list<int> column as one numpy view per row (no Python lists of ints)."""
    arr = column.combine_chunks()
    values = arr.values.to_numpy(zero_copy_only=False)
    offsets = arr.offsets.to_numpy()
    return [values[offsets[i]:offsets[i + 1]] for i in range(len(arr))]
