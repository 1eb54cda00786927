"""Validate whole files or datasets: every problem of every row, each with where it is.

In-process (`check_files`, used by `raypipe validate`) each finding names file and line;
on Ray (`validate_dataset`, used by the `validate` job step) rows are checked in parallel and
each finding names the sample id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from raypipe.io.formats import ConversionError, Format, SourceContext
from raypipe.io.hf_layouts import expand_source_files, iter_source_records
from raypipe.schema import Sample, id_problem
from raypipe.validate import validate_sample


@dataclass(frozen=True)
class Finding:
    file: str | None
    line: int | None
    id: str | None
    where: str  # field path inside the sample, e.g. messages[3].tool_calls[0].arguments.unit
    message: str

    def __str__(self) -> str:
        loc = f"{self.file}:{self.line}" if self.file else "row"
        ident = f" [{self.id}]" if self.id else ""
        return f"{loc}{ident}: {self.where}: {self.message}" if self.where else f"{loc}{ident}: {self.message}"


def check_files(paths: list[str], fmt: Format, *, allow_incomplete: bool = False) -> Iterator[list[Finding]]:
    """The findings of each row (empty for a valid row) of every file, in order (a dataset
    folder: its committed files; an incomplete one is refused unless `allow_incomplete`)."""
    for path in expand_source_files(paths, allow_incomplete=allow_incomplete):
        reason = fmt.skip(path) if fmt.skip else None
        if reason:
            continue
        ctx = SourceContext(path=path, source=fmt.name)
        for rec in iter_source_records(path)[0]:
            if rec.error:
                yield [Finding(path, rec.line, None, "", rec.error)]
                continue
            try:
                sample = fmt.convert(rec.value, ctx)
            except ConversionError as exc:
                yield [Finding(path, rec.line, None, "", str(exc))]
                continue
            except (KeyError, TypeError, ValueError, AttributeError) as exc:  # as convert does
                yield [Finding(path, rec.line, None, "", f"cannot convert: {type(exc).__name__}: {exc}")]
                continue
            yield [Finding(path, rec.line, sample.id, p.path, p.message) for p in validate_sample(sample)]


def problems_of_batch(batch):
    """Ray Data map_batches fn: sample rows -> (id, problems) rows."""
    import pyarrow as pa

    out = {"id": [], "problems": []}
    for row in batch.to_pylist():
        sample = Sample.from_row(row)
        out["id"].append(sample.id)
        problems = [f"{p.path}: {p.message}" for p in validate_sample(sample)]
        wrong_id = None if problems else id_problem(sample)
        out["problems"].append(problems + ([wrong_id] if wrong_id else []))
    return pa.table(out, schema=pa.schema([("id", pa.string()), ("problems", pa.list_(pa.string()))]))


def validate_dataset(ds) -> Iterator[tuple[str, list[str]]]:
    """(sample id, problems) for every row of a Ray Dataset of sample rows."""
    checked = ds.map_batches(problems_of_batch, batch_format="pyarrow")
    for batch in checked.iter_batches(batch_format="pyarrow", batch_size=4096):
        for r in batch.to_pylist():
            yield r["id"], list(r["problems"] or [])
