"""`import raypipe` and building the whole CLI must stay light: no torch, DeepSpeed, vLLM or Ray."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

HEAVY = ["torch", "deepspeed", "vllm", "ray", "transformers", "peft"]


def test_import_raypipe_and_building_the_cli_loads_no_heavy_module():
    code = (
        "import sys, json\n"
        "import raypipe, raypipe.cli, raypipe.io, raypipe.data\n"
        "raypipe.cli.build_parser()\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing raypipe / building the CLI imported {loaded}"
