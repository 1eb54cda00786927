"""Run raypipe commands in-process and check the invariants every command keeps on any input.

- it returns an exit code (0, 2, or a command's documented other codes); no exception escapes;
- nothing on stderr is a traceback; an exit 2 says why in `raypipe: error:` lines;
- a dataset it writes accounts for every record (in = out + rejected), every reject has a reason,
  every row it keeps is a valid canonical sample, and no file it did not own is lost.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pyarrow.parquet as pq

from raypipe.cli import main
from raypipe.io.dataset import open_dataset
from raypipe.io.formats import SourceContext, canonical
from raypipe.validate import validate_sample


def run_cli(args: list[str], allowed: tuple[int, ...] = (0, 2)) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in args])
        except SystemExit as exc:  # argparse
            rc = exc.code if isinstance(exc.code, int) else 2
    stdout, stderr = out.getvalue(), err.getvalue()
    assert "Traceback" not in stderr, stderr[-3000:]
    assert rc in allowed, (rc, args, stderr[-3000:])
    if rc == 2:
        errors = [line for line in stderr.splitlines() if line.startswith("raypipe: error: ")]
        assert errors, stderr[-3000:]
        assert all(len(line) < 2000 for line in errors), "an error line is unbounded"
    return rc, stdout, stderr


def read_rows(paths: list[str]) -> list[dict]:
    rows: list[dict] = []
    for path in paths:
        if path.endswith(".parquet"):
            rows += pq.read_table(path).to_pylist()
        else:
            text = Path(path).read_text(encoding="utf-8")
            rows += [json.loads(line) for line in text.splitlines() if line.strip()]
    return rows


def check_dataset(out: Path, expected_in: int | None) -> dict:
    """The dataset folder a convert wrote: counts add up, shards hold what the summary says,
    every reject has a reason. Returns the summary."""
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    counts = summary["counts"]
    assert counts["in"] == counts["out"] + counts["rejected"], counts
    if expected_in is not None:
        assert counts["in"] == expected_in, (counts, expected_in)
    view = open_dataset(str(out)).require_complete()  # what every reader sees: the committed files
    data, rejects = read_rows(view.data), read_rows(view.rejects)
    assert len(data) == counts["out"], (len(data), counts)
    assert len(rejects) == counts["rejected"], (len(rejects), counts)
    for r in rejects:
        assert isinstance(r["reason"], str) and r["reason"].strip(), r
        assert r["file"], r
    for row in data:  # what convert keeps is a valid canonical sample, id and all
        sample = canonical.convert(row, SourceContext(path="", source=""))
        assert validate_sample(sample) == [], (validate_sample(sample), row)
    return summary
