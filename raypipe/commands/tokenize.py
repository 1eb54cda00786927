"""`raypipe tokenize`: canonical samples -> tokenized Parquet with loss labels (and the job step)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from raypipe.config import input_paths, number, output_path
from raypipe.registry import Command, Step


@dataclass
class TokenizeConfig:
    inputs: list[str] = input_paths()  # canonical sample files, globs or dataset folders (pairs: DPO pair Parquet)
    out: str = output_path()  # output folder: data/, rejects/, tokenizer/, summary.json
    tokenizer: str = input_paths()  # tokenizer folder (a base model's); special tokens are added to a copy
    format: str = "tools-dt"  # template preset (docs/templates.md)
    train_on: str = "all"  # "all" assistant turns, or only the "last" one
    max_tokens: int | None = number(ge=1, default=None)  # longer rows are rejected (set it to the training seq_len)
    num_workers: int = number(ge=1, default=2)  # Ray actors tokenizing
    pairs: bool = False  # inputs are multi-turn DPO pairs (raypipe.schema.dpo_pair_schema)


def _add(p) -> None:
    p.add_argument("inputs", nargs="+", help="canonical sample files, globs or dataset folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tokenizer", required=True, help="tokenizer folder")
    p.add_argument("--format", default="tools-dt", help="template preset (see docs/templates.md)")
    p.add_argument("--train-on", choices=("all", "last"), default="all", help="assistant turns to train on")
    p.add_argument("--max-tokens", type=int, default=None, help="reject rows longer than this")
    p.add_argument("--num-workers", type=int, default=2, help="Ray actors tokenizing")
    p.add_argument("--pairs", action="store_true",
                   help="inputs are multi-turn DPO pairs (Parquet, raypipe.schema.dpo_pair_schema)")
    p.add_argument("--address", default=None, help="Ray address (default: local in-process Ray)")


def _run(args) -> int:
    from raypipe.jobs import RayConfig, init_ray

    init_ray(RayConfig(), args.address)
    config = TokenizeConfig(
        inputs=args.inputs, out=args.out, tokenizer=args.tokenizer, format=args.format,
        train_on=args.train_on, max_tokens=args.max_tokens, num_workers=args.num_workers, pairs=args.pairs,
    )
    summary = _step(config, None)
    print(json.dumps(summary, indent=2))
    return 0


def _step(config: TokenizeConfig, ctx) -> dict:
    from raypipe.errors import RaypipeError
    from raypipe.templates import get_format
    from raypipe.templates.tokenize_stage import tokenize_dataset

    if config.train_on not in ("all", "last"):
        raise RaypipeError(f"tokenize: train_on must be 'all' or 'last', got {config.train_on!r}")
    return tokenize_dataset(
        config.inputs, config.out, config.tokenizer, get_format(config.format),
        train_on=config.train_on, max_tokens=config.max_tokens, num_workers=config.num_workers,
        pairs=config.pairs,
    )


COMMANDS = [
    Command(
        path=("tokenize",),
        help="tokenize samples into Parquet (input_ids + loss labels) for training",
        description="Renders each sample in a template format, tokenizes it per turn with labels "
        "only on assistant output, and writes data/, rejects/, tokenizer/ and summary.json. Rows the "
        "strict validator refuses, rows with nothing to train, empty targets under a format without "
        "the Decision Token and rows over --max-tokens are rejected with their reason.",
        add_arguments=_add,
        run=_run,
    )
]
STEPS = [Step(kind="tokenize", config=TokenizeConfig, run=_step, help="samples -> tokenized Parquet")]
