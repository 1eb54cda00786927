"""Tokenized Parquet through Ray Data for Ray Train runs: read, check, label and mix on the
cluster instead of in the driver's memory. Ray Train then splits the result evenly across
workers (`ray.train.get_dataset_shard("train")`)."""

from __future__ import annotations

from typing import Any

from raypipe.errors import RaypipeError
from raypipe.train.config import DataSource, TrainConfig
from raypipe.train.data import expand

COLUMNS = ["id", "source", "input_ids", "labels"]


class CheckRows:
    """Marks each row with why it cannot be trained ('' when it can) and its largest token id."""

    def __init__(self, max_seq_len: int) -> None:
        self.max_seq_len = max_seq_len

    def __call__(self, batch: dict) -> dict:
        reasons, max_ids = [], []
        for ids, labels in zip(batch["input_ids"], batch["labels"]):
            if len(ids) > self.max_seq_len:
                reasons.append(f"{len(ids)} tokens > max_seq_len {self.max_seq_len}")
            elif not any(int(x) != -100 for x in labels):
                reasons.append("no trained tokens")
            else:
                reasons.append("")
            max_ids.append(int(max(ids)) if len(ids) else 0)
        return {**batch, "reject": reasons, "max_id": max_ids}


def tokenized_dataset(src: DataSource, n: int, cfg: TrainConfig, vocab_size: int,
                      labels: list[str], rejects: list[dict[str, Any]]):
    """One source's trainable rows, labelled (`source_idx`) and mixed by its ratio; rejected rows
    are appended to `rejects`. Returns (dataset, rows read)."""
    import ray.data

    files = [f for f in expand(src.path) if f.endswith(".parquet")]
    if not files:
        raise RaypipeError(f"data[{n}] {src.path}: no Parquet files (kind: tokenized)")
    try:
        checked = ray.data.read_parquet(files, columns=COLUMNS).map_batches(
            CheckRows, fn_constructor_args=(cfg.max_seq_len,), batch_format="numpy", concurrency=1,
        ).materialize()
    except Exception as exc:  # a missing column surfaces as an Arrow error inside a Ray task
        raise RaypipeError(f"data[{n}] {src.path}: not tokenized Parquet ({COLUMNS}): {exc}") from None
    read = checked.count()
    for r in checked.filter(lambda r: r["reject"] != "").select_columns(["id", "reject"]).take_all():
        rejects.append({"file": src.path, "id": r["id"], "stage": "train_data", "reason": r["reject"], "source_n": n})
    kept = checked.filter(lambda r: r["reject"] == "")
    total = kept.count()
    if total and kept.max("max_id") >= vocab_size:
        raise RaypipeError(
            f"data[{n}] {src.path}: token id {kept.max('max_id')} is outside the tokenizer's "
            f"{vocab_size} ids; was it tokenized with another tokenizer or format?"
        )
    names = [src.label] if src.label else sorted(kept.unique("source")) if total else []
    for name in names:
        if (name or f"source{n}") not in labels:
            labels.append(name or f"source{n}")
    index = {name: labels.index(name or f"source{n}") for name in names}

    def label(batch: dict) -> dict:
        idx = [index[src.label] if src.label else index[s] for s in batch["source"]]
        return {"id": batch["id"], "input_ids": batch["input_ids"], "labels": batch["labels"], "source_idx": idx}

    kept = kept.map_batches(label, batch_format="numpy")
    whole, rest = divmod(round(total * src.ratio), total) if total else (0, 0)
    parts = [kept] * whole + ([kept.random_shuffle(seed=cfg.seed + n).limit(rest)] if rest else [])
    if not parts:
        return ray.data.from_items([]), read
    return (parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]), read


def mixed_dataset(datasets: list, rows: list[dict], seed: int):
    """All sources together, shuffled once with the run's seed, computed once for every epoch."""
    import ray.data

    parts = [d for d in datasets]
    if rows:
        parts.append(ray.data.from_items(rows))
    ds = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
    return ds.random_shuffle(seed=seed).materialize()
