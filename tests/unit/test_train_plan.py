"""The data plan: every optimizer step trains the same rows in the same order whether one rank
or N ranks run it and wherever a run resumes; rows are read back exactly from Parquet."""

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from raypipe.train.plan import RowStore, TrainPlan, build_units, rank_steps, rows_digest  # noqa: E402

pytestmark = pytest.mark.unit


def plan_of(lengths, pack_len=None, files=("f.parquet",)):
    n = len(lengths)
    offsets, items = build_units(np.array(lengths), pack_len)
    return TrainPlan(files=list(files), item_file=np.zeros(n, np.int32), item_row=np.arange(n, dtype=np.int64),
                     item_source=np.zeros(n, np.int32), item_id=np.array([f"r{i}" for i in range(n)]),
                     item_tokens=np.array(lengths), unit_offsets=offsets, unit_items=items, pack_len=pack_len)


def all_ids(plan, epoch, world, micro, accum, first=0, steps=5):
    """Per step: every rank's row ids, rank by rank (what the recipe's step digest gathers)."""
    per_rank = [list(rank_steps(plan, epoch, 7, first, steps, rank=r, micro_batch=micro, accum=accum, world=world))
                for r in range(world)]
    return [[i for r in range(world) for i in per_rank[r][s][1]] for s in range(steps - first)]


@pytest.mark.parametrize("pack_len", [None, 40])
def test_one_rank_and_two_ranks_train_the_same_rows_per_step(pack_len):
    plan = plan_of([5 + (i * 7) % 30 for i in range(64)], pack_len)
    for epoch in (0, 1):
        one = all_ids(plan, epoch, world=1, micro=2, accum=4)  # global batch 8 units
        two = all_ids(plan, epoch, world=2, micro=2, accum=2)
        four = all_ids(plan, epoch, world=4, micro=1, accum=2)
        assert one == two == four
        assert one == [plan.step_ids(epoch, s, 7, 8) for s in range(5)]
    assert all_ids(plan, 0, 1, 2, 4) != all_ids(plan, 1, 1, 2, 4), "each epoch has its own order"


def test_a_resumed_epoch_continues_with_exactly_the_rows_of_the_uninterrupted_one():
    plan = plan_of(list(range(1, 41)))
    full = all_ids(plan, 2, world=2, micro=2, accum=1, steps=8)
    assert all_ids(plan, 2, world=2, micro=2, accum=1, first=3, steps=8) == full[3:]


def test_packing_keeps_units_within_pack_len_and_every_row_once():
    lengths = [3, 9, 4, 8, 1, 7, 2, 6, 5, 10]
    plan = plan_of(lengths, pack_len=12)
    members = [plan.members(u).tolist() for u in range(plan.num_units)]
    assert sorted(i for m in members for i in m) == list(range(10))
    assert all(sum(lengths[i] for i in m) <= 12 for m in members)
    assert plan.num_units == 5  # 55 tokens in rows of 12: FFD needs the minimum, 5


def test_plan_round_trips_and_its_fingerprint_follows_the_rows(tmp_path):
    plan = plan_of([4, 5, 6, 7], pack_len=10)
    plan.save(tmp_path / "plan")
    back = TrainPlan.load(tmp_path / "plan")
    assert back.fingerprint() == plan.fingerprint()
    assert back.step_ids(0, 0, 1, 2) == plan.step_ids(0, 0, 1, 2)
    assert plan_of([4, 5, 6, 8], pack_len=10).fingerprint() != plan.fingerprint()  # retokenized: other lengths
    other = plan_of([4, 5, 6, 7], pack_len=10)
    other.item_id = np.array(["r0", "r1", "r2", "x"])
    assert other.fingerprint() != plan.fingerprint()
    assert rows_digest(["a", "b"]) != rows_digest(["b", "a"])


def test_row_store_reads_exactly_the_rows_of_the_units(tmp_path):
    rows = [{"input_ids": list(range(i, i + 3 + i)), "labels": [-100] + list(range(i + 1, i + 3 + i))} for i in range(6)]
    pq.write_table(pa.Table.from_pylist(rows[:3]), tmp_path / "a.parquet")
    pq.write_table(pa.Table.from_pylist(rows[3:]), tmp_path / "b.parquet")
    plan = plan_of([len(r["input_ids"]) for r in rows], files=(str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")))
    plan.item_file = np.array([0, 0, 0, 1, 1, 1], np.int32)
    plan.item_row = np.array([0, 1, 2, 0, 1, 2], np.int64)
    store = RowStore(plan, ("input_ids", "labels"))
    store.load([4, 1])
    assert sorted(store.rows) == [1, 4]
    for unit in (1, 4):
        [got] = store.unit_rows(unit)
        assert got["input_ids"].tolist() == rows[unit]["input_ids"] and got["labels"].tolist() == rows[unit]["labels"]
        assert got["id"] == f"r{unit}"
