"""The error contract across Ray (issue 14 items 3 and 5): a raypipe error raised in a Ray task,
a Ray Data UDF or an actor's constructor comes back as one `raypipe: error:` line; a job keeps
Ray's own log noise off the terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from raypipe.cli import main
from raypipe.contract import user_error_lines
from raypipe.data import SAMPLES_JSONL
from raypipe.errors import FatalJobError, RaypipeError

pytestmark = pytest.mark.integration

DEEP = "[" * 3000 + "]" * 3000


def test_raypipe_errors_come_back_from_tasks_udfs_and_actors(local_ray):
    import ray
    import ray.data

    # Defined here so that Ray ships them by value (workers cannot import this test module).
    def _fail_task():
        raise RaypipeError("x.jsonl:3: bad row")

    def _fail_batch(batch):
        raise RaypipeError("y.jsonl:4: bad row")

    class _FailingActor:
        def __init__(self):
            raise FatalJobError("environment variable NOPE_KEY is not set")

        def __call__(self, batch):
            return batch

    with pytest.raises(Exception) as task:
        ray.get(ray.remote(_fail_task).remote())
    assert user_error_lines(task.value) == ["x.jsonl:3: bad row"]

    with pytest.raises(Exception) as udf:
        ray.data.range(4).map_batches(_fail_batch).take_all()
    assert user_error_lines(udf.value) == ["y.jsonl:4: bad row"]

    with pytest.raises(Exception) as actor:
        ray.data.range(4).map_batches(_FailingActor, compute=ray.data.ActorPoolStrategy(size=1)).take_all()
    assert user_error_lines(actor.value) == ["environment variable NOPE_KEY is not set"]


def test_tokenize_names_a_deep_row_in_one_line(local_ray, tmp_path, capsys):
    from raypipe.templates import render
    from raypipe.tiny import make_tiny_tokenizer
    from raypipe.schema import Sample

    samples = [Sample.from_dict(json.loads(x)) for x in SAMPLES_JSONL.read_text().splitlines()[:5]]
    tok = make_tiny_tokenizer([render(s, "tools-dt") for s in samples], vocab_size=300)
    tok.save_pretrained(str(tmp_path / "tok"))
    src = tmp_path / "deep.jsonl"
    lines = SAMPLES_JSONL.read_text().splitlines()[:2]
    src.write_text(lines[0] + "\n" + '{"messages": ' + DEEP + "}\n" + lines[1] + "\n")
    assert main(["tokenize", str(src), "--out", str(tmp_path / "out"), "--tokenizer", str(tmp_path / "tok"),
                 "--num-workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"raypipe: error: {src}:2: nesting deeper than 100", err[-3:]
    assert not any("Traceback" in line or "RecursionError" in line for line in err)


def test_a_job_is_quiet_and_a_failure_inside_ray_is_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(SAMPLES_JSONL.read_text().splitlines()[0] + "\n{oops\n")
    job = tmp_path / "job.yaml"
    job.write_text(textwrap.dedent(f"""\
        name: quiet
        ray: {{num_cpus: 2, object_store_memory_mb: 150}}
        steps:
          - convert: {{out: {tmp_path / 'conv'}, sources: [{{format: canonical, inputs: [{SAMPLES_JSONL}]}}]}}
          - stats: {{paths: [{tmp_path / 'conv'}]}}
          - stats: {{paths: [{bad}]}}
        """))
    env = {k: v for k, v in os.environ.items() if k != "RAYPIPE_DEBUG"}
    env["RAY_DEDUP_LOGS"] = "1"
    proc = subprocess.run([sys.executable, "-m", "raypipe.cli", "run", str(job)], capture_output=True,
                          text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert err[-1] == f"raypipe: error: {bad}:2: not valid JSON: Expecting property name enclosed in double " \
                      "quotes (column 2)", err
    noise = [line for line in err[:-1] if "[raypipe]" not in line]
    # Ray's INFO lines, execution plans, progress blocks and stacks stay in Ray's log folder; a line
    # from Ray's C++ core (not a Python logger) may remain.
    assert not [line for line in noise if " INFO " in line or "Traceback" in line or "logging_progress" in line], noise
    assert len(noise) <= 2, noise
    assert "[raypipe] step 0:convert done" in proc.stdout and "[raypipe] step 1:stats done" in proc.stdout


def test_a_missing_api_key_variable_is_one_line(local_ray, tmp_path, capsys, monkeypatch):
    from raypipe.console import quiet_ray

    quiet_ray()  # what the CLI's init_ray does after starting Ray (here the session's Ray is running)
    monkeypatch.delenv("RAYPIPE_TEST_UNSET_KEY", raising=False)
    code = main(["synth", "reasoning", str(SAMPLES_JSONL), "--out", str(tmp_path / "out"),
                 "--base-url", "http://127.0.0.1:9/v1", "--api-key-env", "RAYPIPE_TEST_UNSET_KEY"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err[-5:]
    assert err[-1].startswith("raypipe: error: environment variable RAYPIPE_TEST_UNSET_KEY is not set"), err[-5:]
    assert not any("Traceback" in line for line in err), err
