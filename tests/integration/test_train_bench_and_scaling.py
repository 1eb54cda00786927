"""In process (no Ray): the accumulated step's gradient is that of the global per-token mean, and
`raypipe bench train --json` prints the recipe's tokens/s next to a plain PEFT loop's."""

import json
from pathlib import Path

import pytest

from raypipe.data import SAMPLES_JSONL

pytestmark = pytest.mark.integration


def test_accumulated_gradient_equals_the_global_token_mean_gradient(tmp_path):
    import torch
    from transformers import AutoTokenizer

    from raypipe.schema import Sample
    from raypipe.templates import tokenize_sample
    from raypipe.train.config import DataSource, LoraSettings, SFTConfig, TinyModelSettings
    from raypipe.train.launch import run_training
    from raypipe.train.losses import nll_sum_and_count
    from raypipe.train.model import build_trainable_model
    from raypipe.train.sft import sft_loop
    from raypipe.train.worker import collate

    lines = Path(SAMPLES_JSONL).read_text(encoding="utf-8").splitlines()[:4]
    data = tmp_path / "four.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    lora = LoraSettings(dropout=0.0)  # no random masks: the two computations must agree exactly
    summary = run_training(SFTConfig(
        model="tiny", tiny_model=TinyModelSettings(), data=[DataSource(path=str(data), kind="samples")],
        out=str(tmp_path / "run"), lora=lora, global_batch_size=4, micro_batch_size=1, num_workers=0,
        epochs=1, warmup_steps=0, pack=False,  # 4 samples as 4 micro-batches (packing has its own tests)
    ), sft_loop)
    step = json.loads(Path(summary["metrics"]).read_text())["steps"][0]

    # the same model and batch in plain PyTorch: one forward over all four rows, mean per token
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "run" / "tokenizer"))
    rows = [tokenize_sample(Sample.from_dict(json.loads(x)), tok, "tools-dt") for x in lines]
    torch.manual_seed(0)
    model = build_trainable_model(summary["base_model"], dtype=torch.float32, vocab_size=len(tok),
                                  new_token_ids=[], lora=lora)
    batch = collate(rows, tok.pad_token_id, "cpu")
    nll, count = nll_sum_and_count(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                                   batch["labels"])
    (nll / count).backward()
    norm = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters() if p.grad is not None))
    # 4 micro-batches of one sample each (accumulation 4) vs one batch of 4
    assert step["loss"] == pytest.approx(float(nll.detach() / count), rel=1e-5)
    assert step["grad_norm"] == pytest.approx(float(norm), rel=1e-4)


def test_bench_train_prints_recipe_and_plain_tokens_per_second(tmp_path, capsys):
    from raypipe.cli import main

    assert main(["bench", "train", "--json", "--steps", "3", "--out", str(tmp_path / "bench")]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["steps"] == 3 and result["workers"] == 1
    assert result["recipe_tokens_per_s_per_worker"] > 0 and result["plain_tokens_per_s"] > 0
    assert result["ratio_per_worker"] == pytest.approx(
        result["recipe_tokens_per_s_per_worker"] / result["plain_tokens_per_s"], rel=0.01
    )
