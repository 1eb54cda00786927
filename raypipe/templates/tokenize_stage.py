"""Tokenize a sample (or DPO pair) dataset for training, on Ray Data or in this process.

    out_dir/              a dataset under the commit contract (raypipe/io/dataset.py)
      data/*.parquet      samples: id, source, input_ids list<int32>, labels list<int32>,
                          num_tokens, num_trained
                          pairs: id, source, chosen_input_ids, chosen_labels, chosen_dpo_labels,
                          rejected_input_ids, rejected_labels, num_tokens, num_trained
      rejects/*.parquet   file, line, id, stage, reason, raw (invalid, nothing to train, too long,
                          empty target, drift, pair mismatch)
      tokenizer/          the tokenizer with the format's special tokens and chat template: train
                          and serve with this one (resize the model's embeddings to it)
      summary.json        rows_in = rows_out + rejected, tokens, trained tokens, reasons, format,
                          and the fingerprint of inputs and options (a training run reuses a
                          tokenized folder only when it matches)

Tokenized data follows the commit contract like every dataset raypipe writes: each block is
one commit named by the hash of its ids, a re-run writes a new generation that becomes the
dataset only once complete (a failed re-run leaves the last good output readable), and readers
(`tokenized_files`) see only committed files.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from raypipe.templates.formats import FormatConfig, format_name, get_format

STAGE = "tokenize"
SAMPLE_TOKEN_COLUMNS = ("input_ids", "labels")
PAIR_TOKEN_COLUMNS = ("chosen_input_ids", "chosen_labels", "chosen_dpo_labels", "rejected_input_ids", "rejected_labels")


def tokenized_schema(pairs: bool = False):
    import pyarrow as pa

    tokens = PAIR_TOKEN_COLUMNS if pairs else SAMPLE_TOKEN_COLUMNS
    return pa.schema(
        [("id", pa.string()), ("source", pa.string())]
        + [(name, pa.list_(pa.int32())) for name in tokens]
        + [("num_tokens", pa.int32()), ("num_trained", pa.int32())]
    )


def _stage_schema(pairs: bool):
    """Tokenized columns plus the reject columns; exactly one of the two halves is filled."""
    import pyarrow as pa

    return pa.schema(list(tokenized_schema(pairs)) + [("reason", pa.string()), ("raw", pa.string())])


class TokenizeStage:
    """Ray Data actor (also called directly in process): rows -> tokenized rows, or rejects.

    A row is rejected with a reason when the strict validator finds problems (undeclared
    functions, arguments of the wrong type, ...), when nothing would be trained, when a trained
    turn is empty under a format without the Decision Token, when it is longer than
    `max_tokens`, when per-turn tokens drift from the full render, or (pairs) when the two
    trajectories cannot be compared turn for turn.
    """

    def __init__(self, tokenizer_dir: str, fmt: dict, train_on: str = "all", max_tokens: int | None = None,
                 pairs: bool = False):
        from transformers import AutoTokenizer

        from raypipe.templates.tokenize import check_tokenizer

        self.fmt = get_format(fmt)
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        check_tokenizer(self.tokenizer, self.fmt)
        self.train_on = train_on
        self.max_tokens = max_tokens
        self.pairs = pairs

    def __call__(self, batch):
        import pyarrow as pa

        make = self.pair if self.pairs else self.row
        return pa.Table.from_pylist([make(raw) for raw in batch.to_pylist()], schema=_stage_schema(self.pairs))

    def row(self, raw: dict[str, Any]) -> dict[str, Any]:
        from raypipe.schema import Sample, canonical_json

        sample = Sample.from_row(raw)
        out = {"id": sample.id, "source": sample.source}
        reason = _invalid(sample, "") or _empty_target(sample, self.fmt, self.train_on, "")
        if reason is None:
            tokens, reason = self._tokenize(lambda: self._sample_tokens(sample))
        if reason is None:
            return {**out, **tokens, **_counts(tokens["input_ids"], tokens["labels"])}
        return {**out, "reason": reason, "raw": canonical_json(sample.to_dict())}

    def pair(self, raw: dict[str, Any]) -> dict[str, Any]:
        from raypipe.schema import Sample, canonical_json

        chosen, rejected = Sample.from_row(raw["chosen"]), Sample.from_row(raw["rejected"])
        out = {"id": raw.get("id") or chosen.id, "source": raw.get("source") or chosen.source}
        reason = (_invalid(chosen, "chosen: ") or _invalid(rejected, "rejected: ")
                  or _empty_target(chosen, self.fmt, "all", "chosen: ")
                  or _empty_target(rejected, self.fmt, "all", "rejected: "))
        if reason is None:
            tokens, reason = self._tokenize(lambda: self._pair_tokens(chosen, rejected, raw.get("turn")))
        if reason is None:
            counts = _counts(tokens["chosen_input_ids"], tokens["chosen_labels"])
            counts["num_tokens"] += len(tokens["rejected_input_ids"])
            return {**out, **tokens, **counts}
        whole = {"id": out["id"], "turn": raw.get("turn"), "chosen": chosen.to_dict(), "rejected": rejected.to_dict()}
        return {**out, "reason": reason, "raw": canonical_json(whole)}

    def _sample_tokens(self, sample) -> dict:
        from raypipe.templates.tokenize import tokenize_sample

        tokens = tokenize_sample(sample, self.tokenizer, self.fmt, self.train_on, check=False)
        self._check_length(len(tokens["input_ids"]), "")
        return tokens

    def _pair_tokens(self, chosen, rejected, turn) -> dict:
        from raypipe.templates.tokenize import tokenize_pair

        tokens = tokenize_pair(chosen, rejected, turn, self.tokenizer, self.fmt, check=False)
        for side in ("chosen", "rejected"):
            self._check_length(len(tokens[f"{side}_input_ids"]), f"{side}: ")
        return tokens

    def _check_length(self, n: int, prefix: str) -> None:
        if self.max_tokens is not None and n > self.max_tokens:
            raise _TooLong(f"{prefix}too long: {n} tokens > max_tokens {self.max_tokens}")

    @staticmethod
    def _tokenize(make) -> tuple[dict | None, str | None]:
        from raypipe.templates.errors import NothingToTrain
        from raypipe.templates.tokenize import PairMismatch, TokenizationDrift

        try:
            return make(), None
        except _TooLong as err:
            return None, str(err)
        except NothingToTrain as err:
            return None, f"nothing to train: {err.reason}"
        except PairMismatch as err:
            return None, f"pair mismatch: {err}"
        except (TokenizationDrift, ValueError) as err:  # ValueError: e.g. a call name pythonic cannot write
            return None, f"cannot tokenize: {err}"


class _TooLong(Exception):
    pass


def _invalid(sample, prefix: str) -> str | None:
    """The strict validator's problems (every stage's rule), as one reject reason."""
    from raypipe.validate import validate_sample

    problems = validate_sample(sample)
    if not problems:
        return None
    shown = "; ".join(str(p) for p in problems[:5])
    more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
    return f"{prefix}invalid sample: {shown}{more}"


def _empty_target(sample, fmt: FormatConfig, train_on: str, prefix: str) -> str | None:
    from raypipe.templates.tokenize import empty_target

    reason = empty_target(sample, fmt, train_on)
    return prefix + reason if reason else None


def _counts(input_ids: list[int], labels: list[int]) -> dict[str, int]:
    from raypipe.templates.tokenize import IGNORE_INDEX

    return {"num_tokens": len(input_ids), "num_trained": sum(1 for x in labels if x != IGNORE_INDEX)}


def _split(batch, rejected: bool, pairs: bool):
    import pyarrow as pa
    import pyarrow.compute as pc

    from raypipe.io.writers import rejects_schema

    if not rejected:
        schema = tokenized_schema(pairs)
        return batch.filter(pc.is_null(batch["reason"])).select(schema.names).cast(schema)
    bad = batch.filter(pc.is_valid(batch["reason"])).select(["id", "reason", "raw"])
    n = bad.num_rows
    return pa.table({
        "file": pa.nulls(n, pa.string()), "line": pa.nulls(n, pa.int64()), "id": bad["id"],
        "stage": pa.array([STAGE] * n, pa.string()), "reason": bad["reason"], "raw": bad["raw"],
    }, schema=rejects_schema())


def _batch_counts(batch):
    """One row of counts for a batch of staged rows (vectorized; summed on the driver)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ok = pc.is_null(batch["reason"])
    kinds = pc.value_counts(_reason_kinds(batch["reason"].filter(pc.invert(ok)))).to_pylist()
    return pa.table({
        "rows_in": [batch.num_rows],
        "rows_out": [int(pc.sum(ok.cast(pa.int64())).as_py() or 0)],
        "tokens": [int(pc.sum(batch["num_tokens"].filter(ok)).as_py() or 0)],
        "trained_tokens": [int(pc.sum(batch["num_trained"].filter(ok)).as_py() or 0)],
        "reasons": [json.dumps({k["values"]: k["counts"] for k in kinds})],
    })


