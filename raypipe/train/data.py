"""Training data on the driver: tokenize sources on workers, check and index them, mix by ratio.

- `samples` and `pairs` sources are tokenized by the tokenize stage (`raypipe tokenize`, the
  pairs variant for DPO pairs) into `out/tokenized/source<N>/`: on Ray Data actors under Ray,
  in this process alone. A folder whose fingerprint (inputs, options, tokenizer) matches is
  reused, so a resumed run does not tokenize again.
- Every tokenized Parquet file is checked with vectorized column operations (length, trained
  tokens, largest token id), on Ray tasks under Ray; the driver gets back only the small index
  columns (id, source, row position, num_tokens) and never holds token lists.
- Rows that cannot be trained (longer than max_seq_len, no trained token) go to
  `out/rejects.jsonl` with their reason; the tokenize stage's own rejects stay in its folder.
- Ratios pick rows per source, seeded and independent of file layout (rows are ordered by id).

`raypipe.train.plan` then turns the result into the units every worker trains on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from raypipe.errors import RaypipeError
from raypipe.templates.tokens import IGNORE_INDEX
from raypipe.train.config import DataSource, TrainConfig, check_vocab


@dataclass
class PreparedData:
    index: Any  # pyarrow Table, one row per item of an epoch's pool: file, row, source_idx, id, num_tokens
    files: list[str]
    sources: list[str]  # source_idx -> label
    counts: dict[str, int] = field(default_factory=dict)  # read / rejected / rows per epoch
    pairs: bool = False

    @property
    def num_rows(self) -> int:
        return self.counts["rows_per_epoch"]

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The index as Python rows (small data and tests; training never needs this)."""
        return self.index.to_pylist()


def expand(path: str) -> list[str]:
    from raypipe.io import fs

    try:
        return fs.expand(path, (".parquet", ".jsonl", ".json"))
    except RaypipeError:
        raise RaypipeError(f"{path}: no data files found") from None


def prepare_data(cfg: TrainConfig, tokenizer, fmt, out_dir: Path, pairs: bool = False,
                 use_ray: bool = False, tokenizer_dir: str | None = None) -> PreparedData:
    import pyarrow as pa

    labels: list[str] = []
    rejects: list[dict[str, Any]] = []
    files: list[str] = []
    parts = []
    read = rejected = 0
    for n, src in enumerate(cfg.data):
        if pairs != (src.kind == "pairs"):
            want = "pairs" if pairs else "tokenized or samples"
            raise RaypipeError(f"data[{n}] {src.path}: kind {src.kind!r} does not fit this recipe (needs {want})")
        if src.kind == "tokenized":
            source_files = expand(src.path)
            not_parquet = [f for f in source_files if not f.endswith(".parquet")]
            if not_parquet:
                raise RaypipeError(f"{not_parquet[0]}: kind tokenized needs Parquet (from raypipe tokenize)")
        else:
            folder, summary = _tokenize_source(src, n, cfg, tokenizer, fmt, out_dir, use_ray, tokenizer_dir, pairs)
            from raypipe.templates.tokenize_stage import tokenized_files

            if not summary["rows_out"]:
                raise RaypipeError(f"data[{n}] {src.path}: no row could be tokenized "
                                   f"({summary['rejected_by_reason']}; see {folder}/rejects)")
            source_files = tokenized_files(folder)
            read += summary["rejected"]
            rejected += summary["rejected"]
        indexes = _index_files(source_files, cfg.max_seq_len, pairs, use_ray)
        kept_parts = []
        for path, index in zip(source_files, indexes):
            read += index.num_rows
            bad = index.filter(_valid(index["reason"]))
            for r in bad.select(["row", "id", "reason"]).to_pylist():
                rejects.append({"file": path, "row": r["row"], "id": r["id"], "stage": "train_data",
                                "reason": r["reason"], "source_n": n})
            rejected += bad.num_rows
            kept = index.filter(_null(index["reason"]))
            if kept.num_rows:
                biggest = int(np.argmax(kept["max_id"].to_numpy()))
                check_vocab(int(kept["max_id"][biggest].as_py()), len(tokenizer),
                            f"{path}: row {kept['row'][biggest].as_py()}")
            file_idx = len(files)
            files.append(path)
            kept_parts.append(kept.append_column("file", pa.array(np.full(kept.num_rows, file_idx, np.int32))))
        source_rows = pa.concat_tables(kept_parts) if kept_parts else None
        if source_rows is not None and source_rows.num_rows:
            parts.append(_label_and_mix(source_rows, src, n, cfg.seed, labels))
    if rejects:
        out_dir.mkdir(parents=True, exist_ok=True)
        with open(out_dir / "rejects.jsonl", "w", encoding="utf-8") as f:
            for r in rejects:
                f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
    index = pa.concat_tables(parts) if parts else _empty_index()
    counts = {"rows_read": read, "rows_rejected": rejected, "rows_per_epoch": index.num_rows}
    return PreparedData(index=index, files=files, sources=labels, counts=counts, pairs=pairs)


