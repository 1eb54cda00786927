"""The mDPO term compares the same turns: a positive trajectory that goes on after the turn
where the negative one ends adds nothing to the DPO margin (only to the SFT term)."""

import pytest

torch = pytest.importorskip("torch")

from raypipe.schema import Message, Sample, ToolCall  # noqa: E402
from raypipe.templates import add_special_tokens, render  # noqa: E402
from raypipe.templates.tokenize import tokenize_pair  # noqa: E402
from raypipe.tiny import make_tiny_model, make_tiny_tokenizer  # noqa: E402
from raypipe.train.losses import mdpo_batch_loss  # noqa: E402
from raypipe.train.mdpo import pair_batch  # noqa: E402

pytestmark = pytest.mark.unit

SPEC = {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


def dialog(city: str, go_on: bool) -> Sample:
    messages = [Message("user", "Weather in Taipei?"),
                Message("assistant", tool_calls=[ToolCall("get_weather", {"city": city})])]
    if go_on:
        messages += [Message("tool", '{"temp": 30}', name="get_weather"), Message("assistant", "It is 30 degrees.")]
    return Sample(functions=[SPEC], messages=messages)


def margin(chosen: Sample, rejected: Sample):
    texts = [render(s, "tools-dt") for s in (chosen, rejected)] * 4
    tok = make_tiny_tokenizer(texts, vocab_size=300)
    add_special_tokens(tok, "tools-dt")
    row = tokenize_pair(chosen, rejected, 1, tok, "tools-dt")
    batch = pair_batch([[row]], tok.pad_token_id, "cpu")
    policy, reference = make_tiny_model(tok, seed=1).eval(), make_tiny_model(tok, seed=2).eval()
    with torch.no_grad():
        logits = policy(**batch["model_inputs"]).logits
        ref_logits = reference(**batch["model_inputs"]).logits
    _, parts = mdpo_batch_loss(logits, ref_logits, batch["labels"], eta=1.0, sft_weight=1.0, dpo_weight=1.0,
                               total_tokens=1, total_pairs=1, sft_labels=batch["sft_labels"])
    return float(parts["chosen"][0] - parts["rejected"][0]), batch


def test_a_negative_equal_to_the_positives_first_turn_has_zero_margin():
    """Same first turn on both sides; the positive one continues. Comparing the same turns, the
    two sides are the same tokens in the same context: margin 0 for any policy and reference."""
    m, batch = margin(dialog("Taipei", go_on=True), dialog("Taipei", go_on=False))
    assert m == pytest.approx(0.0, abs=1e-4)
    # the SFT labels still cover the positive trajectory's second turn
    assert int((batch["sft_labels"][0] != -100).sum()) > int((batch["labels"][0] != -100).sum())


def test_a_corrupted_turn_moves_the_margin():
    m, _ = margin(dialog("Taipei", go_on=True), dialog("Kaohsiung", go_on=False))
    assert abs(m) > 1e-3
