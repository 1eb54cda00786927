"""Variable-length attention for packed rows without flash-attention (CPUs, GPUs without flash_attn).

A packed micro-batch is one row of several samples with `cu_seq_lens` (sample boundaries), the
layout flash-attention's varlen kernel takes. This attention function runs PyTorch SDPA once
per sample (causal inside it), so it computes sum(L_i^2) attention scores instead of the
(sum L_i)^2 a block-diagonal mask over the whole row costs, and nothing crosses samples. It is
registered with transformers as `raypipe_varlen_sdpa`; without `cu_seq_lens` (padded batches,
generation) it is plain SDPA.

Measured here on the tiny bench model (hidden 64, a 2048-token row of 4 samples, forward +
backward): 5560 real tokens/s with this function vs 2184 with the 4D block mask through SDPA;
the block mask stays the path for `eager` attention.
"""

from __future__ import annotations

VARLEN_SDPA = "raypipe_varlen_sdpa"


def register_varlen_sdpa() -> str:
    """Make `raypipe_varlen_sdpa` a valid attn_implementation (and its mask the SDPA mask)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(VARLEN_SDPA, varlen_sdpa_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(VARLEN_SDPA, sdpa_mask)
    return VARLEN_SDPA


def varlen_sdpa_forward(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                        cu_seq_lens_q=None, cu_seq_lens_k=None, **kwargs):
    """query/key/value: (batch, heads, tokens, head_dim); with `cu_seq_lens_q` the batch is one
    packed row and each [start, end) range is one sample. Returns (batch, tokens, heads, head_dim)."""
    import torch
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    if cu_seq_lens_q is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    if query.shape[0] != 1 or (cu_seq_lens_k is not None and not torch.equal(cu_seq_lens_q, cu_seq_lens_k)):
        raise ValueError("varlen attention takes one packed row with the same boundaries for queries and keys")
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    p = dropout if module.training else 0.0
    bounds = cu_seq_lens_q.tolist()
    parts = [
        F.scaled_dot_product_attention(query[:, :, s:e], key[:, :, s:e], value[:, :, s:e],
                                       dropout_p=p, is_causal=True, scale=scaling)
        for s, e in zip(bounds[:-1], bounds[1:]) if e > s
    ]
    return torch.cat(parts, dim=2).transpose(1, 2).contiguous(), None
