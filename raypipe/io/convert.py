"""Convert source files into canonical samples: parse, convert, validate, write, count.

Every record ends up either as a sample or as a reject with file, line and reason, so
`in = out + rejected` holds for every file and for the whole run.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator

from raypipe import safejson
from raypipe.errors import RaypipeError
from raypipe.io import fs
from raypipe.io.formats import ConversionError, Format, SourceContext, formats
from raypipe.io.hf_layouts import drop_arrow_nulls, expand_source_files, iter_source_records
from raypipe.io.dataset import DatasetWriter, begin_write, read_manifest
from raypipe.io.writers import DEFAULT_SHARD_ROWS, SampleWriter, check_shard_rows, finalize_samples, make_reject
from raypipe.schema import Sample, shape_problems
from raypipe.validate import validate_sample

STAGE = "convert"


def get_format(name: str) -> Format:
    table = formats()
    if name not in table:
        raise RaypipeError(f"unknown format {name!r} (known: {', '.join(table)})")
    return table[name]


def convert_file(path: str, fmt: Format, *, source: str | None = None, lang: str | None = None,
                 validate: bool = True, notes: Counter | None = None) -> Iterator[tuple[Sample | None, dict | None]]:
    """(sample, None) or (None, reject) for every record of one file. With `validate` (the
    default) converted samples must pass the strict validator, else they are rejected with every
    problem listed; `validate=False` suits callers that only want the function specs. Repairs
    made on the way (double-encoded arguments decoded, nulls an Arrow schema merge added) are
    counted in `notes`."""
    ctx = SourceContext(path=path, source=source or fmt.name, lang=lang, notes=notes if notes is not None else Counter())
    records, nested_columns = iter_source_records(path)
    for rec in records:
        def reject(reason: str, id: str | None = None) -> tuple[None, dict]:
            return None, make_reject(path, rec.line, reason, rec.raw, STAGE, id)

        if rec.error:
            yield reject(rec.error)
            continue
        try:
            sample = fmt.convert(rec.value, ctx)
        except ConversionError as exc:
            yield reject(str(exc))
            continue
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a shape no rule foresaw
            yield reject(f"cannot convert: {type(exc).__name__}: {exc}")
            continue
        except RecursionError:  # a converter walking a value nested too deep
            yield reject(f"nesting deeper than {safejson.MAX_DEPTH}")
            continue
        if nested_columns and fmt.name != "canonical":  # raypipe's own rows hold JSON strings
            ctx.notes["arrow_nulls_dropped"] += drop_arrow_nulls(sample, nested_columns)
        problems = validate_sample(sample) if validate else [
            f"{path}: {message}" for path, message in shape_problems(sample)]
        if problems:
            yield reject("invalid: " + "; ".join(str(p) for p in problems), sample.id)
        else:
            yield sample, None


@dataclass
class ConvertReport:
    summary: dict
    rejects_preview: list[dict] = field(default_factory=list)
    up_to_date: bool = False  # an earlier run with the same inputs and settings was reused

    @property
    def rejected(self) -> int:
        return self.summary["counts"]["rejected"]


def convert_files(inputs: list[str], format_name: str, out_dir: str, *, source: str | None = None,
                  lang: str | None = None, **kwargs) -> ConvertReport:
    """Convert files of one format (see `convert_sources`)."""
    return convert_sources([(format_name, inputs, source, lang)], out_dir, **kwargs)


def convert_sources(sources: list[tuple[str, list[str], str | None, str | None]], out_dir: str, *,
                    output: str = "parquet", shard_rows: int = DEFAULT_SHARD_ROWS,
                    log: Callable[[str], None] = print, preview: int = 20,
                    force: bool = False, use_ray: bool = False) -> ConvertReport:
    """Convert (format, inputs, source, lang) groups into one dataset folder.

    Each input file is one unit of work writing its own committed shards (`<file>-d<k>`, `<file>-r<k>`); with
    `use_ray` the files are converted in parallel as Ray tasks (a job on a cluster), else one
    after another in this process. The run commits into a new generation of `out_dir` (the
    commit contract); a re-run whose inputs (path, size, modification time), settings and
    raypipe version match the finished run there reuses it, unless `force`.
    """
    check_shard_rows(shard_rows)
    plan, skipped = [], []
    for format_name, inputs, source, lang in sources:
        fmt = get_format(format_name)
        files = expand_source_files(inputs)
        files = [f for f in files if not set(f.replace("\\", "/").split("/")[:-1]) & set(fmt.ignore_dirs)]
        for path in files:
            reason = fmt.skip(path) if fmt.skip else None
            if reason:  # a companion file of the format's layout: one line, not a reject per row
                skipped.append({"path": path, "format": fmt.name, "reason": reason})
                log(f"skipped {path}: {reason}")
            else:
                plan.append((fmt.name, path, source, lang))
    fingerprint = _fingerprint(plan, output, shard_rows)
    manifest = read_manifest(out_dir) if fs.exists(out_dir) else None
    if not force and manifest is not None and manifest.get("fingerprint") == fingerprint:
        previous = json.loads(fs.read_text(fs.join(out_dir, "summary.json")))
        c = previous["counts"]
        log(f"up to date: {out_dir} ({c['in']} in = {c['out']} out + {c['rejected']} rejected); "
            "same inputs and settings as the finished run there")
        return ConvertReport(previous, [], up_to_date=True)

    # A new generation: the previous output stays readable until this one is complete.
    given = [i for _, inputs, _, _ in sources for i in inputs]
    with begin_write(out_dir, STAGE, given + [path for _, path, _, _ in plan]) as writer:
        units = [(i, *item, writer, output, shard_rows, preview) for i, item in enumerate(plan)]
        if use_ray and len(units) > 1:
            import ray

            task = ray.remote(num_cpus=1)(convert_one_file)
            results = ray.get([task.remote(*u) for u in units])
        else:
            results = [convert_one_file(*u) for u in units]

        per_file, preview_rows, repairs = [], [], Counter()
        for r in results:
            per_file.append(r["file"])
            preview_rows += r["preview"][: preview - len(preview_rows)]
            f = r["file"]
            repairs.update(f.get("repairs", {}))
            log(f"{f['path']} ({f['format']}): {f['in']} in, {f['out']} out, {f['rejected']} rejected"
                + "".join(f", {n} {what.replace('_', ' ')}" for what, n in sorted(f.get("repairs", {}).items())))
        summary = finalize_samples(writer, {"stage": STAGE, "fingerprint": fingerprint, "sources": per_file,
                                            "skipped": skipped, "repairs": dict(sorted(repairs.items()))},
                                   extra_manifest={"fingerprint": fingerprint})
    c = summary["counts"]
    log(f"total: {c['in']} in = {c['out']} out + {c['rejected']} rejected -> {out_dir}"
        + (f" ({len(skipped)} file(s) skipped)" if skipped else "")
        + "".join(f"; {n} {what.replace('_', ' ')}" for what, n in sorted(repairs.items())))
    return ConvertReport(summary, preview_rows)


def convert_one_file(index: int, format_name: str, path: str, source: str | None, lang: str | None,
                     writer: DatasetWriter, output: str, shard_rows: int, preview: int) -> dict:
    """Convert one input file into committed shards `<index>-d<k>` / `<index>-r<k>` (runs as a
    Ray task too; a retried task rewrites the same shards)."""
    fmt = get_format(format_name)
    sink = SampleWriter(writer, f"{index:05d}", output, shard_rows)
    n_in = n_out = 0
    preview_rows = []
    notes: Counter = Counter()
    for sample, reject in convert_file(path, fmt, source=source, lang=lang, notes=notes):
        n_in += 1
        if sample is not None:
            sink.add(sample)
            n_out += 1
        else:
            sink.reject(reject)
            if len(preview_rows) < preview:
                preview_rows.append(reject)
    sink.finish()
    return {
        "file": {"path": path, "format": fmt.name, "sha256": fs.sha256(path), "in": n_in, "out": n_out,
                 "rejected": n_in - n_out, **({"repairs": dict(notes)} if notes else {})},
        "preview": preview_rows,
    }


def _fingerprint(plan: list, output: str, shard_rows: int) -> str:
    from raypipe import __version__
    from raypipe.schema import SCHEMA_VERSION, canonical_json

    spec = {
        "files": [[fmt, path, source, lang, *fs.stat(path)] for fmt, path, source, lang in plan],
        "output": output, "shard_rows": shard_rows, "schema": SCHEMA_VERSION, "raypipe": __version__,
    }
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()
