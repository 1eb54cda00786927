"""Tiny random models and tokenizers built on the fly (no downloads, ever).

Tests, benchmarks and the `sft_tiny_cpu` job use these to run the real training and
inference paths in seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

BASE_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]


def make_tiny_tokenizer(texts: Iterable[str], vocab_size: int = 800):
    """A byte-level BPE tokenizer trained on `texts`, wrapped as a transformers fast tokenizer.

    Only the ChatML tokens are special here; raypipe adds format tokens (Decision Token...)
    itself, as it must for a real base model that lacks them.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=BASE_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token=None,
    )


def make_tiny_model(tokenizer, hidden: int = 64, layers: int = 2, heads: int = 4, seed: int = 0):
    """A randomly initialised Llama-architecture causal LM sized for CPU tests."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


def save_tiny_model(out_dir: str | Path, texts: Iterable[str], **model_kwargs) -> Path:
    """Build a tiny tokenizer + model and save both to `out_dir` (a local 'hub' path)."""
    out = Path(out_dir)
    tokenizer = make_tiny_tokenizer(texts)
    model = make_tiny_model(tokenizer, **model_kwargs)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
