import random

import pytest

from raypipe.templates.batching import (
    IGNORE_INDEX,
    cu_seqlens,
    first_fit_decreasing,
    pack,
    pad_batch,
)

pytestmark = pytest.mark.unit


def naive_ffd(lengths, capacity):
    bins, free = [], []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for k, room in enumerate(free):
            if room >= lengths[i]:
                bins[k].append(i)
                free[k] -= lengths[i]
                break
        else:
            bins.append([i])
            free.append(capacity - lengths[i])
    return bins


def test_segment_tree_ffd_equals_the_textbook_ffd():
    rng = random.Random(0)
    for _ in range(50):
        capacity = rng.choice([16, 100, 2048])
        lengths = [rng.randint(1, capacity) for _ in range(rng.randint(1, 200))]
        assert first_fit_decreasing(lengths, capacity) == naive_ffd(lengths, capacity)


def test_ffd_places_every_item_once_within_capacity():
    lengths = [7, 3, 5, 5, 2, 8, 1]
    bins = first_fit_decreasing(lengths, 10)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 10 for b in bins)
    assert len(bins) == 4  # 31 tokens need at least 4 bins of 10


def row(n, first=1, sample_id=None):
    out = {"input_ids": list(range(first, first + n)), "labels": list(range(first, first + n))}
    if sample_id:
        out["id"] = sample_id
    return out


def test_pack_resets_positions_and_masks_first_labels():
    rows = [row(3, 10, "a"), row(5, 20, "b"), row(2, 30, "c")]
    packed = pack(rows, seq_len=8)
    assert [p["seq_lens"] for p in packed] == [[5, 3], [2]]
    first = packed[0]
    assert first["ids"] == ["b", "a"]
    assert first["input_ids"] == [20, 21, 22, 23, 24, 10, 11, 12]
    assert first["position_ids"] == [0, 1, 2, 3, 4, 0, 1, 2]
    assert first["labels"] == [IGNORE_INDEX, 21, 22, 23, 24, IGNORE_INDEX, 11, 12]
    assert cu_seqlens(first["seq_lens"]) == [0, 5, 8]
    assert sum(len(p["input_ids"]) for p in packed) == 10  # no token lost or added


def test_pack_rejects_rows_longer_than_seq_len_and_ragged_labels():
    with pytest.raises(ValueError, match="row x has 9 tokens"):
        pack([row(9, sample_id="x")], seq_len=8)
    with pytest.raises(ValueError, match="differ in length"):
        pack([{"input_ids": [1, 2], "labels": [1]}], seq_len=8)


def test_pad_batch_to_longest_and_to_seq_len():
    batch = pad_batch([row(3), row(1)], pad_id=0)
    assert batch["input_ids"] == [[1, 2, 3], [1, 0, 0]]
    assert batch["labels"] == [[1, 2, 3], [1, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["attention_mask"] == [[1, 1, 1], [1, 0, 0]]
    assert batch["position_ids"] == [[0, 1, 2], [0, 0, 0]]
    assert len(pad_batch([row(3)], pad_id=0, seq_len=6)["input_ids"][0]) == 6
    with pytest.raises(ValueError):
        pad_batch([row(7)], pad_id=0, seq_len=6)
