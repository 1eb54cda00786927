"""`raypipe stats`: counts by source/lang, calls, functions, turns and tokens (and the job step)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from raypipe.config import input_paths, number, output_path
from raypipe.registry import Command, Step


@dataclass
class StatsConfig:
    paths: list[str] = input_paths()  # canonical files, globs or dataset folders
    out: str | None = output_path(kind="file", default=None)  # write the report as JSON here
    tokenizer: str | None = input_paths(default=None)  # a tokenizer folder: also count tokens per rendered sample
    template: str = "tools-dt"  # raypipe.templates preset used to render samples for token counts
    num_workers: int = number(ge=1, default=2)  # at most this many Ray actors counting tokens (with a tokenizer)


def _add(p) -> None:
    p.add_argument("paths", nargs="+", help="files, globs or dataset folders")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder: count tokens per rendered sample")
    p.add_argument("--template", default="tools-dt", help="template preset used to render for token counts")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="read a dataset whose run did not finish (its committed rows only)")


def _run(args) -> int:
    from raypipe.io import iter_samples
    from raypipe.io.stats import StatsAccumulator, TokenCounter, format_report, row_stats

    counter = TokenCounter(args.tokenizer, args.template) if args.tokenizer else None
    acc = StatsAccumulator()
    for sample in iter_samples(args.paths, allow_incomplete=args.allow_incomplete):
        row = row_stats(sample)
        if counter:
            row["tokens"] = counter(sample)
        acc.add(row)
    report = acc.report()
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_report(report))
    return 0


class RowStatsStage:
    """Ray Data actor: sample rows -> per-row stats (tokenizer loaded once per actor)."""

    def __init__(self, tokenizer: str | None, template: str):
        from raypipe.io.stats import TokenCounter

        self.counter = TokenCounter(tokenizer, template) if tokenizer else None

    def __call__(self, batch):
        import pyarrow as pa

        from raypipe.io.stats import row_stats
        from raypipe.schema import Sample

        rows = []
        for raw in batch.to_pylist():
            sample = Sample.from_row(raw)
            row = row_stats(sample)
            if self.counter:
                row["tokens"] = self.counter(sample)
            rows.append(row)
        return pa.Table.from_pylist(rows, schema=_stats_schema())


def _stats_schema():
    import pyarrow as pa

    return pa.schema([("id", pa.string()), ("source", pa.string()), ("lang", pa.string()), ("functions", pa.int64()),
                      ("calls", pa.int64()), ("call_turns", pa.int64()), ("parallel", pa.bool_()),
                      ("user_turns", pa.int64()), ("messages", pa.int64()), ("tokens", pa.int64())])


def _step(config: StatsConfig, ctx) -> dict:
    from raypipe.io import fs, read_samples
    from raypipe.io.stats import StatsAccumulator, format_report

    ds = read_samples(config.paths)
    if config.tokenizer:  # actors, so each loads the tokenizer once
        stats = ds.map_batches(
            RowStatsStage, fn_constructor_kwargs={"tokenizer": config.tokenizer, "template": config.template},
            batch_format="pyarrow", concurrency=(1, config.num_workers),
        )
    else:
        stats = ds.map_batches(RowStatsStage(None, config.template), batch_format="pyarrow")
    acc = StatsAccumulator()
    for batch in stats.iter_batches(batch_format="pyarrow", batch_size=4096):
        for row in batch.to_pylist():
            acc.add(row)
    report = acc.report()
    print(format_report(report), flush=True)
    if config.out:
        fs.write_text(config.out, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return {"samples": report["samples"], "with_calls": report["with_calls"], "out": config.out}


COMMANDS = [Command(
    path=("stats",), help="dataset statistics (sources, languages, calls, turns, tokens)",
    description="Counts by source and language, calls / functions / user turns per sample "
    "(mean, p50, p95, max, histogram), and tokens per rendered sample when --tokenizer is given.",
    add_arguments=_add, run=_run,
)]
STEPS = [Step(kind="stats", config=StatsConfig, run=_step, help="dataset statistics on Ray")]
