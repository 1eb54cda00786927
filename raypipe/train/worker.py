"""Pieces every recipe uses inside a worker: engine set-up, step batching, checkpoints, logging.

The recipes (`sft.py`, `mdpo.py`) read top to bottom; what they share lives here.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from raypipe.templates.tokens import IGNORE_INDEX
from raypipe.train.batches import collate  # noqa: F401  (re-exported: recipes and tests use it from here)
from raypipe.train.config import TrainConfig
from raypipe.train.deepspeed_config import build_deepspeed_config
from raypipe.train.metrics import gpu_peak_tflops, mfu
from raypipe.train.session import CHECKPOINT_DONE, LocalSession, RaySession, init_distributed


def open_session(spec: dict[str, Any], cfg: TrainConfig):
    use_gpu = bool(spec["use_gpu"])
    if spec.get("local"):
        session = LocalSession(spec["run_dir"], keep=cfg.keep_checkpoints)
    else:
        session = RaySession()
    init_distributed(use_gpu, local=session.local)
    import torch

    torch.manual_seed(cfg.seed)  # same LoRA init on every rank
    if not use_gpu:
        # one intra-op thread per reserved core: more threads than cores spin against each
        # other (measured here: 70 ms vs 0.7-2 s per tiny step on a busy 2-core machine)
        torch.set_num_threads(max(1, int(cfg.cpus_per_worker)))
    return session


def setup_engine(cfg: TrainConfig, spec: dict[str, Any], session, merge_adapter: str | None = None):
    """Model with LoRA, torch AdamW, cosine schedule with warmup, wrapped by deepspeed.initialize."""
    import deepspeed
    import torch
    from transformers import get_cosine_schedule_with_warmup

    from raypipe.train.model import build_trainable_model

    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and bool(spec["use_gpu"]))
    model = build_trainable_model(
        spec["model_path"],
        dtype=torch.bfloat16 if bf16 else torch.float32,
        vocab_size=spec["vocab_size"],
        new_token_ids=spec["new_token_ids"],
        lora=cfg.lora,
        gradient_checkpointing=cfg.gradient_checkpointing,
        merge_adapter=merge_adapter,
        attn_implementation=spec.get("attn_implementation"),
        random_init=bool(spec.get("random_init")),
        device=session.device,
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, num_warmup_steps=min(cfg.warmup_steps, spec["total_steps"]),
        num_training_steps=spec["total_steps"],
    )
    ds_config = build_deepspeed_config(
        micro_batch_size=cfg.micro_batch_size,
        accum_steps=cfg.accum_steps,
        world_size=session.world_size,
        zero_stage=cfg.zero_stage,
        bf16=bf16,
        max_grad_norm=cfg.max_grad_norm,
    )
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config
    )
    return engine, model


@dataclass
class TrainState:
    """Where the run is; saved in every checkpoint so a restarted run continues exactly."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    step_in_epoch: int = 0  # the data position: optimizer steps done in `epoch`
    history: list[dict[str, Any]] = field(default_factory=list)
    source_loss: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: list[int] = field(default_factory=list)
    data_fingerprint: str = ""  # the plan trained on (raypipe.train.plan.TrainPlan.fingerprint)


def open_plan(spec: dict[str, Any], pairs: bool = False):
    """The run's data plan (written by the driver) and a row store for this worker."""
    from raypipe.templates.tokenize_stage import PAIR_TOKEN_COLUMNS, SAMPLE_TOKEN_COLUMNS
    from raypipe.train.plan import RowStore, TrainPlan

    plan = spec.get("plan") or TrainPlan.load(spec["plan_dir"])
    return plan, RowStore(plan, PAIR_TOKEN_COLUMNS if pairs else SAMPLE_TOKEN_COLUMNS)


def optimizer_steps(plan, store, session, cfg: TrainConfig, epoch: int, steps_per_epoch: int,
                    skip: int) -> Iterator[tuple[list[list[list[dict]]], list[str]]]:
    """Yield, for each optimizer step of `epoch` from `skip` on, this rank's micro-batches (each a
    list of units, each unit a list of rows) and the row ids it trains in that step.

    Every worker takes exactly `steps_per_epoch` steps (collectives must match). The units come
    from the plan's permutation for (seed, epoch), so a restart at step `skip` trains exactly
    the rows an uninterrupted run would have (nothing is read past or replayed).
    """
    from raypipe.train.plan import rank_steps

    kwargs = {"rank": session.rank, "micro_batch": cfg.micro_batch_size, "accum": cfg.accum_steps,
              "world": session.world_size}
    steps = list(rank_steps(plan, epoch, cfg.seed, skip, steps_per_epoch, **kwargs))
    store.load([u for micro, _ in steps for units in micro for u in units])
    for micro, ids in steps:
        yield [[store.unit_rows(u) for u in units] for units in micro], ids


