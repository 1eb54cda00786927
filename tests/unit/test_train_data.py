"""Training data on the driver: tokenized Parquet checks, rejects with reasons, labels, ratios."""

import json

import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from raypipe.config import load_config  # noqa: E402
from raypipe.errors import RaypipeError  # noqa: E402
from raypipe.io import read_sample_file  # noqa: E402
from raypipe.train.config import SFTConfig  # noqa: E402
from raypipe.train.data import prepare_data  # noqa: E402

pytestmark = pytest.mark.unit


class FakeTokenizer:
    def __len__(self):
        return 100


def write(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def row(i, source, n=5, trained=True, top=9):
    ids = [1] * (n - 1) + [top]
    return {"id": f"r{i}", "source": source, "input_ids": ids,
            "labels": ids if trained else [-100] * n, "num_tokens": n, "num_trained": n if trained else 0}


def config(tmp_path, data, **kw):
    return load_config(SFTConfig, {"model": "m", "out": str(tmp_path), "data": data, "num_workers": 0,
                                   "global_batch_size": 2, "micro_batch_size": 1, "max_seq_len": 8, **kw})


def test_every_row_is_used_or_rejected_with_its_reason(tmp_path):
    fc = write(tmp_path / "fc.parquet", [row(0, "FC"), row(1, "FC", n=9), row(2, "FC", trained=False), row(3, "NF")])
    iff = write(tmp_path / "if.parquet", [row(4, "whatever"), row(5, "whatever")])
    cfg = config(tmp_path, [{"path": fc, "ratio": 2.0}, {"path": iff, "ratio": 0.5, "label": "IF"}])
    data = prepare_data(cfg, FakeTokenizer(), None, tmp_path)
    assert data.counts == {"rows_read": 6, "rows_rejected": 2, "rows_per_epoch": 2 * 2 + 1}
    assert data.sources == ["FC", "NF", "IF"]
    assert sorted(data.sources[r["source_idx"]] for r in data.rows) == ["FC", "FC", "IF", "NF", "NF"]
    rejects = [json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert {(r["id"], r["reason"]) for r in rejects} == {
        ("r1", "9 tokens > max_seq_len 8"), ("r2", "no trained tokens")}


def test_token_ids_from_another_tokenizer_are_an_error_naming_file_and_row(tmp_path):
    bad = write(tmp_path / "bad.parquet", [row(0, "FC"), row(1, "FC", top=100)])
    with pytest.raises(RaypipeError, match=r"bad.parquet: row 1: token id 100 is outside the tokenizer's 100 ids"):
        prepare_data(config(tmp_path, [{"path": bad}]), FakeTokenizer(), None, tmp_path)


def test_pairs_are_refused_by_sft_and_missing_data_is_named(tmp_path):
    with pytest.raises(RaypipeError, match="kind 'pairs' does not fit"):
        prepare_data(config(tmp_path, [{"path": "x", "kind": "pairs"}]), FakeTokenizer(), None, tmp_path)
    with pytest.raises(RaypipeError, match="nowhere/\\*.parquet: no data files found"):
        prepare_data(config(tmp_path, [{"path": str(tmp_path / "nowhere/*.parquet")}]), FakeTokenizer(), None, tmp_path)


def test_sample_file_errors_name_the_line(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"functions": [], "messages": [{"role": "user", "content": "hi"}]}\n{"messages": [{}]}\n')
    with pytest.raises(RaypipeError, match=r"s.jsonl:2: not a canonical sample"):
        list(read_sample_file(str(path)))
