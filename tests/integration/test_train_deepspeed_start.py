"""DeepSpeed starts on the CPU even when a killed process left a lock in the torch extensions cache.

DeepSpeed's CPU comm layer JIT-builds a shared-memory op under a lock file that it takes even when
the op is already built; a worker killed while holding it made every later DeepSpeed start on the
machine wait forever (this hung a whole CI run). raypipe keeps DeepSpeed off that op.
"""

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.integration

START = textwrap.dedent("""
    import os
    from torch.utils.cpp_extension import _get_build_directory
    from deepspeed.ops.op_builder.cpu import ShareMemCommBuilder

    # the lock a killed builder leaves behind
    build_dir = _get_build_directory(ShareMemCommBuilder.NAME, verbose=False)
    os.makedirs(build_dir, exist_ok=True)
    open(os.path.join(build_dir, "lock"), "w").close()

    from raypipe.train.session import init_distributed
    init_distributed(use_gpu=False, local=True)
    import torch.distributed as dist
    print("started", dist.get_world_size())
""")


def test_deepspeed_starts_past_a_stale_extension_lock(tmp_path):
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext"), "DS_ACCELERATOR": "cpu"}
    done = subprocess.run([sys.executable, "-c", START], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "started 1" in done.stdout
