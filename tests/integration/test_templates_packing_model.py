"""A packed row through a real (tiny) Llama equals the samples run one by one: no leakage."""

import pytest

from raypipe.templates.batching import block_causal_mask, pack
from raypipe.tiny import make_tiny_model, make_tiny_tokenizer

pytestmark = pytest.mark.integration


def test_packed_logits_equal_separate_logits():
    torch = pytest.importorskip("torch")
    tok = make_tiny_tokenizer(["the quick brown fox jumps over the lazy dog"] * 5, vocab_size=300)
    model = make_tiny_model(tok).eval()
    texts = ["the quick brown fox", "jumps over", "the lazy dog jumps over the fox"]
    rows = []
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        rows.append({"input_ids": ids, "labels": ids})
    [packed] = pack(rows, seq_len=64)
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor([packed["input_ids"]]),
            position_ids=torch.tensor([packed["position_ids"]]),
            attention_mask=block_causal_mask(packed["seq_lens"]),
        ).logits[0]
        start = 0
        by_length = sorted(rows, key=lambda r: -len(r["input_ids"]))  # pack order (FFD)
        for r, n in zip(by_length, packed["seq_lens"]):
            alone = model(input_ids=torch.tensor([r["input_ids"]])).logits[0]
            assert torch.allclose(out[start : start + n], alone, atol=1e-5)
            start += n
        # without the block mask the later samples would see the earlier ones
        leaky = model(
            input_ids=torch.tensor([packed["input_ids"]]),
            position_ids=torch.tensor([packed["position_ids"]]),
        ).logits[0]
        assert not torch.allclose(leaky[start - n : start], out[start - n : start], atol=1e-5)
