"""Where a recipe runs: under Ray Train (N workers) or alone in this process.

The recipe asks its session for rank, world size, device, the checkpoint to resume from, and
hands it metrics + checkpoints. Two small classes, same methods; nothing else differs (the data
each rank trains on comes from the plan, `raypipe.train.plan`, the same way in both).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from pathlib import Path
from typing import Any, Iterator

CHECKPOINT_DONE = "raypipe_checkpoint.json"  # written last: a checkpoint without it is partial


def init_distributed(use_gpu: bool, local: bool) -> None:
    """torch.distributed + DeepSpeed's comm layer. Ray Train has already set up the process
    group (gloo on CPU, nccl on GPU); alone, a world of one is created here."""
    if not use_gpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed
    import torch.distributed as dist

    backend = "nccl" if use_gpu else "gloo"
    if not use_gpu:
        skip_shared_memory_op()
    if local and not dist.is_initialized():
        os.environ.update(
            {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
             "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
        )
        dist.init_process_group(backend, rank=0, world_size=1)
    deepspeed.init_distributed(dist_backend=backend)


def skip_shared_memory_op() -> None:
    """Keep DeepSpeed from building its CPU shared-memory all-reduce op.

    DeepSpeed's CPU backend JIT-compiles that op when its comm layer starts, under a lock file in
    the torch extensions cache (~/.cache/torch_extensions) taken even when the op is already built.
    A process killed while holding it (Ray kills workers on failure, shutdown and timeouts) leaves
    the file behind, and from then on every DeepSpeed start on that machine waits for it forever.
    Training never uses the op (it serves DeepSpeed-inference's all_reduce only; ZeRO goes
    through gloo), so raypipe marks it unavailable, as DeepSpeed itself does off Linux.
    """
    import deepspeed.ops
    from deepspeed.ops.op_builder.cpu import ShareMemCommBuilder

    deepspeed.ops.__compatible_ops__[ShareMemCommBuilder.NAME] = False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RaySession:
    """Inside a Ray Train worker."""

    local = False

    def __init__(self) -> None:
        import ray.train
        from ray.train.torch import get_device

        ctx = ray.train.get_context()
        self.rank = ctx.get_world_rank()
        self.world_size = ctx.get_world_size()
        self.device = get_device()  # the GPU Ray assigned to this worker, or the CPU

    @contextlib.contextmanager
    def resume_dir(self) -> Iterator[str | None]:
        import ray.train

        ckpt = ray.train.get_checkpoint()
        if ckpt is None:
            yield None
            return
        with ckpt.as_directory() as d:
            yield d

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        import ray.train
        from ray.train import Checkpoint

        ckpt = Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        # every worker reports (a barrier); Ray merges the workers' files into one checkpoint
        ray.train.report(metrics, checkpoint=ckpt)
        if checkpoint_dir:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)


class LocalSession:
    """The recipe alone in this process: one rank, checkpoints kept under `run_dir/checkpoints`."""

    local = True
    rank = 0
    world_size = 1

    def __init__(self, run_dir: str, keep: int = 2) -> None:
        self.run_dir = Path(run_dir)
        self.keep = keep
        self.device = _device()

    def _checkpoints(self) -> list[Path]:
        root = self.run_dir / "checkpoints"
        done = [p for p in root.glob("step_*") if (p / CHECKPOINT_DONE).exists()] if root.exists() else []
        return sorted(done, key=lambda p: int(p.name.split("_")[1]))

    @contextlib.contextmanager
    def resume_dir(self) -> Iterator[str | None]:
        found = self._checkpoints()
        yield str(found[-1]) if found else None

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        if not checkpoint_dir:
            return
        dest = self.run_dir / "checkpoints" / f"step_{int(metrics['step']):08d}"
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(checkpoint_dir, dest)
        for old in self._checkpoints()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)

    def latest_checkpoint(self) -> str | None:
        found = self._checkpoints()
        return str(found[-1]) if found else None


def _device():
    import torch

    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")
