"""Batching tokenized samples: padding-free packing and plain padded batches.

`pack` puts several samples into one row of at most `seq_len` tokens with first-fit
decreasing bin packing. Each packed row carries `position_ids` that restart at 0 for every
sample and `seq_lens` (the sample lengths, in order), so attention never crosses samples:

- flash-attention 2 (transformers detects packed rows from the position_ids resets with
  batch size 1, or pass `cu_seqlens(seq_lens)` to `flash_attn_varlen_func`);
- any other implementation (sdpa/eager, CPU): pass `block_causal_mask(seq_lens)` as a 4D
  attention mask.

The first label of every sample is set to -100 so no loss term predicts a sample's first
token from the previous sample (it is `<|im_start|>`, untrained anyway).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from raypipe.templates.tokens import IGNORE_INDEX


def first_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of `lengths` grouped into bins of at most `capacity`, first-fit decreasing.

    A max segment tree over the bins' free space finds the first bin that fits in
    O(log n), so millions of samples pack in seconds.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    size = 1
    while size < max(1, len(lengths)):
        size *= 2
    free = [0] * (2 * size)  # leaves: free space of bin k at free[size + k]; unopened = 0
    bins: list[list[int]] = []
    for i in order:
        need = lengths[i]
        if not 0 < need <= capacity:
            raise ValueError(f"sample {i} has {need} tokens; must be 1..{capacity}")
        if free[1] >= need:
            node = 1
            while node < size:  # descend to the leftmost leaf with enough room
                node = 2 * node if free[2 * node] >= need else 2 * node + 1
            k = node - size
        else:
            k = len(bins)
            bins.append([])
            node = size + k
            free[node] = capacity
        bins[k].append(i)
        free[node] -= need
        node //= 2
        while node:
            free[node] = max(free[2 * node], free[2 * node + 1])
            node //= 2
    return bins


def pack(rows: Iterable[dict[str, Any]], seq_len: int) -> list[dict[str, Any]]:
    """Packed rows: `input_ids`, `labels`, `position_ids`, `seq_lens` (and `ids` when given).

    Each input row needs `input_ids` and `labels`; a row longer than `seq_len` is an error
    (drop or reject such rows when tokenizing, see `raypipe tokenize --max-tokens`).
    """
    rows = list(rows)
    lengths = [len(r["input_ids"]) for r in rows]
    for i, (row, n) in enumerate(zip(rows, lengths)):
        if n > seq_len:
            raise ValueError(f"row {row.get('id', i)} has {n} tokens, more than seq_len {seq_len}")
        if len(row["labels"]) != n:
            raise ValueError(f"row {row.get('id', i)}: labels and input_ids differ in length")
    packed = []
    for members in first_fit_decreasing(lengths, seq_len):
        input_ids: list[int] = []
        labels: list[int] = []
        position_ids: list[int] = []
        for i in members:
            input_ids += list(rows[i]["input_ids"])
            row_labels = list(rows[i]["labels"])
            if row_labels:
                row_labels[0] = IGNORE_INDEX
            labels += row_labels
            position_ids += range(lengths[i])
        out = {
            "input_ids": input_ids,
            "labels": labels,
            "position_ids": position_ids,
            "seq_lens": [lengths[i] for i in members],
        }
        if all("id" in rows[i] for i in members):
            out["ids"] = [rows[i]["id"] for i in members]
        packed.append(out)
    return packed


def pad_batch(
    rows: Sequence[dict[str, Any]], pad_id: int, seq_len: int | None = None
) -> dict[str, list[list[int]]]:
    """Right-padded batch: `input_ids` (pad_id), `labels` (-100), `attention_mask`, `position_ids`.

    Padded to the longest row, or to `seq_len` when given (a longer row is an error).
    """
    longest = max((len(r["input_ids"]) for r in rows), default=0)
    width = longest if seq_len is None else seq_len
    if longest > width:
        raise ValueError(f"a row has {longest} tokens, more than seq_len {width}")
    batch: dict[str, list[list[int]]] = {
        "input_ids": [], "labels": [], "attention_mask": [], "position_ids": []
    }
    for row in rows:
        n = len(row["input_ids"])
        pad = width - n
        batch["input_ids"].append(list(row["input_ids"]) + [pad_id] * pad)
        batch["labels"].append(list(row["labels"]) + [IGNORE_INDEX] * pad)
        batch["attention_mask"].append([1] * n + [0] * pad)
        batch["position_ids"].append(list(range(n)) + [0] * pad)
    return batch


def cu_seqlens(seq_lens: Sequence[int]) -> list[int]:
    """Cumulative sequence starts for flash-attention varlen: [0, l0, l0+l1, ...]."""
    out = [0]
    for n in seq_lens:
        out.append(out[-1] + n)
    return out


def block_causal_mask(seq_lens: Sequence[int], dtype=None):
    """A (1, 1, T, T) additive mask: causal inside each sample, blocked across samples.

    For attention implementations without varlen support (sdpa, eager, CPU). Needs torch.
    """
    import torch

    dtype = dtype or torch.float32
    total = sum(seq_lens)
    segment = torch.repeat_interleave(
        torch.arange(len(seq_lens)), torch.tensor(list(seq_lens), dtype=torch.long)
    )
    causal = torch.ones(total, total, dtype=torch.bool).tril()
    allowed = causal & (segment[:, None] == segment[None, :])
    mask = torch.zeros(total, total, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[None, None]
