"""The DeepSpeed config of a run, built from the typed TrainConfig (no JSON files to drift)."""

from __future__ import annotations

from typing import Any


def build_deepspeed_config(
    *,
    micro_batch_size: int,
    accum_steps: int,
    world_size: int,
    zero_stage: int = 2,
    bf16: bool = False,
    max_grad_norm: float = 1.0,
) -> dict[str, Any]:
    """ZeRO-2 (or 3) config. DeepSpeed re-checks train_batch_size = micro x accum x world.

    The optimizer and scheduler are plain torch objects handed to `deepspeed.initialize`
    (torch AdamW runs everywhere, unlike DeepSpeed's compiled CPU Adam), hence
    `zero_allow_untested_optimizer`.
    """
    if zero_stage not in (2, 3):
        raise ValueError(f"zero_stage must be 2 or 3, got {zero_stage}")
    zero: dict[str, Any] = {
        "stage": zero_stage,
        "overlap_comm": False,
        "contiguous_gradients": True,
        "reduce_bucket_size": 5e7,
    }
    if zero_stage == 2:
        zero["allgather_bucket_size"] = 5e7
    else:
        # Gather the (small) LoRA weights for saving; base weights stay frozen and sharded.
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "train_batch_size": micro_batch_size * accum_steps * world_size,
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "gradient_accumulation_steps": accum_steps,
        "gradient_clipping": max_grad_norm,
        "zero_optimization": zero,
        "bf16": {"enabled": bool(bf16)},
        "fp16": {"enabled": False},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,  # raypipe logs its own metrics
        "wall_clock_breakdown": False,
    }
