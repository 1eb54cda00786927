"""mDPO after SFT, alone in one process (no Ray): the reference is the merged SFT model, and the
policy's log-prob margin of positive over negative trajectories grows with training."""

import json
from pathlib import Path

import pytest

from raypipe.schema import ToolCall
from raypipe.testing.samples import first_call_samples

pytestmark = pytest.mark.integration


def corrupt(sample):
    """The negative trajectory: the same dialog whose last call has every string argument wrong."""
    last = sample.messages[-1]
    calls = [
        ToolCall(c.name, {k: ("somewhere else" if isinstance(v, str) else v) for k, v in c.arguments.items()})
        for c in last.tool_calls
    ]
    messages = [*sample.messages[:-1], type(last)(role="assistant", content=last.content, tool_calls=calls)]
    return sample.derive("test_corrupt", messages=messages)


def logp_margins(model, tokenizer, pairs, fmt):
    import torch

    from raypipe.templates import tokenize_sample
    from raypipe.train.losses import sequence_logps

    out = []
    for chosen, rejected in pairs:
        seqs = []
        for s in (chosen, rejected):
            t = tokenize_sample(s, tokenizer, fmt)
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([t["input_ids"]])).logits
            seqs.append(float(sequence_logps(logits, torch.tensor([t["labels"]]))[0]))
        out.append(seqs[0] - seqs[1])
    return out


def test_mdpo_raises_the_margin_and_starts_from_the_sft_reference(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from peft import PeftModel

    from raypipe.schema import dpo_pair_schema
    from raypipe.train.config import DataSource, MDPOConfig, SFTConfig, TinyModelSettings
    from raypipe.train.launch import run_training
    from raypipe.train.mdpo import mdpo_loop
    from raypipe.train.model import load_causal_lm, merge_into_base
    from raypipe.train.sft import sft_loop

    samples = first_call_samples(4)
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(s.to_dict()) + "\n" for s in samples), encoding="utf-8")
    sft = run_training(SFTConfig(
        model="tiny", tiny_model=TinyModelSettings(), data=[DataSource(path=str(data), kind="samples", ratio=2)],
        out=str(tmp_path / "sft"), global_batch_size=4, micro_batch_size=2, num_workers=0,
        epochs=4, lr=1e-2, warmup_steps=2,
    ), sft_loop)

    pairs = [(s, corrupt(s)) for s in samples]
    rows = [{"id": f"p{i}", "chosen": c.to_row(), "rejected": r.to_row(), "turn": len(c.messages) - 1,
             "corruption": "wrong_argument_values", "source": "test", "meta": "{}"} for i, (c, r) in enumerate(pairs)]
    pq.write_table(pa.Table.from_pylist(rows, schema=dpo_pair_schema()), tmp_path / "pairs.parquet")
    cfg = MDPOConfig(
        model=sft["base_model"], sft_adapter=sft["adapter"],
        data=[DataSource(path=str(tmp_path / "pairs.parquet"), kind="pairs", ratio=3)],
        out=str(tmp_path / "mdpo"), global_batch_size=4, micro_batch_size=2, num_workers=0,
        epochs=4, lr=5e-3, warmup_steps=2, eta=0.5,
    )
    summary = run_training(cfg, mdpo_loop, pairs=True)
    history = json.loads(Path(summary["metrics"]).read_text())["steps"]
    assert summary["steps"] == len(history) == 12

    # step 1: the fresh adapter is zero, so policy == reference iff the reference is the SFT model
    assert abs(history[0]["reward_chosen"]) < 1e-4 and abs(history[0]["reward_rejected"]) < 1e-4
    assert history[-1]["reward_margin"] > 0 and history[-1]["reward_accuracy"] == 1.0

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(summary["adapter"])
    sft_model = merge_into_base(load_causal_lm(sft["base_model"], None), sft["adapter"], len(tokenizer)).eval()
    before = logp_margins(sft_model, tokenizer, pairs, cfg.format)
    policy = PeftModel.from_pretrained(sft_model, summary["adapter"]).eval()
    after = logp_margins(policy, tokenizer, pairs, cfg.format)
    assert sum(after) > sum(before) and all(a > b for a, b in zip(after, before)), (before, after)