def _reason_kinds(reasons):
    """`too long: 900 tokens > ...` -> `too long`; `chosen: invalid sample: ...` -> `invalid sample`."""
    import pyarrow.compute as pc

    stripped = pc.replace_substring_regex(reasons, r"^(chosen|rejected): ", "")
    return pc.replace_substring_regex(stripped, r":.*$", "")


def _summary(parts, *, inputs, fmt, train_on, max_tokens, tokenizer_path, tokenizer_dir, added, vocab_size,
             pairs, fingerprint) -> dict[str, Any]:
    reasons: dict[str, int] = {}
    totals = {"rows_in": 0, "rows_out": 0, "tokens": 0, "trained_tokens": 0}
    for part in parts:
        for key in totals:
            totals[key] += int(part[key])
        for kind, count in json.loads(part["reasons"]).items():
            reasons[kind] = reasons.get(kind, 0) + int(count)
    summary = {
        "stage": STAGE, "kind": "pairs" if pairs else "samples",
        "rows_in": totals["rows_in"], "rows_out": totals["rows_out"],
        "rejected": sum(reasons.values()), "rejected_by_reason": reasons,
        "tokens": totals["tokens"], "trained_tokens": totals["trained_tokens"],
        "format": format_name(fmt), "format_config": fmt.to_dict(), "train_on": train_on,
        "max_tokens": max_tokens, "tokenizer": tokenizer_path, "tokenizer_out": tokenizer_dir,
        "added_special_tokens": added, "vocab_size": vocab_size, "inputs": list(inputs),
        "fingerprint": fingerprint,
    }
    if summary["rows_in"] != summary["rows_out"] + summary["rejected"]:
        raise RuntimeError(f"tokenize lost rows: {summary['rows_in']} in, {summary['rows_out']} out, "
                           f"{summary['rejected']} rejected")
    return summary


