"""`raypipe validate`: every problem of every row, with file, line and field path (and the job step)."""

from __future__ import annotations

import json
import posixpath
import sys
from dataclasses import dataclass

from raypipe.config import input_paths, number, output_path
from raypipe.errors import RaypipeError
from raypipe.registry import Command, Step
from raypipe.commands.convert import FORMAT_NAMES


@dataclass
class ValidateConfig:
    paths: list[str] = input_paths()  # canonical files, globs or dataset folders
    problems_out: str | None = output_path(kind="file", default=None)  # JSONL file listing every problem (id, problem)
    fail_on_problems: bool = True  # fail the job if any sample has a problem
    show: int = number(ge=0, default=20)  # problems printed to the job log


def _add(p) -> None:
    p.add_argument("paths", nargs="+", help="files, globs or dataset folders")
    p.add_argument("--from", dest="format", default="canonical", choices=FORMAT_NAMES,
                   help="validate source-format files as they would be converted")
    p.add_argument("--max-show", type=int, default=0, help="print at most this many problems (0: all)")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="read a dataset whose run did not finish (its committed rows only)")


def _run(args) -> int:
    from raypipe.io.convert import get_format
    from raypipe.io.validation import check_files

    rows = bad_rows = shown = n_problems = 0
    for findings in check_files(args.paths, get_format(args.format), allow_incomplete=args.allow_incomplete):
        rows += 1
        if findings:
            bad_rows += 1
        for f in findings:
            n_problems += 1
            if not args.max_show or shown < args.max_show:
                print(f)
                shown += 1
    print(f"{rows} rows checked, {rows - bad_rows} valid, {bad_rows} with {n_problems} problem(s)",
          file=sys.stderr)
    return 1 if bad_rows else 0


def _step(config: ValidateConfig, ctx) -> dict:
    from raypipe.io import fs, read_samples
    from raypipe.io.validation import validate_dataset

    rows = bad_rows = n_problems = 0
    out = None
    if config.problems_out:
        filesystem, inner = fs.resolve(config.problems_out)
        filesystem.create_dir(posixpath.dirname(inner) or ".", recursive=True)
        out = filesystem.open_output_stream(inner)
    try:
        for sample_id, problems in validate_dataset(read_samples(config.paths)):
            rows += 1
            if not problems:
                continue
            bad_rows += 1
            for p in problems:
                n_problems += 1
                if n_problems <= config.show:
                    print(f"[raypipe] invalid [{sample_id}]: {p}", flush=True)
                if out is not None:
                    out.write((json.dumps({"id": sample_id, "problem": p}, ensure_ascii=False) + "\n").encode())
    finally:
        if out is not None:
            out.close()
    summary = {"rows": rows, "valid": rows - bad_rows, "invalid": bad_rows, "problems": n_problems}
    if bad_rows and config.fail_on_problems:
        raise RaypipeError(f"validate: {bad_rows} of {rows} samples have problems"
                           + (f" (all listed in {config.problems_out})" if config.problems_out else ""))
    return summary


COMMANDS = [Command(
    path=("validate",), help="check samples against their function specs; print every problem",
    description="Validate canonical samples (or source-format files with --from): every tool call "
    "names a declared function, required arguments present, no undeclared arguments, types and "
    "enums respected, tool results follow calls. Prints every problem as FILE:LINE [ID]: PATH: "
    "MESSAGE and exits 1 if there is any.",
    add_arguments=_add, run=_run,
)]
STEPS = [Step(kind="validate", config=ValidateConfig, run=_step,
              help="validate a dataset on Ray; every problem listed")]
