"""A real Ray head (`ray start --head` on 127.0.0.1 in a temp dir, tests/cluster.py), a job
submitted with `ray job submit --working-dir . -- raypipe run ...`, waited for until
SUCCEEDED, its output checked, and the head stopped (by killing its own processes, never
`ray stop`)."""

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_ray_job_submit_runs_a_raypipe_job(ray_cluster, tmp_path):
    cluster = ray_cluster(worker_nodes=0, head_cpus=2)
    out = tmp_path / "converted"
    job = tmp_path / "job.yaml"
    # Inputs are relative to the uploaded working dir; the output is an absolute path on this machine.
    job.write_text(
        "name: submit-test\n"
        "steps:\n"
        f"  - convert: {{out: {out}, sources: [{{format: xlam, inputs: [raypipe/data/sources/xlam.json]}},"
        " {format: glaive, inputs: [raypipe/data/sources/glaive_v2.json]}]}\n"
    )
    logs = cluster.run_job("raypipe", "run", str(job))

    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"in": 16, "out": 16, "rejected": 0}
    assert "[raypipe] joined the Ray cluster at" in logs  # the driver joined the head, not a local Ray
    assert "[raypipe] job 'submit-test' finished" in logs

    # The uploaded working dir holds the code and data but none of the git-ignored folders.
    packages = [p for p in Path(cluster.head.temp_dir).glob("session_*/runtime_resources/working_dir_files/_ray_pkg_*")
                if p.is_dir()]
    assert packages, "working dir package not found"
    uploaded = {p.name for p in packages[0].iterdir()}
    assert {"raypipe", "jobs", "pyproject.toml"} <= uploaded
    assert not uploaded & {".venv", "runs", ".git", "raypipe.egg-info"}
    size = sum(f.stat().st_size for f in packages[0].rglob("*") if f.is_file())
    assert size < 20 * 1024 * 1024, f"uploaded working dir is {size / 1e6:.1f} MB"
