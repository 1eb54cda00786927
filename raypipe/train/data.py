"""Training data on the driver: read sources, tokenize when needed, mix by ratio, count steps.

Each source becomes rows `{id, source_idx, input_ids, labels}` (mDPO: `chosen_*`/`rejected_*`).
Under Ray the mixed rows are a Ray Dataset that Ray Train splits evenly across workers
(`ray.train.get_dataset_shard`); alone they are a Python list. Rows that cannot be trained
(nothing to train, longer than max_seq_len) are counted and written to `rejects.jsonl`.
"""

from __future__ import annotations

import glob
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raypipe.errors import RaypipeError
from raypipe.train.config import DataSource, TrainConfig, check_vocab


@dataclass
class PreparedData:
    rows: list[dict[str, Any]]
    sources: list[str]  # source_idx -> label
    counts: dict[str, int] = field(default_factory=dict)  # read / used / rejected
    dataset: Any = None  # under Ray: the mixed, shuffled, materialized Ray Dataset

    @property
    def num_rows(self) -> int:
        return self.counts["rows_per_epoch"]


def expand(path: str) -> list[str]:
    p = Path(path)
    if (p / "data").is_dir():  # a raypipe dataset folder: data/ (rows), rejects/, summary.json
        p = p / "data"
    if p.is_dir():
        found = sorted(str(x) for x in p.rglob("*.parquet")) + sorted(str(x) for x in p.rglob("*.jsonl"))
    else:
        found = sorted(glob.glob(path))
    if not found:
        raise RaypipeError(f"{path}: no data files found")
    return found


def prepare_data(cfg: TrainConfig, tokenizer, fmt, out_dir: Path, pairs: bool = False,
                 use_ray: bool = False) -> PreparedData:
    """Under Ray, tokenized Parquet is read, checked and mixed by Ray Data on the cluster (it can
    be large); samples and pairs, tokenized here, join it as rows."""
    labels: list[str] = []
    rejects: list[dict[str, Any]] = []
    mixed: list[dict[str, Any]] = []
    datasets: list[Any] = []
    read = 0
    for n, src in enumerate(cfg.data):
        if use_ray and src.kind == "tokenized":
            from raypipe.train.ray_data import tokenized_dataset

            ds, rows_read = tokenized_dataset(src, n, cfg, len(tokenizer), labels, rejects)
            datasets.append(ds)
            read += rows_read
            continue
        rows = _read_source(src, n, tokenizer, fmt, cfg, rejects, pairs)
        read += len(rows) + sum(1 for r in rejects if r["source_n"] == n)
        for r in rows:
            label = src.label or r.pop("source", "") or f"source{n}"
            r.pop("source", None)
            if label not in labels:
                labels.append(label)
            r["source_idx"] = labels.index(label)
        mixed.extend(mix(rows, src.ratio, cfg.seed + n))
    random.Random(cfg.seed).shuffle(mixed)
    if rejects:
        out_dir.mkdir(parents=True, exist_ok=True)
        with open(out_dir / "rejects.jsonl", "w", encoding="utf-8") as f:
            for r in rejects:
                f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
    counts = {"rows_read": read, "rows_rejected": len(rejects), "rows_per_epoch": len(mixed)}
    dataset = None
    if use_ray:
        from raypipe.train.ray_data import mixed_dataset

        dataset = mixed_dataset(datasets, mixed, cfg.seed)
        counts["rows_per_epoch"] = dataset.count()
        mixed = []
    return PreparedData(rows=mixed, sources=labels, counts=counts, dataset=dataset)


def mix(rows: list[dict], ratio: float, seed: int) -> list[dict]:
    """round(len x ratio) rows: whole copies for the integer part, a seeded subset for the rest."""
    want = round(len(rows) * ratio)
    whole, rest = divmod(want, len(rows)) if rows else (0, 0)
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    return [dict(r) for _ in range(whole) for r in rows] + [dict(rows[i]) for i in order[:rest]]


