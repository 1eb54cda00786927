"""raypipe's own format: `Sample.to_dict()` JSON Lines or `Sample.to_row()` Parquet rows."""

from __future__ import annotations

from raypipe.io.formats.base import ConversionError, SourceContext
from raypipe.schema import SCHEMA_VERSION, Sample


def convert(record: dict, ctx: SourceContext) -> Sample:
    version = record.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise ConversionError(f"schema_version: {version!r}, this raypipe reads {SCHEMA_VERSION}")
    try:
        if isinstance(record.get("meta"), str):  # a Parquet row: JSON-encoded columns
            sample = Sample.from_row(record)
        else:
            sample = Sample.from_dict(record)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ConversionError(f"not a canonical sample: {type(exc).__name__}: {exc}") from None
    if ctx.lang:
        sample.lang = ctx.lang
    return sample
