"""`scripts/gpu-bench.sh --cpu`: the GPU benchmark's path at a tiny shape, from the bare script,
with Ray and pyarrow unimportable (the lent GPU machine has neither); one JSON line with
tokens/s and MFU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

BLOCKER = """
import importlib.abc, sys

class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("ray", "pyarrow"):
            raise ImportError(f"{name} is not installed on this machine (test)")
        return None

sys.meta_path.insert(0, _Absent())
"""


def test_gpu_bench_cpu_path_runs_without_ray_or_pyarrow(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": str(tmp_path),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    probe = subprocess.run([sys.executable, "-c", "import pyarrow"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0, "the blocker works"
    run = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu-bench.sh"), "--cpu", "--steps", "2", "--warmup", "1",
         "--micro-batch", "2", "--seq-len", "512", "--peak-tflops", "1"],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["device"] == "cpu" and result["shape"] == "tiny" and result["steps_timed"] == 2
    assert result["tokens_per_s"] > 0 and 0 < result["mfu"] < 1
    assert result["zero_stage"] == 2 and result["attention"] == "raypipe_varlen_sdpa"
    assert result["real_tokens_per_step"] > 0.8 * 2 * 512, "rows are packed"
