"""The stage tutorial in docs/llm.md is true: its code, dropped as one file into raypipe/stages/,
is the command `raypipe synth paraphrase` and the job step `synth_paraphrase`, and runs on the
executor against a real HTTP endpoint (raypipe's test server) with nothing else edited."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from raypipe.data import SAMPLES_JSONL
from raypipe.io.dataset import read_committed
from raypipe.mockllm.server import MockLLMServer
from raypipe.schema import Sample

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "llm.md"
PREFIX = "In other words: "

RUN = textwrap.dedent("""
    import importlib, sys
    import raypipe.stages
    raypipe.stages.__path__.append(sys.argv[1])  # as if the file were in raypipe/stages/
    module = importlib.import_module("raypipe.stages.paraphrase")
    from ray import cloudpickle
    cloudpickle.register_pickle_by_value(module)  # Ray's workers do not see the temporary folder
    from raypipe.commands import all_steps
    assert "synth_paraphrase" in all_steps(), sorted(all_steps())
    from raypipe.cli import main
    sys.exit(main(["synth", "paraphrase", *sys.argv[2:]]))
""")


def tutorial_code() -> str:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- tutorial-stage: start -->\n```python\n(.*?)```\n<!-- tutorial-stage: end -->", text, re.S)
    assert block, "docs/llm.md lost its tutorial stage block"
    return block.group(1)


def paraphrase(body: dict) -> str:
    return PREFIX + body["messages"][-1]["content"]


def test_the_tutorial_stage_is_one_file_that_runs_as_a_command(tmp_path):
    code = tutorial_code()
    assert len(code.splitlines()) < 100
    folder = tmp_path / "stages"
    folder.mkdir()
    (folder / "paraphrase.py").write_text(code, encoding="utf-8")
    out = tmp_path / "out"
    with MockLLMServer(responder=paraphrase, process=True) as srv:
        env = {**os.environ, "RAYPIPE_TEST_TUTORIAL_KEY": "sk-tutorial-0000"}
        proc = subprocess.run(
            [sys.executable, "-c", RUN, str(folder), str(SAMPLES_JSONL), "--out", str(out),
             "--base-url", srv.base_url, "--model", "mock", "--api-key-env", "RAYPIPE_TEST_TUTORIAL_KEY",
             "--max-growth", "3"],
            env=env, capture_output=True, text=True, timeout=300)
        requests = srv.stats.requests
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    inputs = [Sample.from_dict(json.loads(line)) for line in SAMPLES_JSONL.read_text(encoding="utf-8").splitlines()]
    assert summary["rows_in"] == len(inputs) == summary["completed"] and summary["rejected"] == 0
    assert requests == len(inputs)
    by_parent = {}
    for row in read_committed(str(out)).to_pylist():
        sample = Sample.from_row(row)
        by_parent[sample.lineage[-1].parent_id] = sample
    assert set(by_parent) == {s.id for s in inputs}
    for original in inputs:
        made = by_parent[original.id]
        first = next(m for m in original.messages if m.role == "user")
        assert next(m for m in made.messages if m.role == "user").content == PREFIX + first.content
        assert [m.tool_calls for m in made.messages] == [m.tool_calls for m in original.messages]