def step_digest(ids: list[str], session) -> str:
    """Digest of the row ids the whole step trained, rank by rank (the same with 1 or N ranks)."""
    import torch.distributed as dist

    from raypipe.train.plan import rows_digest

    gathered: list[Any] = [None] * session.world_size
    dist.all_gather_object(gathered, ids)
    return rows_digest([i for part in gathered for i in part])


def all_reduce_sum(tensor):
    import torch.distributed as dist

    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def trainable_tokens(batches: list[dict], device):
    """Trained tokens of this step's micro-batches summed over all workers (a float tensor)."""
    import torch

    local = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in batches)
    return all_reduce_sum(torch.tensor(float(local), device=device))


def grad_norm(engine) -> float | None:
    """Global gradient norm of the step (before clipping), as DeepSpeed computed it."""
    norm = engine.get_global_grad_norm()
    return None if norm is None else float(norm)


def save_checkpoint(engine, model, session, state: TrainState, extra_files: dict[str, Any] | None = None) -> str:
    """Engine state (trainable weights, ZeRO optimizer shards, scheduler) + adapter + TrainState.

    Every rank writes its own optimizer shard into its own directory; Ray Train merges the
    workers' directories into one checkpoint. Frozen base weights are not saved.
    """
    d = tempfile.mkdtemp(prefix="raypipe-ckpt-")
    engine.save_checkpoint(d, tag="deepspeed", exclude_frozen_parameters=True)
    _save_adapter(engine, model, session, Path(d) / "adapter")
    if session.rank == 0:
        for name, value in (extra_files or {}).items():
            (Path(d) / name).write_text(json.dumps(value))
        (Path(d) / CHECKPOINT_DONE).write_text(json.dumps(asdict(state)))
    return d


def checkpoint_and_report(engine, model, session, state: TrainState) -> int:
    """Save a checkpoint, hand it to Ray Train with the latest loss; returns the step saved."""
    ckpt = save_checkpoint(engine, model, session, state)
    session.report({"step": state.step, "loss": state.history[-1]["loss"] if state.history else None}, ckpt)
    return state.step


def _save_adapter(engine, model, session, path: Path) -> None:
    if engine.zero_optimization_stage() == 3:
        import deepspeed

        params = [p for p in model.parameters() if p.requires_grad]
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
            if session.rank == 0:
                model.save_pretrained(path, save_embedding_layers=False)
    elif session.rank == 0:
        model.save_pretrained(path, save_embedding_layers=False)


def restore_checkpoint(engine, directory: str) -> TrainState:
    engine.load_checkpoint(
        directory, tag="deepspeed", load_module_strict=False,
        load_optimizer_states=True, load_lr_scheduler_states=True,
    )
    state = TrainState(**json.loads((Path(directory) / CHECKPOINT_DONE).read_text()))
    state.resumed_from.append(state.step)
    return state


def maybe_kill_drill(cfg: TrainConfig, spec: dict[str, Any], session, state: TrainState) -> None:
    """Fault drill (`kill_at_step`): the last rank kills its own process, once per run."""
    if cfg.kill_at_step is None or state.step != cfg.kill_at_step or session.rank != session.world_size - 1:
        return
    marker = Path(spec["run_dir"]) / f"kill_drill_step_{cfg.kill_at_step}"
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("killed\n")
    print(f"[raypipe] fault drill: rank {session.rank} kills itself at step {state.step}", flush=True)
    os._exit(137)


class StepLog:
    """Per-step record (loss, lr, tokens/s per worker, MFU) and the log line every N steps."""

    def __init__(self, cfg: TrainConfig, spec: dict[str, Any], session, model) -> None:
        self.cfg = cfg
        self.session = session
        self.total_steps = spec["total_steps"]
        self.num_params = sum(p.numel() for p in model.parameters())
        self.peak = cfg.peak_tflops or (gpu_peak_tflops() if spec["use_gpu"] else None)
        self.started = time.monotonic()
        self.step_started = time.monotonic()

    def start_step(self) -> None:
        self.step_started = time.monotonic()

    def record(self, state: TrainState, lr: float, loss: float, tokens_global: float, **extra: Any) -> dict:
        took = max(time.monotonic() - self.step_started, 1e-9)
        tps = tokens_global / self.session.world_size / took
        rec = {
            "step": state.step, "epoch": state.epoch, "loss": loss, "lr": lr,
            "tokens_per_s_per_worker": tps, "mfu": mfu(tps, self.num_params, self.peak),
            "step_s": took, **extra,
        }
        state.history.append(rec)
        if self.session.rank == 0 and (state.step % self.cfg.log_every == 0 or state.step == self.total_steps):
            shown = " ".join(f"{k}={v:.4g}" for k, v in rec.items() if isinstance(v, float))
            print(f"[raypipe] step {state.step}/{self.total_steps} {shown}", flush=True)
        return rec
