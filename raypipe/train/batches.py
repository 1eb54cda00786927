"""Micro-batches as tensors: right-padded rows, or fixed-length packed rows.

Both return `model_inputs` (what the model is called with), `labels` (-100 where nothing is
trained), `token_source` (each token's source index, for the per-source loss) and
`real_tokens` (tokens that are not padding, for tokens/s and MFU).

Packed rows hold several samples each, with `position_ids` restarting at 0 per sample and
attention that never crosses samples:

- varlen (flash-attention, and SDPA through `raypipe.train.attention`): the micro-batch is one
  row of `rows x pack_len` tokens with the sample boundaries as `cu_seq_lens_q/k`, the layout of
  flash-attention's varlen kernel;
- eager: a 4D block-causal mask per row (the padding tail is a segment of its own, so no
  attention row is empty).

A sample's first label is set to -100 in a packed row; it is never a target anyway (position t
predicts token t+1), and this keeps the previous sample's last position from predicting it.
"""

from __future__ import annotations

from typing import Any, Sequence

from raypipe.templates.tokens import IGNORE_INDEX

VARLEN_ATTENTION = ("flash_attention_2", "flash_attention_3", "raypipe_varlen_sdpa")
PACKING_ATTENTION = ("sdpa", "eager", *VARLEN_ATTENTION)  # implementations that keep samples apart


def collate(rows: Sequence[dict], pad_id: int, device, prefix: str = "") -> dict[str, Any]:
    """Right-pad a micro-batch to its longest row. Padding carries no loss (IGNORE_INDEX labels)."""
    import torch

    ids = [r[prefix + "input_ids"] for r in rows]
    labels = [r[prefix + "labels"] for r in rows]
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    label_t = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    source = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (x, y) in enumerate(zip(ids, labels)):
        input_ids[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        label_t[i, : len(y)] = torch.tensor(y, dtype=torch.long)
        mask[i, : len(x)] = 1
        source[i] = int(rows[i].get("source_idx", 0))
    batch = {
        "input_ids": input_ids.to(device),
        "labels": label_t.to(device),
        "attention_mask": mask.to(device),
        "token_source": source.to(device),
        "real_tokens": int(mask.sum()),
    }
    batch["model_inputs"] = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if "source_idx" in rows[0]:
        batch["source_idx"] = torch.tensor([int(r["source_idx"]) for r in rows], device=device)
    return batch


def collate_packed(units: Sequence[Sequence[dict]], pack_len: int, pad_id: int, device, *,
                   varlen: bool = True, mask_dtype=None) -> dict[str, Any]:
    """Packed micro-batch: each unit (the samples of one packed row) becomes one row of `pack_len`
    tokens. `varlen`: one row of all tokens with `cu_seq_lens`; else a 4D block-causal mask."""
    import torch

    from raypipe.templates.batching import block_causal_mask

    n = len(units)
    input_ids = torch.full((n, pack_len), pad_id, dtype=torch.long)
    labels = torch.full((n, pack_len), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((n, pack_len), dtype=torch.long)
    source = torch.zeros((n, pack_len), dtype=torch.long)
    masks, lengths, real = [], [], 0
    for b, rows in enumerate(units):
        at, seq_lens = 0, []
        for r in rows:
            k = len(r["input_ids"])
            if at + k > pack_len:
                raise ValueError(f"packed row {b} holds more than pack_len {pack_len} tokens")
            input_ids[b, at:at + k] = torch.tensor(r["input_ids"], dtype=torch.long)
            row_labels = torch.tensor(r["labels"], dtype=torch.long)
            row_labels[0] = IGNORE_INDEX
            labels[b, at:at + k] = row_labels
            position_ids[b, at:at + k] = torch.arange(k)
            source[b, at:at + k] = int(r.get("source_idx", 0))
            at += k
            seq_lens.append(k)
        real += at
        if at < pack_len:  # the padding tail: its own segment, no loss
            position_ids[b, at:] = torch.arange(pack_len - at)
            seq_lens.append(pack_len - at)
        lengths += seq_lens
        if not varlen:
            masks.append(block_causal_mask(seq_lens, dtype=mask_dtype or torch.float32)[0])
    if varlen:
        input_ids, labels = input_ids.view(1, -1), labels.view(1, -1)
        position_ids, source = position_ids.view(1, -1), source.view(1, -1)
    batch = {
        "input_ids": input_ids.to(device),
        "labels": labels.to(device),
        "position_ids": position_ids.to(device),
        "token_source": source.to(device),
        "real_tokens": real,
    }
    batch["model_inputs"] = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"]}
    if varlen:
        cu = torch.zeros(len(lengths) + 1, dtype=torch.int32)
        cu[1:] = torch.cumsum(torch.tensor(lengths, dtype=torch.int32), 0)
        cu = cu.to(device)
        batch["model_inputs"].update(cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=max(lengths),
                                     max_length_k=max(lengths))
    else:
        batch["model_inputs"]["attention_mask"] = torch.stack(masks).to(device)
    return batch


def make_batch(units: Sequence[Sequence[dict]], spec: dict[str, Any], device, mask_dtype=None) -> dict[str, Any]:
    """The recipe's micro-batch from its units: packed when the run packs, else padded rows."""
    if spec.get("pack_len"):
        return collate_packed(units, spec["pack_len"], spec["pad_id"], device,
                              varlen=spec.get("attn_implementation") in VARLEN_ATTENTION, mask_dtype=mask_dtype)
    return collate([rows[0] for rows in units], spec["pad_id"], device)
