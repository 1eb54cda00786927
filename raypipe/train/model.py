"""Base model + new special tokens + LoRA: what every worker builds before deepspeed.initialize."""

from __future__ import annotations

from typing import Any

from raypipe.templates.tokens import PAD_TO_MULTIPLE
from raypipe.train.config import LoraSettings

RESERVED_TOKEN = "<|raypipe_reserved_{}|>"


def load_causal_lm(name_or_path: str, dtype: Any, attn_implementation: str | None = None,
                   random_init: bool = False, device: Any = None):
    """The base model; `random_init` builds it from its config with random weights, directly on
    `device` (throughput benchmarks of a model shape without its weights)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from raypipe.train.attention import VARLEN_SDPA, register_varlen_sdpa

    if attn_implementation == VARLEN_SDPA:
        register_varlen_sdpa()  # in every worker process, before the model asks for it
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if random_init:
        import torch

        config = AutoConfig.from_pretrained(name_or_path)
        with torch.device(device or "cpu"):
            return AutoModelForCausalLM.from_config(config, dtype=dtype, **kwargs)
    return AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype, **kwargs)


def pad_tokenizer(tokenizer, embedding_rows: int) -> list[int]:
    """When the tokenizer outgrows the base's `embedding_rows`, add reserved special tokens up to
    the next multiple of 64, so that len(tokenizer) is exactly the resized embedding size.

    Every loader that resizes the base to len(tokenizer) (PEFT's AutoPeftModelForCausalLM,
    `resize_token_embeddings(len(tok))`, vLLM) then gets the shape the adapter was trained with.
    Returns the ids added.
    """
    from raypipe.templates.tokenize import _is_single_token

    if len(tokenizer) <= embedding_rows or len(tokenizer) % PAD_TO_MULTIPLE == 0:
        return []
    from tokenizers import AddedToken

    want = -(-len(tokenizer) // PAD_TO_MULTIPLE) * PAD_TO_MULTIPLE
    names = [RESERVED_TOKEN.format(i) for i in range(want - len(tokenizer))]
    tokens = [AddedToken(t, special=True, normalized=False) for t in names]
    tokenizer.add_tokens(tokens, special_tokens=True)
    if len(tokenizer) != want or not all(_is_single_token(tokenizer, t) for t in names[:1]):
        raise RuntimeError(f"could not pad the tokenizer to {want} tokens (it has {len(tokenizer)})")
    return [tokenizer.convert_tokens_to_ids(t) for t in names]


def resize_for_tokenizer(model, vocab_size: int, new_token_ids: list[int]) -> list[int]:
    """Resize embeddings for `vocab_size` tokens (padded to a multiple of 64) and initialise every
    new row (the added tokens and the padding rows) to the mean of the pre-existing rows.

    A mean row starts the new token "somewhere typical" instead of at a random point, and an
    output row equal to the mean can never win a greedy argmax before it is trained. Returns the
    row ids that must be trainable: the added tokens plus the padding rows, so that the adapter
    stores their exact values and reloads them bit for bit.
    """
    import torch

    old_rows = model.get_input_embeddings().weight.shape[0]
    _resize(model, vocab_size)
    new_rows = model.get_input_embeddings().weight.shape[0]
    fresh = sorted(set(new_token_ids) | set(range(old_rows, new_rows)))
    if not fresh:
        return []
    known = min(fresh)  # rows below the first fresh id were trained with the base model
    with torch.no_grad():
        for emb in _embedding_matrices(model):
            w = emb.weight
            w[fresh] = w[:known].mean(dim=0, keepdim=True).to(w.dtype)
    return fresh


def _resize(model, vocab_size: int) -> None:
    """Grow (never shrink) the vocabulary to hold `vocab_size` ids, padded to a multiple of 64;
    a base that already has the rows is left as it is (its extra rows are its own)."""
    rows = model.get_input_embeddings().weight.shape[0]
    if vocab_size > rows:
        model.resize_token_embeddings(vocab_size, pad_to_multiple_of=PAD_TO_MULTIPLE, mean_resizing=False)


def _embedding_matrices(model) -> list:
    inp, out = model.get_input_embeddings(), model.get_output_embeddings()
    if out is None or out.weight is inp.weight:
        return [inp]
    return [inp, out]


def _module_name(model, module) -> str:
    for name, m in model.named_modules():
        if m is module:
            return name.split(".")[-1]
    raise ValueError("embedding module not found in the model")


def apply_lora(model, lora: LoraSettings, trainable_token_ids: list[int]):
    """Wrap with a PEFT LoRA adapter; the fresh token rows train too (input and output side)."""
    from peft import LoraConfig, get_peft_model

    trainable_tokens = None
    if trainable_token_ids:
        trainable_tokens = {_module_name(model, model.get_input_embeddings()): trainable_token_ids}
        out = model.get_output_embeddings()
        if out is not None and out.weight is not model.get_input_embeddings().weight:
            trainable_tokens[_module_name(model, out)] = trainable_token_ids
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        trainable_token_indices=trainable_tokens,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def build_trainable_model(
    model_path: str,
    *,
    dtype: Any,
    vocab_size: int,
    new_token_ids: list[int],
    lora: LoraSettings,
    gradient_checkpointing: bool = False,
    merge_adapter: str | None = None,
    attn_implementation: str | None = None,
    random_init: bool = False,
    device: Any = None,
):
    """The model a worker trains: base (+ an SFT adapter merged in) + resized vocab + LoRA."""
    model = load_causal_lm(model_path, dtype, attn_implementation, random_init, device)
    if merge_adapter:
        model = merge_into_base(model, merge_adapter, vocab_size)
        fresh: list[int] = []  # the SFT adapter already trained the new tokens
    else:
        fresh = resize_for_tokenizer(model, vocab_size, new_token_ids)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.config.use_cache = False
    return apply_lora(model, lora, fresh)


def merge_into_base(base_model, adapter_dir: str, vocab_size: int):
    """Base + adapter merged into plain weights (the SFT model as a standalone network)."""
    from peft import PeftModel

    _resize(base_model, vocab_size)
    return PeftModel.from_pretrained(base_model, adapter_dir).merge_and_unload()


def load_for_inference(base: str, adapter_dir: str, dtype: Any = None):
    """Plain transformers + peft: what a user runs to use an exported adapter.

    The tokenizer saved with the adapter knows the added tokens; the base is resized to the same
    padded size, then the adapter restores the trained rows exactly.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    _resize(model, len(tokenizer))
    model = PeftModel.from_pretrained(model, adapter_dir)
    model.eval()
    return model, tokenizer
