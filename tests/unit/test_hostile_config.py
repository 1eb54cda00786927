"""Hostile job files and operator mistakes (issue 14 item 2 and `run --check`): alias bombs, deep
nesting, duplicate keys, bounded messages, every problem reported at once, paths checked."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from raypipe.cli import main
from raypipe.config import ConfigError, input_paths, load_config, number, output_path, short_repr
from raypipe.data import SAMPLES_JSONL
from raypipe.errors import RaypipeError
from raypipe.jobs import load_job

pytestmark = pytest.mark.unit

BOMB = textwrap.dedent("""\
    name: bomb
    steps:
      - validate:
          paths: &a9 [&a8 [&a7 [&a6 [&a5 [&a4 [&a3 [&a2 [&a1 [&a0 [x,x,x,x,x,x,x,x,x,x],*a0,*a0,*a0,*a0,*a0,*a0,*a0,*a0,*a0],*a1,*a1,*a1,*a1,*a1,*a1,*a1,*a1,*a1],*a2,*a2,*a2,*a2,*a2,*a2,*a2,*a2,*a2],*a3,*a3,*a3,*a3,*a3,*a3,*a3,*a3,*a3],*a4,*a4,*a4,*a4,*a4,*a4,*a4,*a4,*a4],*a5,*a5,*a5,*a5,*a5,*a5,*a5,*a5,*a5],*a6,*a6,*a6,*a6,*a6,*a6,*a6,*a6,*a6],*a7,*a7,*a7,*a7,*a7,*a7,*a7,*a7,*a7],*a8,*a8,*a8,*a8,*a8,*a8,*a8,*a8,*a8]
    """)


def _limit_memory():  # 1.5 GB of address space: the old loader needed 2.5 GB for this file
    resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))


def test_an_alias_bomb_is_refused_in_one_line_without_being_expanded(tmp_path):
    job = tmp_path / "bomb.yaml"
    job.write_text(BOMB)
    assert len(BOMB.encode()) < 700
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "raypipe.cli", "run", "--check", str(job)],
                          capture_output=True, text=True, timeout=300, preexec_fn=_limit_memory,
                          env={**os.environ, "RAYPIPE_DEBUG": ""})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.splitlines() == [
        f"raypipe: error: {job}: aliases expand this file to more than 100000 values (an alias bomb?); "
        "write the values out instead"]
    assert time.monotonic() - started < 60


def test_anchors_and_aliases_of_normal_size_still_work(tmp_path):
    job = tmp_path / "ok.yaml"
    job.write_text(textwrap.dedent(f"""\
        name: anchors
        steps:
          - stats: &stats {{paths: [{SAMPLES_JSONL}]}}
          - stats: *stats
        """))
    _, planned = load_job(job)
    assert [p.config.paths for p in planned] == [[str(SAMPLES_JSONL)]] * 2


@pytest.mark.parametrize("text, message", [
    ("name: x\nsteps: " + "[" * 60 + "]" * 60 + "\n", "x.yaml:2: nesting deeper than 50"),
    ("name: x\nsteps: &r [*r]\n", "recursive alias"),
    ("name: x\nsteps: []\nray: {num_cpus: " + "9" * 5000 + "}\n", "an integer of 5000 digits is out of range"),
    ("name: x\nsteps: [{convert: !!python/object/apply:os.system ['echo pwned']}]\n", "not valid YAML"),
])
def test_hostile_yaml_is_one_line(tmp_path, capsys, text, message):
    job = tmp_path / "x.yaml"
    job.write_text(text)
    assert main(["run", "--check", str(job)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("raypipe: error: ") and message in err[0], err
    assert len(err[0]) < 500


def test_duplicate_keys_are_errors_naming_key_and_line(tmp_path):
    job = tmp_path / "dup.yaml"
    job.write_text("name: a\nsteps:\n  - stats:\n      paths: [x]\n      paths: [y]\nname: b\n")
    with pytest.raises(ConfigError) as info:
        load_job(job)
    assert info.value.problems == [
        f"{job}:5: duplicate key 'paths' (first at line 4)",
        f"{job}:6: duplicate key 'name' (first at line 1)",
    ]


def test_a_merge_key_may_be_overridden(tmp_path):
    job = tmp_path / "merge.yaml"
    job.write_text(textwrap.dedent(f"""\
        name: merge
        base: &base {{paths: [{SAMPLES_JSONL}], num_workers: 2}}
        steps:
          - stats: {{<<: *base, num_workers: 1}}
        """).replace("base: &base", "description: &base"))
    with pytest.raises(ConfigError) as info:  # description must be a string: that is the only problem
        load_job(job)
    assert len(info.value.problems) == 1 and "description: expected str" in info.value.problems[0]


def test_config_problems_show_a_bounded_repr():
    @dataclass
    class Cfg:
        name: str
        mode: int = 0

    huge = ["x" * 100_000] * 100_000  # what an alias expands to, as far as a message could tell
    with pytest.raises(ConfigError) as info:
        load_config(Cfg, {"name": huge, "mode": {"k": huge}, "k" * 10_000: 1})
    assert len(info.value.problems) == 3
    assert all(len(p) < 400 for p in info.value.problems), [len(p) for p in info.value.problems]
    assert len(short_repr(huge)) <= 100


def test_a_top_level_problem_does_not_hide_step_problems(tmp_path):
    job = tmp_path / "bad.yaml"
    job.write_text("colour: red\nsteps:\n  - stats: {paths: 3}\n  - nosuch: {}\n")
    with pytest.raises(ConfigError) as info:
        load_job(job)
    assert info.value.problems == [
        f"{job}:1: colour: unknown key (known: description, name, ray, steps)",
        f"{job}:1: name: required key missing",
        f"{job}:3: steps[0].stats.paths: expected a list, got int",
        f"{job}:4: steps[1]: unknown step kind 'nosuch' (known: " + info.value.problems[3].split("(known: ")[1],
    ]


def _check_lines(capsys, job) -> list[str]:
    assert main(["run", "--check", str(job)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert all(line.startswith("raypipe: error: ") for line in lines), lines
    return [line[len("raypipe: error: "):] for line in lines]


def test_check_reports_every_problem_at_once(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("x")
    Path("in.jsonl").write_text(SAMPLES_JSONL.read_text())
    Path("job.yaml").write_text(textwrap.dedent("""\
        name: everything
        steps:
          - convert:
              out: afile
              shard_rows: -5
              sources: [{format: xlam, inputs: [missing.json]}]
          - synth_reasoning:
              inputs: [in.jsonl]
              out: afile/sub
              llm: {base_url: "not a url", api_key_env: ""}
          - validate: {paths: [in.jsonl], problems_out: in.jsonl}
          - convert:
              out: conv
              sources: [{format: canonical, inputs: [conv/data]}]
        """))
    assert _check_lines(capsys, "job.yaml") == [
        "job.yaml:4: steps[0].convert.out: afile: is a file; the output must be a folder",
        "job.yaml:5: steps[0].convert.shard_rows: must be >= 1, got -5",
        "job.yaml:6: steps[0].convert.sources[0].inputs[0]: missing.json: no such file or folder",
        "job.yaml:9: steps[1].synth_reasoning.out: afile/sub: cannot be created: "
        f"{tmp_path.resolve()}/afile is a file",
        "job.yaml:10: steps[1].synth_reasoning.llm.base_url: 'not a url' is not a URL "
        "(expected http://host[:port]/... or https://...)",
        "job.yaml:10: steps[1].synth_reasoning.llm.api_key_env: '' is not an environment variable "
        "name (letters, digits and _, not starting with a digit); it names the variable, never holds the key",
        "job.yaml:11: steps[2].validate.problems_out: in.jsonl: is also an input (in.jsonl)",
        "job.yaml:13: steps[3].convert.out: conv: holds an input (conv/data); write the output somewhere else",
        "job.yaml:14: steps[3].convert.sources[0].inputs[0]: conv/data: no such file or folder",
    ]


def test_check_knows_an_input_an_earlier_step_writes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("job.yaml").write_text(textwrap.dedent(f"""\
        name: chain
        steps:
          - convert: {{out: runs/conv, sources: [{{format: canonical, inputs: [{SAMPLES_JSONL}]}}]}}
          - validate: {{paths: [runs/conv], problems_out: runs/problems.jsonl}}
          - stats: {{paths: ["runs/conv/data/*.parquet"], out: runs/stats.json}}
          - convert: {{out: runs/conv, sources: [{{format: canonical, inputs: [{SAMPLES_JSONL}]}}]}}
        """))
    assert _check_lines(capsys, "job.yaml") == [
        "job.yaml:6: steps[3].convert.out: runs/conv: steps[0].convert.out writes it too (one writer per output)"]
    assert not Path("runs").exists()  # checking writes nothing


def test_check_refuses_an_output_that_cannot_be_written(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if os.geteuid() == 0:  # permission bits do not stop root; a kernel folder does
        target = "/sys/kernel/raypipe-check"
    else:
        Path("ro").mkdir()
        Path("ro").chmod(0o555)
        target = "ro/out"
    Path("job.yaml").write_text(f"name: ro\nsteps:\n  - stats: {{paths: [{SAMPLES_JSONL}], out: {target}/s.json}}\n")
    (line,) = _check_lines(capsys, "job.yaml")
    assert line.startswith(f"job.yaml:3: steps[0].stats.out: {target}/s.json: not writable"), line


def test_check_passes_a_job_whose_paths_are_fine(capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    assert main(["run", "--check", "jobs/quickstart.yaml"]) == 0
    assert capsys.readouterr().out.startswith("jobs/quickstart.yaml: ok (7 steps")


def test_field_checks_are_metadata_and_apply_wherever_a_config_is_loaded(tmp_path):
    @dataclass
    class Step:
        inputs: list[str] = input_paths()
        out: str = output_path()
        rate: float = number(gt=0, le=1, default=0.5)
        workers: int = number(ge=1, default=2)
        tags: list[str] = field(default_factory=list)

    with pytest.raises(ConfigError) as info:
        load_config(Step, {"inputs": ["a"], "out": "b", "rate": 0, "workers": 0, "tags": 3}, where="s")
    assert sorted(info.value.problems) == [
        "s.rate: must be > 0, got 0.0", "s.tags: expected a list, got int", "s.workers: must be >= 1, got 0"]


def test_the_write_time_check_is_one_function(tmp_path):
    from raypipe.io.dataset import make_output_dir
    from raypipe.io.paths import check_output

    (tmp_path / "f").write_text("x")
    with pytest.raises(RaypipeError, match="is a file; the output must be a folder"):
        make_output_dir(str(tmp_path / "f"))
    with pytest.raises(RaypipeError, match="cannot be created: .* is a file"):
        make_output_dir(str(tmp_path / "f" / "sub"))
    with pytest.raises(RaypipeError, match="is a folder; the output must be a file"):
        check_output(str(tmp_path), "file")
    with pytest.raises(RaypipeError, match="is also an input"):
        check_output(str(tmp_path / "r.json"), "file", inputs=[str(tmp_path / "r.json")])
    check_output(str(tmp_path / "new" / "r.json"), "file")
    assert not (tmp_path / "new").exists()


def test_a_tagged_value_its_constructor_cannot_read_is_one_line():
    """Found by the job fuzzer: `!!timestamp` over a value with a BOM inside made PyYAML raise
    AttributeError (a traceback) instead of a YAML error."""
    from raypipe.errors import RaypipeError
    from raypipe.safeyaml import load

    with pytest.raises(RaypipeError) as err:
        load("out: !!timestamp 2001-1\ufeff2-14\n", "job.yaml")
    assert str(err.value).startswith("job.yaml: not valid YAML: cannot read timestamp value")
    assert "\n" not in str(err.value)
