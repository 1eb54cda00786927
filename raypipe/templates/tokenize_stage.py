"""Tokenize a sample dataset for training, on Ray Data.

    out_dir/
      data/*.parquet      id, source, input_ids list<int32>, labels list<int32>, num_tokens, num_trained
      rejects/*.parquet   file, line, id, stage, reason, raw (nothing to train, too long, drift)
      tokenizer/          the tokenizer with the format's special tokens and chat template: train
                          and serve with this one (resize the model's embeddings to it)
      summary.json        rows_in = rows_out + rejected, tokens, trained tokens, reasons, format
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from raypipe.templates.formats import FormatConfig, format_name, get_format

STAGE = "tokenize"


def tokenized_schema():
    import pyarrow as pa

    return pa.schema([
        ("id", pa.string()), ("source", pa.string()),
        ("input_ids", pa.list_(pa.int32())), ("labels", pa.list_(pa.int32())),
        ("num_tokens", pa.int32()), ("num_trained", pa.int32()),
    ])


def _stage_schema():
    """Tokenized columns plus the reject columns; exactly one of the two halves is filled."""
    import pyarrow as pa

    return pa.schema(list(tokenized_schema()) + [("reason", pa.string()), ("raw", pa.string())])


class TokenizeStage:
    """Ray Data actor: sample rows -> tokenized rows, or reject rows with a reason."""

    def __init__(self, tokenizer_dir: str, fmt: dict, train_on: str = "all", max_tokens: int | None = None):
        from transformers import AutoTokenizer

        from raypipe.templates.tokenize import check_tokenizer

        self.fmt = get_format(fmt)
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        check_tokenizer(self.tokenizer, self.fmt)
        self.train_on = train_on
        self.max_tokens = max_tokens

    def __call__(self, batch):
        import pyarrow as pa

        return pa.Table.from_pylist([self.row(raw) for raw in batch.to_pylist()], schema=_stage_schema())

    def row(self, raw: dict[str, Any]) -> dict[str, Any]:
        from raypipe.schema import Sample, canonical_json
        from raypipe.templates.errors import NothingToTrain
        from raypipe.templates.tokenize import IGNORE_INDEX, TokenizationDrift, tokenize_sample

        sample = Sample.from_row(raw)
        out = {"id": sample.id, "source": sample.source, "input_ids": None, "labels": None,
               "num_tokens": None, "num_trained": None, "reason": None, "raw": None}
        try:
            tokens = tokenize_sample(sample, self.tokenizer, self.fmt, self.train_on, check=False)
        except NothingToTrain as err:
            reason = f"nothing to train: {err.reason}"
        except (TokenizationDrift, ValueError) as err:  # ValueError: e.g. a call name pythonic cannot write
            reason = f"cannot tokenize: {err}"
        else:
            n = len(tokens["input_ids"])
            if self.max_tokens is not None and n > self.max_tokens:
                reason = f"too long: {n} tokens > max_tokens {self.max_tokens}"
            else:
                trained = sum(1 for x in tokens["labels"] if x != IGNORE_INDEX)
                return {**out, **tokens, "num_tokens": n, "num_trained": trained}
        return {**out, "reason": reason, "raw": canonical_json(sample.to_dict())}


def _split(batch, rejected: bool):
    import pyarrow as pa
    import pyarrow.compute as pc

    from raypipe.io.writers import rejects_schema

    if not rejected:
        return batch.filter(pc.is_null(batch["reason"])).select(tokenized_schema().names).cast(tokenized_schema())
    bad = batch.filter(pc.is_valid(batch["reason"]))
    return pa.Table.from_pylist(
        [{"file": None, "line": None, "id": r["id"], "stage": STAGE, "reason": r["reason"], "raw": r["raw"]}
         for r in bad.select(["id", "reason", "raw"]).to_pylist()],
        schema=rejects_schema(),
    )


def tokenize_dataset(
    inputs: list[str],
    out_dir: str,
    tokenizer_path: str,
    fmt: FormatConfig | str = "tools-dt",
    *,
    train_on: str = "all",
    max_tokens: int | None = None,
    num_workers: int = 2,
) -> dict[str, Any]:
    """Tokenize `inputs` (canonical sample files/globs/folders) into `out_dir`; returns the summary."""
    from transformers import AutoTokenizer

    from raypipe.io import fs, read_samples
    from raypipe.templates.jinja import save_tokenizer
    from raypipe.templates.tokenize import add_special_tokens

    fmt = get_format(fmt)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    added = add_special_tokens(tokenizer, fmt)
    tokenizer_dir = fs.join(out_dir, "tokenizer")
    save_tokenizer(tokenizer, fmt, tokenizer_dir)

    staged = read_samples(inputs).map_batches(
        TokenizeStage,
        fn_constructor_kwargs={"tokenizer_dir": tokenizer_dir, "fmt": fmt.to_dict(),
                               "train_on": train_on, "max_tokens": max_tokens},
        batch_format="pyarrow", batch_size=256, concurrency=num_workers,
    ).materialize()  # computed once, then split into data and rejects

    data_dir, rejects_dir = fs.join(out_dir, "data"), fs.join(out_dir, "rejects")
    for folder in (data_dir, rejects_dir):
        fs.make_dirs(folder)
        fs.remove_files(folder, "")
    good = staged.map_batches(_split, fn_kwargs={"rejected": False}, batch_format="pyarrow")
    bad = staged.map_batches(_split, fn_kwargs={"rejected": True}, batch_format="pyarrow")
    good.write_parquet(data_dir)
    bad.write_parquet(rejects_dir)

    # Counts from one pass over the small columns of the materialized rows.
    reasons: Counter = Counter()
    rows_in = rows_out = tokens = trained = 0
    for batch in staged.select_columns(["num_tokens", "num_trained", "reason"]).iter_batches(
        batch_format="pyarrow", batch_size=65536
    ):
        for row in batch.to_pylist():
            rows_in += 1
            if row["reason"] is None:
                rows_out += 1
                tokens += row["num_tokens"]
                trained += row["num_trained"]
            else:
                reasons[_reason_kind(row["reason"])] += 1
    summary = {
        "stage": STAGE,
        "rows_in": rows_in,
        "rows_out": rows_out,
        "rejected": sum(reasons.values()),
        "rejected_by_reason": dict(reasons),
        "tokens": tokens,
        "trained_tokens": trained,
        "format": format_name(fmt),
        "format_config": fmt.to_dict(),
        "train_on": train_on,
        "max_tokens": max_tokens,
        "tokenizer": tokenizer_path,
        "tokenizer_out": tokenizer_dir,
        "added_special_tokens": added,
        "vocab_size": len(tokenizer),
        "inputs": list(inputs),
    }
    if rows_in != summary["rows_out"] + summary["rejected"]:
        raise RuntimeError(f"tokenize lost rows: {rows_in} in, {rows_out} out, {summary['rejected']} rejected")
    fs.write_text(fs.join(out_dir, "summary.json"), json.dumps(summary, indent=2) + "\n")
    return summary


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0]
