"""Training mixtures from named datasets (the paper's IF-110k + FC-110k + NF-1k + TC-19k).

Each source names its files and how much of it to take: a `count`, a `fraction` of the
source, or a `share` of the mixture's `total`. The mixture is built on Ray Data:

1. every row is tagged with its source, the source's rank (order in the config) and two
   keys derived from (seed, id): one to pick rows, one to order the mixture;
2. rows with an id seen more than once are deduplicated: the copy from the earliest source
   wins (it is then subject to its source's selection like any row), the others go to the
   rejects with the winner's source named;
3. each source's rows are sorted by their pick key and the first `n` taken: a seeded choice
   that does not depend on how the data is partitioned;
4. the mixture is sorted by its order key (a seeded shuffle, again partition-independent;
   the keys are uniform hashes, so plain Ray tasks cut and merge equal key ranges without
   Ray Data's sampling sort), each row's `meta["mix"]` records its source name, and stats
   are computed per source.

Asking for more rows than a source has (after dedup) is an error naming the source: a
mixture never repeats rows silently.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from raypipe.config import input_paths, output_path

STAGE = "synth_mix"
SOURCE_COL, RANK_COL, PICK_COL, ORDER_COL = "_mix_source", "_mix_rank", "_mix_pick", "_mix_order"


@dataclass
class MixSource:
    name: str
    inputs: list[str] = input_paths()
    count: int | None = None  # take exactly this many rows
    fraction: float | None = None  # take this fraction of the source (rounded)
    share: float | None = None  # this fraction of the mixture's `total`

    def __post_init__(self) -> None:
        given = [k for k in ("count", "fraction", "share") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"source {self.name!r}: give one of count, fraction, share (got {', '.join(given)})")
        if self.count is not None and self.count < 0:
            raise ValueError(f"source {self.name!r}: count must be >= 0")
        for key in ("fraction", "share"):
            v = getattr(self, key)
            if v is not None and not 0.0 <= v <= 1.0:
                raise ValueError(f"source {self.name!r}: {key} must be in [0, 1]")
        if not self.inputs:
            raise ValueError(f"source {self.name!r}: no inputs")


def plan_counts(sources: list[MixSource], available: dict[str, int], total: int | None) -> dict[str, int]:
    """How many rows to take from each source; every impossible request is reported at once."""
    problems: list[str] = []
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        problems.append(f"source names must be unique: {names}")
    plan: dict[str, int] = {}
    for s in sources:
        have = available.get(s.name, 0)
        if s.count is not None:
            want = s.count
        elif s.share is not None:
            if total is None:
                problems.append(f"source {s.name!r}: share needs the mixture's total")
                continue
            want = round(s.share * total)
        else:
            want = round((1.0 if s.fraction is None else s.fraction) * have)
        if want > have:
            problems.append(f"source {s.name!r}: asks for {want} rows, has {have} after dedup")
        plan[s.name] = want
    shares = sum(s.share or 0.0 for s in sources)
    if shares > 1.0 + 1e-9:
        problems.append(f"shares add up to {shares:.3f} > 1")
    if problems:
        raise ValueError("; ".join(problems))
    return plan


def seeded_key(seed: int, *parts: str) -> int:
    """A 63-bit key from (seed, parts): orders rows the same way however they are partitioned."""
    digest = hashlib.sha256(":".join([str(seed), *parts]).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class TagRows:
    """Ray Data stage: adds source, rank, pick and order keys (pyarrow batches)."""

    def __init__(self, name: str, rank: int, seed: int):
        self.name, self.rank, self.seed = name, rank, seed

    def __call__(self, batch):
        import pyarrow as pa

        ids = batch.column("id").to_pylist()
        n = len(ids)
        batch = batch.append_column(SOURCE_COL, pa.array([self.name] * n, pa.string()))
        batch = batch.append_column(RANK_COL, pa.array([self.rank] * n, pa.int32()))
        pick = [seeded_key(self.seed, "pick", self.name, i) for i in ids]
        batch = batch.append_column(PICK_COL, pa.array(pick, pa.int64()))
        order = [seeded_key(self.seed, "order", i) for i in ids]
        return batch.append_column(ORDER_COL, pa.array(order, pa.int64()))


def add_mix_name(batch):
    """Record each row's mixture source in its meta (meta is a JSON string column)."""
    import pyarrow as pa

    from raypipe.schema import canonical_json

    metas = [
        canonical_json({**json.loads(m or "{}"), "mix": s})
        for m, s in zip(batch.column("meta").to_pylist(), batch.column(SOURCE_COL).to_pylist())
    ]
    return batch.set_column(batch.schema.get_field_index("meta"), "meta", pa.array(metas, pa.string()))