def _read_source(src: DataSource, n: int, tokenizer, fmt, cfg: TrainConfig, rejects: list, pairs: bool) -> list[dict]:
    if pairs != (src.kind == "pairs"):
        want = "pairs" if pairs else "tokenized or samples"
        raise RaypipeError(f"data[{n}] {src.path}: kind {src.kind!r} does not fit this recipe (needs {want})")
    out: list[dict] = []

    def reject(row_id, reason, where):
        rejects.append({"file": where, "id": row_id, "stage": "train_data", "reason": reason, "source_n": n})

    for path in expand(src.path):
        if src.kind == "tokenized":
            import pyarrow.parquet as pq

            for i, r in enumerate(pq.read_table(path).to_pylist()):
                _keep(r, cfg, tokenizer, f"{path}: row {i}", out, reject)
        elif src.kind == "samples":
            from raypipe.io import read_sample_file

            for sample in read_sample_file(path):
                _tokenize_sample(sample, tokenizer, fmt, cfg, path, out, reject)
        else:
            import pyarrow.parquet as pq

            for i, r in enumerate(pq.read_table(path).to_pylist()):
                _tokenize_pair(r, tokenizer, fmt, cfg, f"{path}: row {i}", out, reject)
    return out


def _keep(row: dict, cfg: TrainConfig, tokenizer, where: str, out: list, reject) -> None:
    for key in ("input_ids", "labels"):
        if key not in row:
            raise RaypipeError(f"{where}: column {key!r} missing (is this tokenized Parquet?)")
    ids = row["input_ids"]
    if len(ids) > cfg.max_seq_len:
        reject(row.get("id"), f"{len(ids)} tokens > max_seq_len {cfg.max_seq_len}", where)
        return
    if not any(x != -100 for x in row["labels"]):
        reject(row.get("id"), "no trained tokens", where)
        return
    check_vocab(max(ids), len(tokenizer), where)
    out.append({"id": row.get("id"), "source": row.get("source", ""), "input_ids": ids, "labels": row["labels"]})


def _tokenize_sample(sample, tokenizer, fmt, cfg, where, out, reject) -> None:
    from raypipe.templates import NothingToTrain, TokenizationDrift, tokenize_sample

    try:
        tok = tokenize_sample(sample, tokenizer, fmt, train_on=cfg.train_on)
    except (NothingToTrain, TokenizationDrift) as exc:
        reject(sample.id, f"{type(exc).__name__}: {exc}", where)
        return
    _keep({"id": sample.id, "source": sample.source, **tok}, cfg, tokenizer, where, out, reject)


def _tokenize_pair(row: dict, tokenizer, fmt, cfg, where, out, reject) -> None:
    """A DPO pair: both trajectories tokenized with every assistant turn trained."""
    from raypipe.schema import Sample
    from raypipe.templates import NothingToTrain, TokenizationDrift, tokenize_sample

    sides = {}
    for side in ("chosen", "rejected"):
        try:
            tok = tokenize_sample(Sample.from_row(row[side]), tokenizer, fmt, train_on="all")
        except (NothingToTrain, TokenizationDrift) as exc:
            reject(row.get("id"), f"{side}: {type(exc).__name__}: {exc}", where)
            return
        if len(tok["input_ids"]) > cfg.max_seq_len:
            reject(row.get("id"), f"{side}: {len(tok['input_ids'])} tokens > max_seq_len {cfg.max_seq_len}", where)
            return
        sides[side] = tok
    out.append({
        "id": row.get("id"), "source": row.get("source") or "",
        "chosen_input_ids": sides["chosen"]["input_ids"], "chosen_labels": sides["chosen"]["labels"],
        "rejected_input_ids": sides["rejected"]["input_ids"], "rejected_labels": sides["rejected"]["labels"],
    })


def steps_per_epoch(num_rows: int, cfg: TrainConfig) -> int:
    """Ray Train gives each worker an equal share (the remainder is dropped)."""
    per_worker = num_rows // cfg.world_size
    steps = per_worker // (cfg.micro_batch_size * cfg.accum_steps)
    if steps == 0:
        raise RaypipeError(
            f"{num_rows} rows are fewer than one global batch of {cfg.global_batch_size} "
            f"({cfg.world_size} worker(s)); add data, raise ratios or lower global_batch_size"
        )
    return steps
