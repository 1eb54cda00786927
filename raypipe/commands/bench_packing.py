"""`raypipe bench packing`: share of non-pad tokens, packed vs padded batching, side by side.

By default one pass over the shipped sample data (55 samples); `--epochs N` repeats the
tokenized rows N times before batching, as a multi-epoch run would see them (both methods get
the same rows). Packing: first-fit decreasing into rows of `--seq-len`. Padding: rows in shuffled
order, `--batch-size` per batch, each batch padded to its longest row (dynamic padding; the
figure for padding every row to `--seq-len` is printed too).
"""

from __future__ import annotations

import json
import random
import time

from raypipe.registry import Command


def _add(p) -> None:
    p.add_argument("samples", nargs="*", help="canonical sample files (default: the shipped sample data)")
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--format", default="tools-dt", help="template preset")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (default: tiny BPE trained on the samples)")
    p.add_argument("--epochs", type=int, default=1, help="times the rows are repeated before batching")
    p.add_argument("--batch-size", type=int, default=8, help="samples per padded batch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def bench_packing(samples, tokenizer, fmt, *, seq_len, epochs, batch_size, seed) -> dict:
    from raypipe.templates import NothingToTrain, TokenizationDrift, tokenize_sample
    from raypipe.templates.batching import pack, pad_batch

    rows, rejected, too_long = [], 0, 0
    for sample in samples:
        try:
            row = tokenize_sample(sample, tokenizer, fmt)
        except (NothingToTrain, TokenizationDrift):
            rejected += 1
            continue
        if len(row["input_ids"]) > seq_len:
            too_long += 1
            continue
        rows.append(row)
    rows = rows * epochs
    tokens = sum(len(r["input_ids"]) for r in rows)

    started = time.perf_counter()
    packed = pack(rows, seq_len)
    pack_seconds = time.perf_counter() - started

    shuffled = rows[:]
    random.Random(seed).shuffle(shuffled)
    padded_cells = 0
    for i in range(0, len(shuffled), batch_size):
        batch = pad_batch(shuffled[i : i + batch_size], pad_id=0)
        padded_cells += sum(len(ids) for ids in batch["input_ids"])
    packed_fraction = tokens / (len(packed) * seq_len) if packed else 0.0
    padded_fraction = tokens / padded_cells if padded_cells else 0.0
    return {
        "non_pad_fraction": {
            "packed": round(packed_fraction, 4),
            "padded": round(padded_fraction, 4),
            "padded_to_seq_len": round(tokens / (len(rows) * seq_len), 4) if rows else 0.0,
        },
        "packed_over_padded": round(packed_fraction / padded_fraction, 3) if padded_fraction else None,
        "rows": {"packed": len(packed), "padded": len(rows)},
        "tokens": tokens,
        "samples": len(rows) // max(epochs, 1),
        "epochs": epochs,
        "seq_len": seq_len,
        "batch_size": batch_size,
        "rejected": rejected,
        "too_long": too_long,
        "pack_seconds": round(pack_seconds, 4),
    }


def _run(args) -> int:
    from raypipe.data import IF_JSONL, SAMPLES_JSONL
    from raypipe.io import iter_samples
    from raypipe.templates import add_special_tokens, get_format, render

    fmt = get_format(args.format)
    samples = list(iter_samples(args.samples or [str(SAMPLES_JSONL), str(IF_JSONL)]))
    if args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
        tokenizer_name = args.tokenizer
    else:
        from raypipe.tiny import make_tiny_tokenizer

        tokenizer = make_tiny_tokenizer([render(s, fmt) for s in samples], vocab_size=800)
        tokenizer_name = "tiny byte-level BPE (vocab 800) trained on the samples"
    add_special_tokens(tokenizer, fmt)
    report = bench_packing(
        samples, tokenizer, fmt,
        seq_len=args.seq_len, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
    )
    report["format"] = args.format
    report["tokenizer"] = tokenizer_name
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        frac = report["non_pad_fraction"]
        print(f"{report['samples']} samples x {report['epochs']} epochs, {report['tokens']} tokens, seq_len {report['seq_len']}")
        print(f"{'':24}{'non-pad':>10}{'rows':>8}")
        print(f"{'packed (FFD)':24}{frac['packed']:>10.3f}{report['rows']['packed']:>8}")
        print(f"{'padded (batch ' + str(report['batch_size']) + ')':24}{frac['padded']:>10.3f}{report['rows']['padded']:>8}")
        print(f"packed / padded = {report['packed_over_padded']}")
    return 0


COMMANDS = [
    Command(
        path=("bench", "packing"),
        help="non-pad token share of packed vs padded batches on sample data",
        add_arguments=_add,
        run=_run,
    )
]
