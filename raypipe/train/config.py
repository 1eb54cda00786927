"""Typed configs of the training recipes. All defaults live here (the seed paper's for SFT).

Kept free of heavy imports: job files are checked (`raypipe run --check`) without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from raypipe.config import input_paths, number, output_path
from raypipe.errors import RaypipeError


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    # "all-linear": every linear layer of the transformer blocks (PEFT excludes the LM head).
    target_modules: list[str] | str = "all-linear"


@dataclass
class DataSource:
    path: str = input_paths()  # file, directory or glob
    # tokenized: Parquet written by `raypipe tokenize` (id, source, input_ids, labels, ...);
    # samples: canonical samples (JSONL/Parquet), tokenized here with the run's tokenizer;
    # pairs: multi-turn DPO pairs (Parquet of raypipe.schema.dpo_pair_schema()), mDPO only.
    kind: Literal["tokenized", "samples", "pairs"] = "tokenized"
    # Rows used per epoch = round(rows x ratio): 0.5 keeps a seeded half, 2.0 repeats twice.
    ratio: float = 1.0
    # Name under which this source's loss is reported; default: each row's `source` column.
    label: str | None = None

    def __post_init__(self) -> None:
        if self.ratio <= 0:
            raise ValueError(f"data ratio must be > 0, got {self.ratio}")


@dataclass
class TinyModelSettings:
    """Build a tiny random Llama + tokenizer (trained on the data's text) instead of loading one."""

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    vocab_size: int = 800
    seed: int = 0
    # Std of the random LM head. The usual 0.02 caps every logit near +-1 with hidden 64, so no
    # adapter could make any token likely; a trained base's head has no such cap.
    head_std: float = 0.5


@dataclass
class TrainConfig:
    model: str  # hub name or local directory of the base model ("tiny" with `tiny_model`)
    data: list[DataSource]
    out: str = output_path()  # run directory: checkpoints (Ray storage), export, metrics, plot
    name: str = "sft"  # run name: re-running with the same name and out resumes
    format: str = "tools-dt"  # raypipe.templates.get_format preset
    train_on: Literal["all", "last"] = "all"  # which assistant turns carry loss
    max_seq_len: int = number(ge=1, default=4096)  # longer samples are left out (rejects); also the packed row length
    # Pack samples into fixed-length rows of max_seq_len tokens before the split (position ids
    # restart per sample, attention never crosses samples). None: on when the attention
    # implementation supports it (SFT; DPO pairs are never packed). With packing, batch sizes
    # count packed rows.
    pack: bool | None = None
    # Attention kernel (transformers' attn_implementation). None: flash_attention_2 on GPUs with
    # the flash_attn package, else sdpa.
    attn_implementation: str | None = None
    lora: LoraSettings = field(default_factory=LoraSettings)
    lr: float = number(gt=0, default=1e-4)
    global_batch_size: int = 48  # samples per optimizer step, all workers together
    micro_batch_size: int = 2  # samples per forward pass on one worker (x 3 accum x 8 workers = 48)
    num_workers: int = number(ge=0, default=8)  # Ray Train workers; 0 runs the recipe in this process without Ray
    use_gpu: bool | None = None  # None: GPUs when the cluster has them
    cpus_per_worker: float = 1.0
    epochs: int = number(ge=1, default=3)
    max_steps: int | None = number(ge=1, default=None)  # stop after this many optimizer steps (benchmarks, smoke runs)
    warmup_steps: int = 100
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    zero_stage: Literal[2, 3] = 2
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    gradient_checkpointing: bool = False
    seed: int = 0
    log_every: int = 10  # optimizer steps between log lines
    source_loss_every: int = 50  # optimizer steps between per-source loss reports
    checkpoint_every: int = 500  # optimizer steps between checkpoints (one more at the end)
    keep_checkpoints: int = 2
    max_failures: int = 2  # worker-group restarts from the last checkpoint
    merge: bool = False  # also export the merged model (a standalone checkpoint)
    vllm_export: bool = True  # export vllm/: the base with the new token rows + a plain LoRA adapter
    peak_tflops: float | None = None  # per-device peak for MFU; None: known GPUs only
    tiny_model: TinyModelSettings | None = None
    # Fault drill: one worker kills its own process once at this optimizer step, to rehearse
    # (and test) recovery from the last checkpoint. Never set in production jobs.
    kill_at_step: int | None = None

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("data: at least one source is needed")
        grad_accum_steps(self.global_batch_size, self.micro_batch_size, self.num_workers)

    @property
    def world_size(self) -> int:
        return max(self.num_workers, 1)

    @property
    def accum_steps(self) -> int:
        return grad_accum_steps(self.global_batch_size, self.micro_batch_size, self.num_workers)


@dataclass
class SFTConfig(TrainConfig):
    pass


@dataclass
class MDPOConfig(TrainConfig):
    name: str = "mdpo"
    # The reference policy: this SFT adapter is merged into the base, then a fresh adapter is
    # trained on top; "adapter disabled" is then exactly the SFT model. None: the base model.
    sft_adapter: str | None = input_paths(default=None)
    eta: float = 0.1  # DPO temperature on the summed log-ratios
    sft_weight: float = 1.0  # weight of the SFT term on the positive trajectory
    dpo_weight: float = 1.0  # lambda: weight of the mDPO term
    lr: float = 5e-5
    epochs: int = 1
    warmup_steps: int = 10


def grad_accum_steps(global_batch: int, micro_batch: int, num_workers: int) -> int:
    """Gradient accumulation steps such that micro x accum x workers == global, exactly."""
    world = max(num_workers, 1)
    if global_batch <= 0 or micro_batch <= 0:
        raise ValueError("global_batch_size and micro_batch_size must be positive")
    per_step = micro_batch * world
    if global_batch % per_step:
        raise ValueError(
            f"global_batch_size {global_batch} is not micro_batch_size {micro_batch} x "
            f"accumulation x {world} worker(s): {global_batch} / ({micro_batch} x {world}) "
            f"= {global_batch / per_step:g}; pick values whose product is exactly {global_batch}"
        )
    return global_batch // per_step


def check_vocab(max_token_id: int, vocab_size: int, where: str) -> None:
    if max_token_id >= vocab_size:
        raise RaypipeError(
            f"{where}: token id {max_token_id} is outside the tokenizer's {vocab_size} ids; "
            "was it tokenized with another tokenizer or format?"
        )