def _prepare(inputs, out_dir: str, tokenizer_path: str, fmt, train_on: str, max_tokens, pairs: bool):
    """The tokenizer (+ the format's special tokens; saved under out/tokenizer by `_save_tokenizer`
    once the run holds the output folder) and the options' fingerprint."""
    from transformers import AutoTokenizer

    from raypipe.errors import RaypipeError
    from raypipe.io import fs
    from raypipe.templates.tokenize import add_special_tokens

    if train_on not in ("all", "last"):
        raise RaypipeError(f"tokenize: train_on must be 'all' or 'last', got {train_on!r}")
    fmt = get_format(fmt)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    added = add_special_tokens(tokenizer, fmt)
    tokenizer_dir = fs.join(out_dir, "tokenizer")
    files = _input_files(inputs, pairs)
    fingerprint = input_fingerprint(files, {
        "format": fmt.to_dict(), "train_on": train_on, "max_tokens": max_tokens, "pairs": pairs,
        "vocab": len(tokenizer), "added": added,
    })
    info = {"inputs": inputs, "fmt": fmt, "train_on": train_on, "max_tokens": max_tokens,
            "tokenizer_path": tokenizer_path, "tokenizer_dir": tokenizer_dir, "added": added,
            "vocab_size": len(tokenizer), "pairs": pairs, "fingerprint": fingerprint, "tokenizer": tokenizer}
    return fmt, tokenizer_dir, files, info


def _save_tokenizer(info: dict[str, Any]) -> None:
    from raypipe.templates.jinja import save_tokenizer

    save_tokenizer(info.pop("tokenizer"), info["fmt"], info["tokenizer_dir"])


def tokenize_dataset(
    inputs: list[str],
    out_dir: str,
    tokenizer_path: str,
    fmt: FormatConfig | str = "tools-dt",
    *,
    train_on: str = "all",
    max_tokens: int | None = None,
    num_workers: int = 2,
    pairs: bool = False,
    reuse: bool = False,
) -> dict[str, Any]:
    """Tokenize `inputs` (canonical sample files/globs/folders, or DPO pair Parquet with
    `pairs=True`) into `out_dir` on Ray Data actors; returns the summary. With `reuse`, an
    existing output whose fingerprint matches is kept as it is."""
    import ray.data

    from raypipe.io import read_samples
    from raypipe.io.dataset import begin_write

    fmt, tokenizer_dir, files, info = _prepare(inputs, out_dir, tokenizer_path, fmt, train_on, max_tokens, pairs)
    if reuse and (prior := _current(out_dir, info["fingerprint"])):
        return prior
    with begin_write(out_dir, STAGE, files) as writer:
        _save_tokenizer(info)
        source = ray.data.read_parquet(files) if pairs else read_samples(files)
        staged = source.map_batches(
            TokenizeStage,
            fn_constructor_kwargs={"tokenizer_dir": tokenizer_dir, "fmt": fmt.to_dict(), "train_on": train_on,
                                   "max_tokens": max_tokens, "pairs": pairs},
            # an autoscaling pool (1..num_workers actors) never takes every CPU from the read tasks
            batch_format="pyarrow", batch_size=256, concurrency=(1, max(1, num_workers)),
        ).materialize()  # computed once, then committed block by block
        parts = staged.map_batches(_commit_block, fn_kwargs={"writer": writer, "pairs": pairs},
                                   batch_format="pyarrow", batch_size=None).take_all()
        return _finalize(writer, parts, info)


