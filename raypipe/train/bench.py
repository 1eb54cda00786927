"""`raypipe bench train`: training tokens/s of the SFT recipe vs a plain transformers + PEFT loop.

Both train the same tiny random model (fresh LoRA each) on the same tokenized samples with the
same micro-batches, in the same run; the first step of each is a warm-up and not timed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def bench_train(
    out_dir: str, *, steps: int = 20, micro_batch: int = 4, workers: int = 0,
    hidden: int = 64, layers: int = 2, fmt_name: str = "tools-dt", data: str | None = None,
) -> dict[str, Any]:
    from raypipe.data import SAMPLES_JSONL
    from raypipe.train.config import DataSource, SFTConfig, TinyModelSettings
    from raypipe.train.launch import run_training
    from raypipe.train.sft import sft_loop

    data_path = data or str(SAMPLES_JSONL)
    out = Path(out_dir)
    world = max(workers, 1)
    rows = sum(1 for line in open(data_path, encoding="utf-8") if line.strip())
    # enough rows that every worker runs `steps` optimizer steps in one epoch
    ratio = (steps + 1) * micro_batch * world / rows
    cfg = SFTConfig(
        model="tiny", tiny_model=TinyModelSettings(hidden=hidden, layers=layers),
        data=[DataSource(path=data_path, kind="samples", ratio=ratio)],
        out=str(out / "recipe"), name="bench-train", format=fmt_name,
        global_batch_size=micro_batch * world, micro_batch_size=micro_batch, num_workers=workers,
        epochs=1, warmup_steps=1, log_every=10**6, checkpoint_every=10**6,
    )
    summary = run_training(cfg, sft_loop)
    history = json.loads(Path(summary["metrics"]).read_text())["steps"]
    timed = history[1:]
    recipe_tokens = sum(h["tokens_per_s_per_worker"] * h["step_s"] for h in timed)
    recipe_tps = recipe_tokens / sum(h["step_s"] for h in timed)

    plain_tps = plain_loop_tokens_per_s(out / "recipe", data_path, fmt_name, steps, micro_batch)
    return {
        "model": {"hidden": hidden, "layers": layers, "base": summary["base_model"]},
        "steps": len(timed), "micro_batch": micro_batch, "workers": world,
        "recipe_tokens_per_s_per_worker": round(recipe_tps, 1),
        "recipe_tokens_per_s_total": round(recipe_tps * world, 1),
        "plain_tokens_per_s": round(plain_tps, 1),
        "ratio_per_worker": round(recipe_tps / plain_tps, 3),
        "ratio_total": round(recipe_tps * world / plain_tps, 3),
        "recipe": "Ray Train + DeepSpeed ZeRO-2 + PEFT LoRA" if workers else "DeepSpeed ZeRO-2 + PEFT LoRA, in process",
        "plain": "transformers + PEFT LoRA + torch AdamW, one process",
    }


def plain_loop_tokens_per_s(run_dir: Path, data_path: str, fmt_name: str, steps: int, micro_batch: int) -> float:
    """The loop everyone writes first: same model, same LoRA, same batches, no DeepSpeed, no Ray."""
    import torch
    from transformers import AutoTokenizer

    from raypipe.io import read_sample_file
    from raypipe.templates import tokenize_sample
    from raypipe.train.config import LoraSettings
    from raypipe.train.losses import nll_sum_and_count
    from raypipe.train.model import build_trainable_model
    from raypipe.train.worker import collate

    torch.set_num_threads(1)  # the recipe's CPU workers use one thread per reserved core
    tokenizer = AutoTokenizer.from_pretrained(str(run_dir / "tokenizer"))
    rows = [tokenize_sample(s, tokenizer, fmt_name) for s in read_sample_file(data_path)]
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
            tokens += int(batch["attention_mask"].sum())
    return tokens / took