def _tokenize_source(src: DataSource, n: int, cfg: TrainConfig, tokenizer, fmt, out_dir: Path, use_ray: bool,
                     tokenizer_dir: str | None, pairs: bool) -> tuple[str, dict]:
    """Tokenize one samples/pairs source with the run's tokenizer (reused when up to date)."""
    from raypipe.templates.tokenize_stage import tokenize_dataset, tokenize_local

    if tokenizer_dir is None:
        tokenizer_dir = str(out_dir / "tokenizer")
        if not (Path(tokenizer_dir) / "tokenizer_config.json").exists():
            tokenizer.save_pretrained(tokenizer_dir)
    folder = str(out_dir / "tokenized" / f"source{n}")
    kwargs = {"train_on": cfg.train_on, "max_tokens": cfg.max_seq_len, "pairs": pairs, "reuse": True}
    if use_ray:
        summary = tokenize_dataset([src.path], folder, tokenizer_dir, fmt, num_workers=max(1, cfg.num_workers), **kwargs)
    else:
        summary = tokenize_local([src.path], folder, tokenizer_dir, fmt, **kwargs)
    print(f"[raypipe] data[{n}] {src.path}: tokenized {summary['rows_out']} of {summary['rows_in']} rows "
          f"({summary['rejected']} rejected, reasons in {folder}/rejects){' (reused)' if summary.get('reused') else ''}",
          flush=True)
    return folder, summary


def _index_files(files: list[str], max_seq_len: int, pairs: bool, use_ray: bool) -> list:
    if not use_ray:
        return [index_file(f, max_seq_len, pairs) for f in files]
    import ray

    task = ray.remote(num_cpus=1)(index_file)
    try:
        return ray.get([task.remote(f, max_seq_len, pairs) for f in files])
    except ray.exceptions.RayTaskError as exc:
        cause = exc.as_instanceof_cause()
        if isinstance(cause, RaypipeError):
            raise RaypipeError(str(cause).splitlines()[-1]) from None
        raise