def batch_stats(batch) -> list[dict[str, Any]]:
    """Per-source figures of one batch (summed by the driver)."""
    from raypipe.schema import Sample

    per: dict[str, Counter] = {}
    for row, src in zip(batch.drop_columns([SOURCE_COL]).to_pylist(), batch.column(SOURCE_COL).to_pylist()):
        s = Sample.from_row(row)
        c = per.setdefault(src, Counter())
        c["rows"] += 1
        c[f"lang:{s.lang}"] += 1
        c["messages"] += len(s.messages)
        c["tool_calls"] += len(s.tool_calls())
        c["with_calls"] += bool(s.tool_calls())
        c["with_reasoning"] += any(m.reasoning for m in s.messages)
        if "target" in s.meta:
            c[f"target:{s.meta['target']}"] += 1
    return [{"source": src, "counts": dict(c)} for src, c in per.items()]


def sum_stats(parts: list[list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    totals: dict[str, Counter] = {}
    for p in (x for part in parts for x in part):
        totals.setdefault(p["source"], Counter()).update(p["counts"])
    out: dict[str, dict[str, Any]] = {}
    for src, c in totals.items():
        rows = c.pop("rows", 0)
        langs = {k[5:]: v for k, v in c.items() if k.startswith("lang:")}
        targets = {k[7:]: v for k, v in c.items() if k.startswith("target:")}
        out[src] = {
            "rows": rows,
            "langs": dict(sorted(langs.items())),
            "targets": dict(sorted(targets.items())),
            "with_calls": c["with_calls"],
            "with_reasoning": c["with_reasoning"],
            "mean_messages": round(c["messages"] / rows, 3) if rows else 0.0,
            "mean_tool_calls": round(c["tool_calls"] / rows, 3) if rows else 0.0,
        }
    return out


@dataclass
class MixResult:
    dataset: Any  # ray Dataset of sample rows, in mixture order (executes when written)
    duplicates: list[dict[str, Any]]  # reject rows for dropped duplicate copies
    per_source: dict[str, dict[str, Any]] = field(default_factory=dict)


def block_keys(table) -> tuple:
    """The columns the driver needs to decide: id, source rank, pick key (fixed-width arrays)."""
    import numpy as np

    ids = np.array(table.column("id").to_pylist(), dtype="S")
    return ids, table.column(RANK_COL).to_numpy(), table.column(PICK_COL).to_numpy()


def decide(keys: list[tuple], sources: list[MixSource], total: int | None):
    """Dedup and seeded selection over all blocks' keys, in numpy on the driver (about 40
    bytes per row: fine for tens of millions of rows). Returns the keep-mask of every block,
    the rows read and dropped per source, the plan, and the dropped duplicates."""
    import numpy as np

    ids = np.concatenate([k[0] for k in keys]) if keys else np.zeros(0, "S1")
    rank = np.concatenate([k[1] for k in keys]).astype(np.int64) if keys else np.zeros(0, np.int64)
    pick = np.concatenate([k[2] for k in keys]) if keys else np.zeros(0, np.int64)
    sizes = [len(k[0]) for k in keys]
    n = len(ids)
    order = np.lexsort((pick, rank, ids))  # by id, then earliest source, then pick key
    first = np.ones(n, bool)
    if n:
        first[order[1:]] = ids[order[1:]] != ids[order[:-1]]
    # the winner of each id group: index of the group's first row, spread over the group
    group_start = np.maximum.accumulate(np.where(first[order], np.arange(n), 0)) if n else order
    winner_rank = np.empty(n, np.int64)
    winner_rank[order] = rank[order[group_start]] if n else rank
    keep = first.copy()

    read = {s.name: int((rank == r).sum()) for r, s in enumerate(sources)}
    dropped = {s.name: int(((rank == r) & ~keep).sum()) for r, s in enumerate(sources)}
    available = {name: read[name] - dropped[name] for name in read}
    plan = plan_counts(sources, available, total)

    selected = np.zeros(n, bool)
    for r, s in enumerate(sources):
        idx = np.flatnonzero((rank == r) & keep)
        want = plan[s.name]
        if want:
            chosen = idx[np.argpartition(pick[idx], want - 1)[:want]] if want < len(idx) else idx
            selected[chosen] = True
    duplicates = [
        {
            "file": sources[rank[i]].name, "line": None, "id": ids[i].decode(), "stage": STAGE,
            "reason": f"duplicate id: deduplicated in favour of the copy in source {sources[winner_rank[i]].name!r}",
            "raw": "",
        }
        for i in np.flatnonzero(~keep)
    ]
    masks = np.split(selected, np.cumsum(sizes)[:-1]) if sizes else []
    return masks, read, dropped, plan, duplicates


def filter_block(table, mask, parts: int):
    """Keep the chosen rows of one block and cut them into `parts` ranges of the order key;
    the first return value is their per-source stats."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kept = table.filter(pa.array(mask, pa.bool_()))
    bounds = [i * (2**63 // parts) for i in range(parts)] + [2**63]
    order = kept.column(ORDER_COL)
    ranges = [
        kept.filter(pc.and_(pc.greater_equal(order, lo), pc.less(order, hi))) if i < parts - 1
        else kept.filter(pc.greater_equal(order, lo))
        for i, (lo, hi) in enumerate(zip(bounds, bounds[1:]))
    ]
    return (batch_stats(kept), *ranges)


def merge_range(*tables):
    """One range of the mixture: its pieces from every block, sorted by the order key."""
    import pyarrow as pa

    return pa.concat_tables(tables).sort_by(ORDER_COL)


def build_mix(datasets: dict[str, Any], sources: list[MixSource], *, seed: int = 0,
              total: int | None = None) -> MixResult:
    """The mixture of `datasets` (source name -> ray Dataset of sample rows)."""
    import ray
    import ray.data

    tagged = [
        datasets[s.name].map_batches(TagRows(s.name, rank, seed), batch_format="pyarrow")
        for rank, s in enumerate(sources)
    ]
    everything = tagged[0].union(*tagged[1:]) if len(tagged) > 1 else tagged[0]
    blocks = everything.materialize().to_arrow_refs()
    keys_task = ray.remote(block_keys)
    keys = ray.get([keys_task.remote(b) for b in blocks])
    masks, read, dropped, plan, duplicates = decide(keys, sources, total)

    # The seeded shuffle: order keys are uniform hashes, so equal key ranges are equal-sized
    # partitions; each block is cut by range, each range merged and sorted (no sampling pass).
    parts = max(1, min(len(blocks), 64))
    filter_task = ray.remote(num_returns=parts + 1)(filter_block)
    cut = [filter_task.remote(b, m, parts) for b, m in zip(blocks, masks)]
    stats = sum_stats(ray.get([c[0] for c in cut]))
    merge_task = ray.remote(merge_range)
    ranges = [merge_task.remote(*[c[1 + i] for c in cut]) for i in range(parts)] if cut else []
    mixed = ray.data.from_arrow_refs(ranges) if ranges else everything.limit(0)
    mixed = mixed.map_batches(add_mix_name, batch_format="pyarrow")
    per_source = {
        s.name: {
            "read": read[s.name],
            "duplicates_dropped": dropped[s.name],
            "available": read[s.name] - dropped[s.name],
            "selected": plan[s.name],
            "not_selected": read[s.name] - dropped[s.name] - plan[s.name],
            **{k: v for k, v in stats.get(s.name, {}).items() if k != "rows"},
        }
        for s in sources
    }
    # The order key stays: the writer names shards by it, so reading them in name order gives
    # the mixture order (and drops the column).
    out = mixed.drop_columns([SOURCE_COL, RANK_COL, PICK_COL])
    return MixResult(dataset=out, duplicates=duplicates, per_source=per_source)


@dataclass
class MixConfig:
    sources: list[MixSource]
    out: str = output_path()
    seed: int = 0
    total: int | None = None  # mixture size, needed by sources given as a `share`

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("a mixture needs at least one source")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique: {names}")


def run_mix(cfg: MixConfig) -> dict[str, Any]:
    """Read the sources, build the mixture, write it (in mixture order) with its summary."""
    from raypipe.errors import RaypipeError
    from raypipe.io import read_samples, write_samples

    datasets = {s.name: read_samples(s.inputs) for s in cfg.sources}
    try:
        result = build_mix(datasets, cfg.sources, seed=cfg.seed, total=cfg.total)
    except ValueError as exc:
        raise RaypipeError(f"mix {cfg.out}: {exc}") from None
    summary = write_samples(
        result.dataset,
        cfg.out,
        rejects=result.duplicates,
        inputs=[p for s in cfg.sources for p in s.inputs],
        stage=STAGE,
        order_column=ORDER_COL,  # shards named in mixture order
        summary_extra={
            "stage": STAGE,
            "seed": cfg.seed,
            "read": sum(v["read"] for v in result.per_source.values()),
            "not_selected": sum(v["not_selected"] for v in result.per_source.values()),
            "sources": result.per_source,
        },
    )
    return {
        "out": cfg.out,
        **summary["counts"],
        "not_selected": summary["not_selected"],
        "per_source": {k: v["selected"] for k, v in result.per_source.items()},
    }
