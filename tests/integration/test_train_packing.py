"""Packing in training: per-sample loss and gradients of packed rows equal those of padded rows,
with the varlen SDPA path (the default on CPU) and the 4D block mask (eager), on a tiny Llama
with LoRA; and `raypipe bench train --json` reports real tokens/s packed vs padded side by side."""

import json

import pytest

from raypipe.testing.samples import first_call_samples

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny():
    from raypipe.data import IF_JSONL
    from raypipe.io import read_sample_file
    from raypipe.templates import add_special_tokens, render, tokenize_sample
    from raypipe.tiny import make_tiny_model, make_tiny_tokenizer

    samples = first_call_samples(3) + list(read_sample_file(str(IF_JSONL)))[:2]
    tok = make_tiny_tokenizer([render(s, "tools-dt") for s in samples], vocab_size=400)
    add_special_tokens(tok, "tools-dt")
    rows = []
    for i, s in enumerate(samples):
        t = tokenize_sample(s, tok, "tools-dt")
        rows.append({"id": s.id, "source_idx": i % 2, **t})
    return tok, rows, make_tiny_model(tok, hidden=64, layers=2)


def lora_model(base, attn: str):
    import copy

    from raypipe.train.attention import register_varlen_sdpa
    from raypipe.train.config import LoraSettings
    from raypipe.train.model import apply_lora

    register_varlen_sdpa()
    model = copy.deepcopy(base)
    model.set_attn_implementation(attn)
    import torch

    torch.manual_seed(0)
    peft = apply_lora(model, LoraSettings(dropout=0.0), [])
    with torch.no_grad():  # LoRA B starts at zero; move it so the adapter is not a no-op
        for n, p in peft.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    return peft


def per_sample_nll(logits, labels, lengths):
    """Summed NLL of each sample, from a row that holds the samples one after another."""
    from raypipe.train.losses import token_logps

    logps, _ = token_logps(logits, labels)
    flat, out, start = -logps.reshape(-1), [], 0
    for n in lengths:
        # targets of positions start..start+n-2 are the sample's tokens 1..n-1
        out.append(flat[start:start + n - 1].sum())
        start += n
    return out


@pytest.mark.parametrize("attn", ["raypipe_varlen_sdpa", "eager"])
def test_packed_per_sample_loss_and_gradients_equal_padded(tiny, attn):
    import torch

    from raypipe.train.batches import collate, collate_packed
    from raypipe.train.losses import token_logps

    tok, rows, base = tiny
    units = [rows[:2], rows[2:]]  # two packed rows: samples 0-1 and 2-4
    pack_len = max(sum(len(r["input_ids"]) for r in u) for u in units) + 7  # a padding tail too

    padded_model = lora_model(base, "sdpa")
    batch = collate(rows, tok.pad_token_id, "cpu")
    logps, _ = token_logps(padded_model(**batch["model_inputs"]).logits, batch["labels"])
    padded_nll = -logps.sum(dim=-1)
    padded_nll.sum().backward()
    padded_grads = {n: p.grad.clone() for n, p in padded_model.named_parameters() if p.grad is not None}

    packed_model = lora_model(base, attn)
    packed = collate_packed(units, pack_len, tok.pad_token_id, "cpu", varlen=attn != "eager")
    logits = packed_model(**packed["model_inputs"]).logits
    packed_nll = []
    for b, unit in enumerate(units):
        row_logits = logits.view(len(units), pack_len, -1)[b:b + 1]
        row_labels = packed["labels"].view(len(units), pack_len)[b:b + 1]
        packed_nll += per_sample_nll(row_logits, row_labels, [len(r["input_ids"]) for r in unit])
    packed_nll = torch.stack(packed_nll)
    packed_nll.sum().backward()

    assert torch.allclose(packed_nll, padded_nll, rtol=1e-5, atol=1e-4), (packed_nll, padded_nll)
    assert packed["real_tokens"] == batch["real_tokens"] == sum(len(r["input_ids"]) for r in rows)
    grads = {n: p.grad for n, p in packed_model.named_parameters() if p.grad is not None}
    assert grads.keys() == padded_grads.keys() and len(grads) > 10
    for name, g in grads.items():
        assert torch.allclose(g, padded_grads[name], rtol=1e-4, atol=1e-6), name


def test_samples_in_one_packed_row_do_not_see_each_other(tiny):
    """Changing the first sample of a packed row leaves the second one's logits unchanged."""
    import torch

    from raypipe.train.batches import collate_packed

    tok, rows, base = tiny
    model = lora_model(base, "raypipe_varlen_sdpa").eval()
    other = {**rows[0], "input_ids": list(reversed(rows[0]["input_ids"]))}
    n0, n1 = len(rows[0]["input_ids"]), len(rows[1]["input_ids"])
    with torch.no_grad():
        a = model(**collate_packed([[rows[0], rows[1]]], n0 + n1, 0, "cpu")["model_inputs"]).logits
        b = model(**collate_packed([[other, rows[1]]], n0 + n1, 0, "cpu")["model_inputs"]).logits
    assert torch.allclose(a[0, n0:], b[0, n0:], atol=1e-5)
    assert not torch.allclose(a[0, :n0], b[0, :n0], atol=1e-3)


def test_bench_train_reports_real_tokens_per_second_packed_and_padded(tmp_path, capsys):
    from raypipe.cli import main

    assert main(["bench", "train", "--json", "--steps", "2", "--seq-len", "1024",
                 "--out", str(tmp_path / "bench")]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    packed, padded = result["packed"], result["padded"]
    assert packed["steps"] == padded["steps"] == 2
    assert packed["real_tokens_per_s_per_worker"] > 0 and padded["real_tokens_per_s_per_worker"] > 0
    assert result["packed_over_padded"] == pytest.approx(
        packed["real_tokens_per_s_per_worker"] / padded["real_tokens_per_s_per_worker"], rel=0.01)
    assert packed["samples_per_step"] > 1.5 and padded["samples_per_step"] == 4  # rows of several samples
