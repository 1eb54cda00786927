"""Every shipped job file validates (this covers every area's jobs/*.yaml)."""

from pathlib import Path

import pytest

from raypipe.jobs import load_job
from raypipe.commands import all_steps

pytestmark = pytest.mark.unit

JOBS = sorted((Path(__file__).resolve().parents[2] / "jobs").glob("*.yaml"))


def test_there_are_job_files():
    assert any(p.name == "quickstart.yaml" for p in JOBS)


@pytest.mark.parametrize("path", JOBS, ids=[p.name for p in JOBS])
def test_job_file_validates(path):
    job, planned = load_job(path)
    assert job.name and planned


def test_step_kinds_are_unique_and_documented():
    steps = all_steps()  # raises if two modules register the same kind
    assert {"convert", "validate", "stats"} <= set(steps)
    for kind, step in steps.items():
        assert step.help, f"step {kind!r} has no help text"


def test_quickstart_converts_every_source_format_then_validates_and_counts():
    from raypipe.commands.convert import FORMAT_NAMES

    _, planned = load_job(next(p for p in JOBS if p.name == "quickstart.yaml"))
    kinds = [p.step.kind for p in planned]
    assert kinds[:3] == ["convert", "validate", "stats"]
    formats = {s.format for s in planned[0].config.sources}
    assert formats == set(FORMAT_NAMES)
    for source in planned[0].config.sources:
        for path in source.inputs:
            assert (JOBS[0].parents[1] / path).exists(), path
