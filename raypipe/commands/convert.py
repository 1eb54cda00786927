"""`raypipe convert`: source-format files -> canonical samples + rejects (and the job step)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Literal

from raypipe.config import input_paths, number, output_path
from raypipe.errors import RaypipeError
from raypipe.registry import Command, Step

FORMAT_NAMES = ("openai", "chat", "xlam", "glaive", "sharegpt", "bfcl", "openorca", "canonical")


@dataclass
class SourceConfig:
    format: str
    inputs: list[str] = input_paths()
    source: str | None = None  # Sample.source; default: the format name
    lang: str | None = None  # force a language; default: the format's guess, else "en"

    def __post_init__(self) -> None:
        if self.format not in FORMAT_NAMES:
            raise ValueError(f"format {self.format!r} is not one of {list(FORMAT_NAMES)}")


@dataclass
class ConvertConfig:
    out: str = output_path()
    sources: list[SourceConfig] = field(default_factory=list)
    strict: bool = False  # fail the job if any row is rejected
    output: Literal["parquet", "jsonl"] = "parquet"
    shard_rows: int = number(ge=1, default=50_000)
    force: bool = False  # convert again even if OUT holds a finished run of the same inputs

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("sources: give at least one {format, inputs}")
        if self.shard_rows < 1:
            raise ValueError("shard_rows must be >= 1")


def convert(config: ConvertConfig, log=print, use_ray: bool = False):
    from raypipe.io.convert import convert_sources

    return convert_sources(
        [(s.format, s.inputs, s.source, s.lang) for s in config.sources], config.out,
        output=config.output, shard_rows=config.shard_rows, log=log, force=config.force, use_ray=use_ray,
    )


def _add(p) -> None:
    p.add_argument("--from", dest="format", required=True, choices=FORMAT_NAMES, help="source format")
    p.add_argument("inputs", nargs="+", help="files, globs or folders (local or s3://, gs://, ...)")
    p.add_argument("--out", required=True, help="output dataset folder")
    p.add_argument("--strict", action="store_true", help="exit 1 if any row is rejected")
    p.add_argument("--source", default=None, help="value of Sample.source (default: the format name)")
    p.add_argument("--lang", default=None, help="force the language tag (e.g. zh-TW)")
    p.add_argument("--output", choices=("parquet", "jsonl"), default="parquet", help="shard format")
    p.add_argument("--shard-rows", type=int, default=50_000, help="rows per shard")
    p.add_argument("--force", action="store_true",
                   help="convert again even if OUT holds a finished run of the same inputs")


def _run(args) -> int:
    from raypipe.config import load_config

    config = load_config(ConvertConfig, dict(  # checked like a job step: --shard-rows 0 is one line
        out=args.out, strict=args.strict, output=args.output, shard_rows=args.shard_rows, force=args.force,
        sources=[dict(format=args.format, inputs=args.inputs, source=args.source, lang=args.lang)],
    ), where="convert")
    report = convert(config, log=lambda msg: print(msg, file=sys.stderr))
    for r in report.rejects_preview:
        print(f"rejected {r['file']}:{r['line']}: {r['reason']}", file=sys.stderr)
    if report.rejected > len(report.rejects_preview):
        print(f"... {report.rejected - len(report.rejects_preview)} more in {args.out}/rejects/", file=sys.stderr)
    return 1 if (args.strict and report.rejected) else 0


def _step(config: ConvertConfig, ctx) -> dict:
    report = convert(config, use_ray=True)  # files in parallel as Ray tasks
    for r in report.rejects_preview[:5]:
        print(f"[raypipe] rejected {r['file']}:{r['line']}: {r['reason']}", flush=True)
    if config.strict and report.rejected:
        raise RaypipeError(f"convert: {report.rejected} row(s) rejected (strict); see {config.out}/rejects/")
    return {"out": config.out, **report.summary["counts"], "up_to_date": report.up_to_date}


COMMANDS = [Command(
    path=("convert",), help="convert source-format files to canonical samples",
    description="Convert files in a source format to canonical samples (Parquet/JSONL shards). "
    "Rows that cannot be converted or fail validation go to OUT/rejects/ with file, line and "
    "reason; counts (in = out + rejected) are printed and written to OUT/summary.json. Formats: "
    "openai, chat, xlam, glaive, sharegpt, bfcl, openorca, canonical.",
    add_arguments=_add, run=_run,
)]
STEPS = [Step(kind="convert", config=ConvertConfig, run=_step,
              help="convert source files into one canonical dataset folder")]
