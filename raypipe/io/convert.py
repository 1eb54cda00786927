"""Convert source files into canonical samples: parse, convert, validate, write, count.

Every record ends up either as a sample or as a reject with file, line and reason, so
`in = out + rejected` holds for every file and for the whole run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable, Iterator

from raypipe import safejson
from raypipe.errors import RaypipeError
from raypipe.io import fs
from raypipe.io.formats import ConversionError, Format, SourceContext, formats
from raypipe.io.paths import check_output
from raypipe.io.records import iter_records
from raypipe.io.writers import DEFAULT_SHARD_ROWS, SampleWriter, make_reject, write_summary
from raypipe.schema import Sample, shape_problems
from raypipe.validate import validate_sample

STAGE = "convert"


def get_format(name: str) -> Format:
    table = formats()
    if name not in table:
        raise RaypipeError(f"unknown format {name!r} (known: {', '.join(table)})")
    return table[name]


def convert_file(path: str, fmt: Format, *, source: str | None = None, lang: str | None = None,
                 validate: bool = True) -> Iterator[tuple[Sample | None, dict | None]]:
    """(sample, None) or (None, reject) for every record of one file. With `validate` (the
    default) converted samples must pass the strict validator, else they are rejected with every
    problem listed; `validate=False` suits callers that only want the function specs."""
    ctx = SourceContext(path=path, source=source or fmt.name, lang=lang)
    for rec in iter_records(path):
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

    Each input file is one unit of work writing its own shards (`part-<file>-<shard>`); with
    `use_ray` the files are converted in parallel as Ray tasks (a job on a cluster), else one
    after another in this process. `summary.json` is written last and doubles as the completion
    marker: a re-run whose inputs (path, size, modification time), settings and raypipe version
    match a finished run reuses it, unless `force`.
    """
    check_output(out_dir, "dir", inputs=[path for _, inputs, _, _ in sources for path in inputs])
    plan = []
    for format_name, inputs, source, lang in sources:
        fmt = get_format(format_name)
        files = fs.expand(inputs, extensions=(".json", ".jsonl", ".parquet"))
        files = [f for f in files if not set(f.replace("\\", "/").split("/")[:-1]) & set(fmt.ignore_dirs)]
        plan += [(fmt.name, path, source, lang) for path in files]
    fingerprint = _fingerprint(plan, output, shard_rows)
    summary_path = fs.join(out_dir, "summary.json")
    if not force and fs.exists(summary_path):
        previous = json.loads(fs.read_text(summary_path))
        if previous.get("fingerprint") == fingerprint:
            c = previous["counts"]
            log(f"up to date: {out_dir} ({c['in']} in = {c['out']} out + {c['rejected']} rejected); "
                "same inputs and settings as the finished run there")
            return ConvertReport(previous, [], up_to_date=True)
    # From here on the folder is incomplete until the new summary is written.
    fs.make_dirs(out_dir)
    fs.remove_files(out_dir, "summary.json")
    for sub in ("data", "rejects"):
        fs.make_dirs(fs.join(out_dir, sub))
        fs.remove_files(fs.join(out_dir, sub), "part-")

    units = [(i, *item, out_dir, output, shard_rows, preview) for i, item in enumerate(plan)]
    if use_ray and len(units) > 1:
        import ray

        task = ray.remote(num_cpus=1)(convert_one_file)
        results = ray.get([task.remote(*u) for u in units])
    else:
        results = [convert_one_file(*u) for u in units]

    shards, reject_shards, per_file, preview_rows = [], [], [], []
    for r in results:
        shards += r["shards"]
        reject_shards += r["reject_shards"]
        per_file.append(r["file"])
        preview_rows += r["preview"][: preview - len(preview_rows)]
        f = r["file"]
        log(f"{f['path']} ({f['format']}): {f['in']} in, {f['out']} out, {f['rejected']} rejected")
    n_out = sum(f["out"] for f in per_file)
    n_rejected = sum(f["rejected"] for f in per_file)
    summary = write_summary(out_dir, n_out, n_rejected, shards, reject_shards,
                            {"stage": STAGE, "fingerprint": fingerprint, "sources": per_file})
    c = summary["counts"]
    log(f"total: {c['in']} in = {c['out']} out + {c['rejected']} rejected -> {out_dir}")
    return ConvertReport(summary, preview_rows)


def convert_one_file(index: int, format_name: str, path: str, source: str | None, lang: str | None,
                     out_dir: str, output: str, shard_rows: int, preview: int) -> dict:
    """Convert one input file into shards `part-<index>-*` of `out_dir` (runs as a Ray task too)."""
    fmt = get_format(format_name)
    writer = SampleWriter(out_dir, output, shard_rows, name=f"part-{index:05d}", clear=False)
    n_in = n_out = 0
    preview_rows = []
    for sample, reject in convert_file(path, fmt, source=source, lang=lang):
        n_in += 1
        if sample is not None:
            writer.add(sample)
            n_out += 1
        else:
            writer.reject(reject)
            if len(preview_rows) < preview:
                preview_rows.append(reject)
    shards, reject_shards = writer.finish()
    return {
        "file": {"path": path, "format": fmt.name, "sha256": fs.sha256(path), "in": n_in, "out": n_out,
                 "rejected": n_in - n_out},
        "shards": shards, "reject_shards": reject_shards, "preview": preview_rows,
    }


def _fingerprint(plan: list, output: str, shard_rows: int) -> str:
    from raypipe import __version__
    from raypipe.schema import SCHEMA_VERSION, canonical_json

    spec = {
        "files": [[fmt, path, source, lang, *fs.stat(path)] for fmt, path, source, lang in plan],
        "output": output, "shard_rows": shard_rows, "schema": SCHEMA_VERSION, "raypipe": __version__,
    }
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()
