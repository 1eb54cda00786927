"""Glue between the synthesis stages and the LLM engine (`raypipe.llm`).

The reasoning and translation stages make several requests per sample (one per tool-call
turn, one per chunk), so they run as engine *programs*; their dry run renders every one of
those requests through the engine's dry-run report, one request per row.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from raypipe.llm.config import LLMConfig
from raypipe.llm.errors import RowError
from raypipe.schema import Sample
from raypipe.synth.prompting import first_problems
from raypipe.validate import validate_sample

RequestsOf = Callable[[Sample], list[list[dict]]]


def checked(validate: Callable[[Any], list[str]]) -> Callable[[Any], None]:
    """Turn a validator returning every problem into what `chat_json` wants (ValueError to
    re-ask, with every problem listed so the teacher can fix them all at once)."""

    def run(answer: Any) -> None:
        problems = validate(answer)
        if problems:
            raise ValueError(first_problems(problems, limit=20))

    return run


def valid_input(sample: Sample) -> Sample:
    """Reject an invalid sample before paying for any request about it."""
    problems = validate_sample(sample)
    if problems:
        raise RowError("validation error: input sample is invalid: " + first_problems([str(p) for p in problems]))
    return sample


def valid_output(sample: Sample) -> dict:
    """The output row, after the same strict check every input passed."""
    problems = validate_sample(sample)
    if problems:
        raise RowError("validation error: output sample is invalid: " + first_problems([str(p) for p in problems]))
    return sample.to_row()


def run_program_stage(*, inputs: list[str], out: str, llm: LLMConfig, stage: str, program,
                      requests_of: RequestsOf, dry_run: bool) -> dict[str, Any]:
    """Read `inputs`, then either run `program` on every sample row through the engine, or
    (dry run) render every request `requests_of(sample)` would send and report their cost."""
    from raypipe.io import read_samples
    from raypipe.llm import run_llm_program
    from raypipe.schema import arrow_schema

    ds = read_samples(inputs)
    if dry_run:
        from raypipe.llm.dryrun import dry_run_report

        def explode(row: dict) -> list[dict]:
            return [{"messages": json.dumps(m)} for m in requests_of(Sample.from_row(row))]

        report = dry_run_report(ds.flat_map(explode), llm=llm, stage=stage,
                                build_messages=lambda r: json.loads(r["messages"]))
        report["note"] = "first attempts only; re-asks after a rejected answer come on top"
        return report
    return run_llm_program(ds, llm=llm, program=program, out_dir=out, stage=stage,
                           output_schema=arrow_schema())