def tokenize_local(
    inputs: list[str],
    out_dir: str,
    tokenizer_path: str,
    fmt: FormatConfig | str = "tools-dt",
    *,
    train_on: str = "all",
    max_tokens: int | None = None,
    pairs: bool = False,
    reuse: bool = False,
    batch_rows: int = 1024,
) -> dict[str, Any]:
    """`tokenize_dataset` in this process, without Ray (training alone, `num_workers: 0`):
    the same stage, the same output layout."""
    from raypipe.io.dataset import begin_write

    fmt, tokenizer_dir, files, info = _prepare(inputs, out_dir, tokenizer_path, fmt, train_on, max_tokens, pairs)
    if reuse and (prior := _current(out_dir, info["fingerprint"])):
        return prior
    with begin_write(out_dir, STAGE, files) as writer:
        _save_tokenizer(info)
        stage = TokenizeStage(tokenizer_dir, fmt.to_dict(), train_on, max_tokens, pairs)
        parts = []
        for batch in _local_batches(files, pairs, batch_rows):
            parts += _commit_block(stage(batch), writer, pairs).to_pylist()
        return _finalize(writer, parts, info)


def _local_batches(files: list[str], pairs: bool, batch_rows: int):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raypipe.io import read_sample_file
    from raypipe.schema import arrow_schema

    for path in files:
        if pairs:
            yield from pq.read_table(path).to_batches(max_chunksize=batch_rows)
            continue
        rows = [s.to_row() for s in read_sample_file(path)]
        for i in range(0, len(rows), batch_rows):
            yield pa.Table.from_pylist(rows[i:i + batch_rows], schema=arrow_schema())


def input_fingerprint(files: list[str], options: dict[str, Any]) -> str:
    """Inputs (path, size, mtime) and options: equal fingerprints, equal tokenized output."""
    from raypipe.io import fs

    described = [(f, *fs.stat(f)) for f in files]
    blob = json.dumps({"files": described, "options": options}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _input_files(inputs: list[str], pairs: bool) -> list[str]:
    from raypipe.io import fs
    from raypipe.io.readers import SAMPLE_EXTENSIONS

    return fs.expand(inputs, (".parquet",) if pairs else SAMPLE_EXTENSIONS)


# -- tokenized data on disk: every read and write of it goes through here ---------------------


def tokenized_files(path: str) -> list[str]:
    """The committed Parquet files of a tokenized dataset (a folder written by tokenize), or of
    plain Parquet files and globs."""
    from raypipe.io.dataset import expand_inputs

    return [f for f in expand_inputs(path, (".parquet",)) if f.endswith(".parquet")]


def read_summary(out_dir: str) -> dict[str, Any] | None:
    from raypipe.io import fs

    path = fs.join(out_dir, "summary.json")
    return json.loads(fs.read_text(path)) if fs.exists(path) else None


def _current(out_dir: str, fingerprint: str) -> dict[str, Any] | None:
    """The summary of an existing, complete output made from the same inputs and options."""
    from raypipe.io.dataset import open_dataset

    prior = read_summary(out_dir)
    if not prior or prior.get("fingerprint") != fingerprint or not open_dataset(out_dir).complete:
        return None
    return {**prior, "reused": True}


def _commit_block(block, writer, pairs: bool):
    """One commit per block of staged rows, named by the hash of its ids (a retried task
    rewrites its own commit); returns the block's counts."""
    ids = block.column("id").to_pylist()
    name = "b" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:20]
    writer.commit(name, data=_split(block, False, pairs), rejects=_split(block, True, pairs))
    return _batch_counts(block)


def _finalize(writer, parts: list[dict], info: dict[str, Any]) -> dict[str, Any]:
    summary = _summary(parts, **info)
    writer.finalize(rows_in=summary["rows_in"], summary=summary)
    return summary
