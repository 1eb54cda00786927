import numpy as np
import pytest

from raypipe.config import ConfigError, load_config
from raypipe.synth import mix
from raypipe.synth.mix import MixConfig, MixSource, decide, plan_counts

pytestmark = pytest.mark.unit


def src(name, **kw):
    return MixSource(name=name, inputs=[f"{name}.jsonl"], **kw)


def test_plan_counts_count_fraction_share_and_default_all():
    sources = [src("IF", count=3), src("FC", fraction=0.5), src("NF", share=0.25), src("TC")]
    plan = plan_counts(sources, {"IF": 10, "FC": 7, "NF": 9, "TC": 4}, total=20)
    assert plan == {"IF": 3, "FC": 4, "NF": 5, "TC": 4}


def test_plan_counts_reports_every_impossible_request_at_once():
    sources = [src("IF", count=30), src("NF", share=0.5), src("TC", share=0.7)]
    with pytest.raises(ValueError) as err:
        plan_counts(sources, {"IF": 10, "NF": 100, "TC": 100}, total=None)
    msg = str(err.value)
    assert "source 'IF': asks for 30 rows, has 10 after dedup" in msg
    assert "source 'NF': share needs the mixture's total" in msg
    with pytest.raises(ValueError, match="shares add up to 1.200 > 1"):
        plan_counts(sources[1:], {"NF": 100, "TC": 100}, total=10)


def test_source_and_config_validation_through_load_config():
    with pytest.raises(ConfigError, match="give one of count, fraction, share"):
        load_config(MixSource, {"name": "a", "inputs": ["x"], "count": 1, "share": 0.1})
    with pytest.raises(ConfigError, match="fraction must be in"):
        load_config(MixSource, {"name": "a", "inputs": ["x"], "fraction": 1.5})
    with pytest.raises(ConfigError, match="unique"):
        load_config(MixConfig, {"out": "o", "sources": [{"name": "a", "inputs": ["x"]}] * 2})
    cfg = load_config(MixConfig, {"out": "o", "seed": 3, "sources": [{"name": "a", "inputs": ["x"], "count": 2}]})
    assert cfg.sources[0] == MixSource("a", ["x"], count=2)


def keys(ids, rank, seed=0, name=None):
    names = ["A", "B", "C"]
    return (np.array(ids, dtype="S"), np.array([rank] * len(ids), np.int32),
            np.array([mix.seeded_key(seed, "pick", name or names[rank], i) for i in ids], np.int64))


def test_decide_dedups_earliest_source_wins_and_selects_exact_seeded_counts():
    sources = [src("A", count=2), src("B"), src("C", count=1)]
    blocks = [keys(["a1", "a2", "a3", "x"], 0), keys(["x", "b1", "b1"], 1), keys(["c1", "c2", "x"], 2)]
    masks, read, dropped, plan, dups = decide(blocks, sources, None)
    assert read == {"A": 4, "B": 3, "C": 3} and dropped == {"A": 0, "B": 2, "C": 1}
    assert plan == {"A": 2, "B": 1, "C": 1}
    assert [len(m) for m in masks] == [4, 3, 3]
    assert sum(int(m.sum()) for m in masks) == 4
    # B keeps exactly one of its own two b1 copies and drops its copy of x (A's wins)
    assert masks[1].tolist() in ([False, True, False], [False, False, True])
    assert masks[2][2] == False  # noqa: E712  C's x is a duplicate
    reasons = sorted((d["file"], d["id"], d["reason"]) for d in dups)
    assert reasons == [
        ("B", "b1", "duplicate id: deduplicated in favour of the copy in source 'B'"),
        ("B", "x", "duplicate id: deduplicated in favour of the copy in source 'A'"),
        ("C", "x", "duplicate id: deduplicated in favour of the copy in source 'A'"),
    ]
    # A picks its 2 smallest pick keys: a seeded choice independent of block layout
    a_ids = ["a1", "a2", "a3", "x"]
    expect = sorted(a_ids, key=lambda i: mix.seeded_key(0, "pick", "A", i))[:2]
    assert sorted(np.array(a_ids)[masks[0]].tolist()) == sorted(expect)
    split = [keys(["a1", "a2"], 0), keys(["a3", "x"], 0), keys(["x", "b1", "b1"], 1), keys(["c1", "c2", "x"], 2)]
    masks2 = decide(split, sources, None)[0]
    assert np.concatenate(masks2).tolist() == np.concatenate(masks).tolist()


def test_decide_with_no_rows():
    masks, read, dropped, plan, dups = decide([], [src("A")], None)
    assert masks == [] and read == {"A": 0} and plan == {"A": 0} and dups == []


def test_seeded_key_depends_on_seed_and_parts():
    assert mix.seeded_key(1, "x") == mix.seeded_key(1, "x") != mix.seeded_key(2, "x")
    assert 0 <= mix.seeded_key(0, "a") < 2**63


def tagged_table(name="FC", rank=0, seed=5):
    import json

    from raypipe.data import SAMPLES_JSONL
    from raypipe.schema import Sample, samples_to_table

    samples = [Sample.from_dict(json.loads(x)) for x in SAMPLES_JSONL.read_text().splitlines()]
    return mix.TagRows(name, rank, seed)(samples_to_table(samples))


def test_range_shuffle_gives_one_order_whatever_the_block_layout():
    table = tagged_table()
    n = table.num_rows
    mask = [i % 3 != 0 for i in range(n)]

    def shuffled(cuts, parts):
        blocks = [table.slice(a, b - a) for a, b in zip(cuts, cuts[1:])]
        masks = [mask[a:b] for a, b in zip(cuts, cuts[1:])]
        outs = [mix.filter_block(b, m, parts) for b, m in zip(blocks, masks)]
        ranges = [mix.merge_range(*[o[1 + i] for o in outs]) for i in range(parts)]
        stats = mix.sum_stats([o[0] for o in outs])
        return [i for r in ranges for i in r.column("id").to_pylist()], stats

    one, stats = shuffled([0, n], 1)
    many, stats2 = shuffled([0, 7, 8, 25, n], 5)
    kept = [r for r, keep in zip(table.to_pylist(), mask) if keep]
    assert one == many == [r["id"] for r in sorted(kept, key=lambda r: r[mix.ORDER_COL])]
    assert stats == stats2 and stats["FC"]["rows"] == len(kept)
    assert one != [r["id"] for r in kept]  # it is a shuffle, not the input order


def test_add_mix_name_records_the_source_in_meta():
    import json

    out = mix.add_mix_name(tagged_table("NF-1k"))
    metas = [json.loads(m) for m in out.column("meta").to_pylist()]
    assert all(m["mix"] == "NF-1k" for m in metas) and any("kind" in m for m in metas)
