"""Training tokens/s and MFU of the SFT recipe at a 7B shape on one GPU: `scripts/gpu-bench.sh`.

The recipe's own loop (`raypipe.train.sft.sft_loop`, in process: DeepSpeed ZeRO-2, PEFT LoRA
r=16 on all linear layers, bf16, packed rows of 2048 tokens with per-sample attention) on a
randomly initialised Mistral-7B-shaped Llama (hidden 4096, 32 layers, 32 query / 8 key-value
heads, MLP 14336, vocabulary 32000). Nothing is downloaded and nothing needs Ray or pyarrow: the
packed rows are built in memory from sample lengths of the shipped data (token ids are random;
throughput does not depend on them). `--cpu` runs the same path at a tiny shape.

    python -m raypipe.train.gpu_bench [--cpu] [--steps N] [--micro-batch N] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

SHAPES = {
    # Mistral-7B-v0.1 without the sliding window: a Llama with grouped-query attention
    "7b": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
           "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32000},
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 832},
}
# token counts of the shipped samples (raypipe/data/samples.jsonl + if.jsonl, format tools-dt,
# tiny BPE tokenizer), cycled to fill the packed rows
SAMPLE_LENGTHS = [612, 388, 540, 280, 702, 451, 333, 866, 297, 515, 1210, 402, 655, 248, 590, 471]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu-bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu", action="store_true", help="tiny shape on the CPU (fp32, gloo): checks the path")
    p.add_argument("--shape", choices=sorted(SHAPES), default=None, help="model shape (default: 7b, tiny with --cpu)")
    p.add_argument("--steps", type=int, default=8, help="timed optimizer steps (after --warmup)")
    p.add_argument("--warmup", type=int, default=2, help="untimed first steps")
    p.add_argument("--micro-batch", type=int, default=4, help="packed rows per optimizer step")
    p.add_argument("--seq-len", type=int, default=2048, help="tokens per packed row")
    p.add_argument("--no-gradient-checkpointing", action="store_true")
    p.add_argument("--attn", default=None, help="attention implementation (default: flash_attention_2 when "
                                                 "flash_attn is installed, else raypipe_varlen_sdpa)")
    p.add_argument("--peak-tflops", type=float, default=None, help="per-device peak for MFU (default: known GPUs)")
    p.add_argument("--out", default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="raypipe-gpu-bench-") as scratch:
        result = run(args, Path(args.out or scratch))
    print(json.dumps(result, indent=None if args.json else 1))
    return 0


def run(args, out: Path) -> dict[str, Any]:
    import torch

    cpu = args.cpu or not torch.cuda.is_available()
    if cpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    shape = args.shape or ("tiny" if cpu else "7b")
    from raypipe.train.config import DataSource, SFTConfig
    from raypipe.train.sft import sft_loop
    from raypipe.train.session import CHECKPOINT_DONE, LocalSession

    model_dir = write_model_config(out / "model", SHAPES[shape])
    plan = packed_plan(SHAPES[shape]["vocab_size"], args.seq_len, args.micro_batch * (args.steps + args.warmup))
    steps = args.steps + args.warmup
    cfg = SFTConfig(
        model=str(model_dir), data=[DataSource(path="(packed rows in memory)")], out=str(out), name="gpu-bench", max_seq_len=args.seq_len, pack=True,
        global_batch_size=args.micro_batch, micro_batch_size=args.micro_batch, num_workers=0,
        epochs=1, warmup_steps=1, precision="fp32" if cpu else "bf16", zero_stage=2,
        gradient_checkpointing=not args.no_gradient_checkpointing, log_every=1, source_loss_every=10**6,
        checkpoint_every=10**6, peak_tflops=args.peak_tflops, vllm_export=False,
    )
    spec = {
        "config": dataclasses.asdict(cfg), "model_path": str(model_dir), "random_init": True,
        "vocab_size": SHAPES[shape]["vocab_size"], "new_token_ids": [], "pad_id": 0, "sources": ["bench"],
        "steps_per_epoch": steps, "total_steps": steps, "run_dir": str(out), "plan": plan,
        "data_fingerprint": plan.fingerprint(), "attn_implementation": args.attn or _default_attention(cpu),
        "pack_len": args.seq_len, "use_gpu": not cpu, "local": True,
    }
    started = time.monotonic()
    sft_loop(spec)
    wall = time.monotonic() - started
    state = json.loads((Path(LocalSession(str(out)).latest_checkpoint()) / CHECKPOINT_DONE).read_text())
    timed = state["history"][args.warmup:]
    took = sum(h["step_s"] for h in timed)
    tokens = sum(h["tokens_per_s_per_worker"] * h["step_s"] for h in timed)
    mfus = [h["mfu"] for h in timed if h.get("mfu") is not None]
    return {
        "device": torch.cuda.get_device_name() if not cpu else "cpu",
        "shape": shape, **SHAPES[shape],
        "params": _params(SHAPES[shape]),
        "tokens_per_s": round(tokens / took, 1),
        "mfu": round(sum(h["mfu"] * h["step_s"] for h in timed if h.get("mfu") is not None) / took, 4) if mfus else None,
        "step_s": round(took / len(timed), 3),
        "steps_timed": len(timed), "micro_batch": args.micro_batch, "seq_len": args.seq_len,
        "real_tokens_per_step": round(tokens / len(timed)),
        "precision": cfg.precision, "zero_stage": 2, "lora_r": cfg.lora.r,
        "gradient_checkpointing": cfg.gradient_checkpointing, "attention": spec["attn_implementation"],
        "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 1) if not cpu else None,
        "wall_s": round(wall, 1),
        "mfu_formula": "6 x all parameters x real tokens/s / peak bf16 FLOP/s (LoRA computes no base weight "
                       "gradients and gradient checkpointing recomputes the forward: neither is counted)",
    }


def write_model_config(path: Path, shape: dict[str, int]) -> Path:
    """A model folder with only config.json: the recipe builds it with random weights."""
    from transformers import LlamaConfig

    LlamaConfig(**shape, max_position_embeddings=32768, rms_norm_eps=1e-5, rope_theta=10000.0,
                tie_word_embeddings=False, pad_token_id=0, bos_token_id=1, eos_token_id=2).save_pretrained(path)
    return path


def packed_plan(vocab_size: int, seq_len: int, rows_needed: int):
    """Packed rows (first-fit decreasing) of samples with the shipped data's lengths, in memory."""
    import numpy as np

    from raypipe.train.plan import TrainPlan, build_units

    rng = np.random.default_rng(0)
    lengths: list[int] = []
    while sum(lengths) < rows_needed * seq_len * 1.1:
        lengths += [min(n, seq_len) for n in SAMPLE_LENGTHS]
    offsets, items = build_units(np.array(lengths), seq_len)
    while len(offsets) - 1 < rows_needed:  # FFD filled fewer rows than asked: add more samples
        lengths += [min(n, seq_len) for n in SAMPLE_LENGTHS]
        offsets, items = build_units(np.array(lengths), seq_len)
    rows = []
    for i, n in enumerate(lengths):
        ids = rng.integers(3, vocab_size, size=n, dtype=np.int64)
        rows.append({"input_ids": ids, "labels": ids.copy(), "id": f"s{i}", "source_idx": 0})
    n = len(lengths)
    return TrainPlan(files=[], item_file=np.zeros(n, np.int32), item_row=np.arange(n, dtype=np.int64),
                     item_source=np.zeros(n, np.int32), item_id=np.array([r["id"] for r in rows]),
                     item_tokens=np.array(lengths), unit_offsets=offsets, unit_items=items, pack_len=seq_len,
                     rows=rows)


def _default_attention(cpu: bool) -> str:
    import importlib.util

    from raypipe.train.attention import VARLEN_SDPA

    if not cpu and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return VARLEN_SDPA


def _params(shape: dict[str, int]) -> int:
    h, m, n, v = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"], shape["vocab_size"]
    kv = h * shape["num_key_value_heads"] // shape["num_attention_heads"]
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * m + 2 * h
    return n * per_layer + 2 * v * h + h


if __name__ == "__main__":
    raise SystemExit(main())
