"""`raypipe bench train`: real (non-pad) training tokens/s, packed vs padded, and vs a plain loop.

Three runs on the same tiny random model (fresh LoRA each) and the same tokenized samples:

- the SFT recipe with packing (its default): fixed-length rows of `seq_len` tokens;
- the SFT recipe without packing: micro-batches of `micro_batch` samples padded to their longest;
- the loop everyone writes first: transformers + PEFT + torch AdamW, the padded micro-batches.

Tokens/s counts real tokens only (padding is work, not progress). The first step of each run
is a warm-up and not timed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def bench_train(
    out_dir: str, *, steps: int = 20, micro_batch: int = 4, packed_micro_batch: int = 1, seq_len: int = 2048,
    workers: int = 0, hidden: int = 64, layers: int = 2, fmt_name: str = "tools-dt", data: list[str] | None = None,
    repeats: int = 1,
) -> dict[str, Any]:
    """`repeats` > 1 alternates packed and padded runs and reports the median of each (a shared
    machine's load changes between runs; the median of alternating runs is the fairer ratio)."""
    from raypipe.data import IF_JSONL, SAMPLES_JSONL

    paths = data or [str(SAMPLES_JSONL), str(IF_JSONL)]
    out = Path(out_dir)
    world = max(workers, 1)
    runs: dict[str, list[dict]] = {"packed": [], "padded": []}
    for i in range(repeats):
        for mode, micro in (("packed", packed_micro_batch), ("padded", micro_batch)):
            runs[mode].append(_recipe_run(out / f"{mode}-{i}", paths, mode == "packed", micro, world, workers,
                                          steps, seq_len, hidden, layers, fmt_name))
    plain_tps = plain_loop_tokens_per_s(out / "padded-0", paths, fmt_name, steps, micro_batch, seq_len)
    packed, padded = _median(runs["packed"]), _median(runs["padded"])
    return {
        "model": {"hidden": hidden, "layers": layers, "base": packed["base"]},
        "data": paths, "steps": steps, "workers": world, "seq_len": seq_len,
        "packed": {k: v for k, v in packed.items() if k != "base"},
        "padded": {k: v for k, v in padded.items() if k != "base"},
        "packed_over_padded": round(packed["real_tokens_per_s_per_worker"] / padded["real_tokens_per_s_per_worker"], 3),
        # the recipe at its default (packed) next to the plain padded loop
        "micro_batch": micro_batch,
        "recipe_tokens_per_s_per_worker": packed["real_tokens_per_s_per_worker"],
        "recipe_tokens_per_s_total": round(packed["real_tokens_per_s_per_worker"] * world, 1),
        "plain_tokens_per_s": round(plain_tps, 1),
        "ratio_per_worker": round(packed["real_tokens_per_s_per_worker"] / plain_tps, 3),
        "ratio_total": round(packed["real_tokens_per_s_per_worker"] * world / plain_tps, 3),
        "recipe": "Ray Train + DeepSpeed ZeRO-2 + PEFT LoRA" if workers else "DeepSpeed ZeRO-2 + PEFT LoRA, in process",
        "plain": "transformers + PEFT LoRA + torch AdamW, one process, padded micro-batches",
    }


def _recipe_run(out: Path, paths: list[str], pack: bool, micro: int, world: int, workers: int, steps: int,
                seq_len: int, hidden: int, layers: int, fmt_name: str) -> dict[str, Any]:
    from raypipe.train.config import DataSource, SFTConfig, TinyModelSettings
    from raypipe.train.launch import run_training
    from raypipe.train.sft import sft_loop

    # enough repeats of the data that every worker runs steps + 1 optimizer steps in one epoch
    rows = sum(1 for p in paths for line in open(p, encoding="utf-8") if line.strip())
    per_step = micro * world * (8 if pack else 1)  # a packed row holds several samples; 8 is ample
    ratio = max(1.0, (steps + 1) * per_step / rows * 1.5)
    cfg = SFTConfig(
        model="tiny", tiny_model=TinyModelSettings(hidden=hidden, layers=layers),
        data=[DataSource(path=p, kind="samples", ratio=ratio) for p in paths],
        out=str(out), name="bench-train", format=fmt_name, max_seq_len=seq_len, pack=pack,
        global_batch_size=micro * world, micro_batch_size=micro, num_workers=workers,
        epochs=1, max_steps=steps + 1, warmup_steps=1, log_every=10**6, checkpoint_every=10**6,
        vllm_export=False,
    )
    summary = run_training(cfg, sft_loop)
    timed = json.loads(Path(summary["metrics"]).read_text())["steps"][1:]
    took = sum(h["step_s"] for h in timed)
    real = sum(h["tokens_per_s_per_worker"] * h["step_s"] for h in timed)
    return {
        "real_tokens_per_s_per_worker": round(real / took, 1),
        "micro_batch": micro, "unit": f"packed rows of {seq_len} tokens" if pack else "samples, padded to the longest",
        "samples_per_step": round(_samples_per_step(out, summary, micro * world), 2),
        "steps": len(timed), "base": summary["base_model"],
    }


def _median(runs: list[dict]) -> dict[str, Any]:
    """The run with the median tokens/s, with every run's figure beside it."""
    ordered = sorted(runs, key=lambda r: r["real_tokens_per_s_per_worker"])
    return {**ordered[len(ordered) // 2], "all_runs": [r["real_tokens_per_s_per_worker"] for r in runs]}


def _samples_per_step(out: Path, summary: dict, units_per_step: int) -> float:
    plan = json.loads((out / "plan" / "plan.json").read_text())
    return plan["items"] / plan["units"] * units_per_step


def plain_loop_tokens_per_s(run_dir: Path, paths: list[str], fmt_name: str, steps: int, micro_batch: int,
                            seq_len: int) -> float:
    """The loop everyone writes first: same model, same LoRA, padded batches, no DeepSpeed, no Ray."""
    import torch
    from transformers import AutoTokenizer

    from raypipe.io import read_sample_file
    from raypipe.templates import tokenize_sample
    from raypipe.train.batches import collate
    from raypipe.train.config import LoraSettings
    from raypipe.train.losses import nll_sum_and_count
    from raypipe.train.model import build_trainable_model

    torch.set_num_threads(1)  # the recipe's CPU workers use one thread per reserved core
    tokenizer = AutoTokenizer.from_pretrained(str(run_dir / "tokenizer"))
    rows = [tokenize_sample(s, tokenizer, fmt_name) for p in paths for s in read_sample_file(p)]
    rows = [r for r in rows if len(r["input_ids"]) <= seq_len]
    model = build_trainable_model(
        str(run_dir / "base"), dtype=torch.float32, vocab_size=len(tokenizer),
        new_token_ids=[], lora=LoraSettings(),
    )
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    tokens, took = 0, 0.0
    for step in range(steps + 1):
        batch_rows = [rows[(step * micro_batch + i) % len(rows)] for i in range(micro_batch)]
        batch = collate(batch_rows, tokenizer.pad_token_id, "cpu")
        started = time.perf_counter()
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        nll, count = nll_sum_and_count(logits, batch["labels"])
        (nll / count).backward()
        optimizer.step()
        optimizer.zero_grad()
        if step:  # step 0 is the warm-up
            took += time.perf_counter() - started
            tokens += batch["real_tokens"]
    return tokens / took
