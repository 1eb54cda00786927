"""raypipe's own format: `Sample.to_dict()` JSON Lines or `Sample.to_row()` Parquet rows.

A canonical row is checked for shape (every field of the type the schema holds) and its id
against its content (`raypipe.schema.id_problem`) before it is trusted.
"""

from __future__ import annotations

from raypipe.io.formats.base import ConversionError, SourceContext
from raypipe.schema import SCHEMA_VERSION, Sample, id_problem, shape_problems


def convert(record: dict, ctx: SourceContext) -> Sample:
    version = record.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise ConversionError(f"schema_version: {version!r}, this raypipe reads {SCHEMA_VERSION}")
    try:
        if isinstance(record.get("meta"), str):  # a Parquet row: JSON-encoded columns
            sample = Sample.from_row(record)
        else:
            sample = Sample.from_dict(record)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:  # ValueError: bad JSON inside
        raise ConversionError(f"not a canonical sample: {type(exc).__name__}: {exc}") from None
    problems = shape_problems(sample)
    if problems:
        raise ConversionError("; ".join(f"{path}: {msg}" for path, msg in problems))
    problem = id_problem(sample)
    if problem:
        raise ConversionError(problem)
    if ctx.lang:
        sample.lang = ctx.lang
    return sample