def index_file(path: str, max_seq_len: int, pairs: bool = False):
    """One tokenized Parquet file -> its index: row, id, source, num_tokens, max_id and the reason
    a row cannot be trained (null when it can). Column operations only, no per-token Python."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sides = ("chosen", "rejected") if pairs else ("",)
    ids_cols = [f"{s}_input_ids" if s else "input_ids" for s in sides]
    label_col = "chosen_labels" if pairs else "labels"
    names = pq.read_schema(path).names
    missing = [c for c in [*ids_cols, label_col] if c not in names]
    if missing:
        kind = "tokenized DPO pairs" if pairs else "tokenized Parquet"
        raise RaypipeError(f"{path}: column {missing[0]!r} missing (is this {kind}?)")
    table = pq.read_table(path, columns=[c for c in ("id", "source", *ids_cols, label_col) if c in names])
    n = table.num_rows
    lengths = [_list_lengths(table[c]) for c in ids_cols]
    longest = np.maximum.reduce(lengths) if lengths else np.zeros(n, np.int64)
    trained = _count_per_row(table[label_col], lambda v: v != IGNORE_INDEX)
    max_id = np.maximum.reduce([_max_per_row(table[c]) for c in ids_cols])
    reason = np.full(n, None, dtype=object)
    no_train = trained == 0
    reason[no_train] = "no trained tokens"
    too_long = longest > max_seq_len
    reason[too_long] = [f"{int(k)} tokens > max_seq_len {max_seq_len}" for k in longest[too_long]]
    ids = table["id"] if "id" in names else pa.array([f"{path}:{i}" for i in range(n)])
    source = table["source"] if "source" in names else pa.nulls(n, pa.string())
    return pa.table({
        "row": pa.array(np.arange(n, dtype=np.int64)), "id": ids.cast(pa.string()), "source": source.cast(pa.string()),
        "num_tokens": pa.array(np.add.reduce(lengths).astype(np.int32)), "max_id": pa.array(max_id),
        "reason": pa.array(reason.tolist(), pa.string()),
    })


def _flat(column) -> tuple[np.ndarray, np.ndarray]:
    arr = column.combine_chunks()
    offsets = arr.offsets.to_numpy().astype(np.int64)
    values = arr.values.to_numpy(zero_copy_only=False)[offsets[0]:offsets[-1]]
    return values, offsets - offsets[0]


def _list_lengths(column) -> np.ndarray:
    _, offsets = _flat(column)
    return np.diff(offsets)


def _count_per_row(column, predicate) -> np.ndarray:
    values, offsets = _flat(column)
    hits = np.concatenate([[0], np.cumsum(predicate(values), dtype=np.int64)])
    return hits[offsets[1:]] - hits[offsets[:-1]]


def _max_per_row(column) -> np.ndarray:
    values, offsets = _flat(column)
    out = np.full(len(offsets) - 1, -1, dtype=np.int64)
    nonempty = np.diff(offsets) > 0
    if values.size:
        out[nonempty] = np.maximum.reduceat(values.astype(np.int64), offsets[:-1][nonempty])
    return out


def _label_and_mix(rows, src: DataSource, n: int, seed: int, labels: list[str]):
    """Source labels for the per-source loss, then round(rows x ratio) rows in a fixed order."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = rows.sort_by([("id", "ascending"), ("file", "ascending"), ("row", "ascending")])
    if src.label:
        names = pa.array([src.label] * rows.num_rows, pa.string())
    else:
        names = pc.if_else(pc.or_kleene(pc.is_null(rows["source"]), pc.equal(rows["source"], "")),
                           f"source{n}", rows["source"])
    for name in sorted(set(pc.unique(names).to_pylist())):
        if name not in labels:
            labels.append(name)
    lookup = pa.array(labels, pa.string())
    source_idx = pc.index_in(names, value_set=lookup).cast(pa.int32())
    picked = mix_indices(rows.num_rows, src.ratio, seed + n)
    table = pa.table({"file": rows["file"], "row": rows["row"], "source_idx": source_idx,
                      "id": rows["id"], "num_tokens": rows["num_tokens"]})
    return table.take(pa.array(picked))


def _empty_index():
    import pyarrow as pa

    return pa.table({"file": pa.array([], pa.int32()), "row": pa.array([], pa.int64()),
                     "source_idx": pa.array([], pa.int32()), "id": pa.array([], pa.string()),
                     "num_tokens": pa.array([], pa.int32())})


def _valid(column):
    import pyarrow.compute as pc

    return pc.is_valid(column)


def _null(column):
    import pyarrow.compute as pc

    return pc.is_null(column)


def mix_indices(n: int, ratio: float, seed: int) -> np.ndarray:
    """round(n x ratio) indices: every index once per whole copy, a seeded subset for the rest."""
    want = round(n * ratio)
    whole, rest = divmod(want, n) if n else (0, 0)
    order = np.random.default_rng(seed).permutation(n)
    return np.concatenate([np.tile(np.arange(n), whole), np.sort(order[:rest])]).astype(np.int64)


def mix(rows: list[dict], ratio: float, seed: int) -> list[dict]:
    """`mix_indices` over a list of rows (copies)."""
    return [dict(rows[i]) for i in mix_indices(len(rows), ratio, seed)]


def steps_per_epoch(num_units: int, cfg: TrainConfig) -> int:
    """Whole global batches per epoch (the remainder of the epoch's permutation is left out)."""
    per_worker = num_units // cfg.world_size
    steps = per_worker // (cfg.micro_batch_size * cfg.accum_steps)
    if steps == 0:
        raise RaypipeError(
            f"{num_units} rows are fewer than one global batch of {cfg.global_batch_size} "
            f"({cfg.world_size} worker(s)); add data, raise ratios or lower global_batch_size"
        )
    return steps
