"""New special tokens: resized to a multiple of 64, mean-initialised, trainable, saved and reloaded."""

import pytest

torch = pytest.importorskip("torch")

from raypipe.templates import add_special_tokens, get_format  # noqa: E402
from raypipe.tiny import make_tiny_model, make_tiny_tokenizer  # noqa: E402
from raypipe.train.config import LoraSettings  # noqa: E402
from raypipe.train.model import apply_lora, load_for_inference, resize_for_tokenizer  # noqa: E402

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def tiny():
    tok = make_tiny_tokenizer(["get_weather(city='Taipei') answer use tool"] * 10, vocab_size=300)
    model = make_tiny_model(tok)
    old_rows = model.get_input_embeddings().weight.shape[0]
    return tok, model, old_rows


def test_new_rows_padded_to_64_and_start_at_the_mean(tiny):
    tok, model, old_rows = tiny
    old_in = model.get_input_embeddings().weight[:old_rows].detach().clone()
    old_out = model.get_output_embeddings().weight[:old_rows].detach().clone()
    new_ids = add_special_tokens(tok, get_format("tools-dt"))
    assert new_ids, "the Decision Token format adds tokens to a plain ChatML tokenizer"
    fresh = resize_for_tokenizer(model, len(tok), new_ids)
    rows = model.get_input_embeddings().weight.shape[0]
    assert rows % 64 == 0 and rows >= len(tok)
    assert fresh == list(range(old_rows, rows)) and set(new_ids) <= set(fresh)
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert torch.allclose(emb[fresh], old_in.mean(0).expand(len(fresh), -1))
    assert torch.allclose(head[fresh], old_out.mean(0).expand(len(fresh), -1))
    assert torch.equal(emb[:old_rows], old_in)  # existing rows untouched


def test_lora_on_all_linear_layers_with_trainable_new_rows_saves_and_reloads(tiny, tmp_path):
    tok, model, old_rows = tiny
    base_dir = tmp_path / "base"
    make_tiny_model_like(tok, old_rows).save_pretrained(base_dir)  # before any token was added

    new_ids = [i for i in range(old_rows, len(tok))]
    trained = make_tiny_model_like(tok, old_rows)
    fresh = resize_for_tokenizer(trained, len(tok), new_ids)
    peft_model = apply_lora(trained, LoraSettings(), fresh)
    names = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    for proj in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
        assert any(f"{proj}.lora_A" in n for n in names), proj
    assert any("embed_tokens" in n and "trainable_tokens" in n for n in names)
    assert any("lm_head" in n and "trainable_tokens" in n for n in names)

    # "train": move the new rows and the LoRA weights somewhere distinctive
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.5)
    peft_model.eval()  # no LoRA dropout
    ids = torch.tensor([[1, *new_ids, 5, new_ids[0]]])
    expected = peft_model(input_ids=ids).logits

    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter, save_embedding_layers=False)
    tok.save_pretrained(adapter)
    reloaded, rtok = load_for_inference(str(base_dir), str(adapter))
    assert len(rtok) == len(tok)
    assert torch.allclose(reloaded(input_ids=ids).logits, expected, atol=1e-5)


def make_tiny_model_like(tok, rows):
    """The base model: the tiny Llama with the tokenizer's original vocabulary size."""
    model = make_tiny_model(tok, seed=0)
    model.resize_token_embeddings(rows, mean_resizing=False)
    return model
