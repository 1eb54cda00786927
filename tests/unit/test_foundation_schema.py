import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raypipe.data import IF_JSONL, SAMPLES_JSONL
from raypipe.schema import (
    SCHEMA_VERSION, Lineage, Message, Sample, ToolCall, arrow_schema, content_id, samples_to_table,
    table_to_samples,
)

pytestmark = pytest.mark.unit

MIXED_ARGS = {
    "values": [1, "a", {"b": 2.5, "c": [True, None]}, [[]], -0.0],
    "nested": {"deep": {"deeper": [{"x": 1}, {"y": "二"}]}, "empty": {}},
    "big": 2**53 + 1,
    "float": 1e-300,
    "flag": False,
    "nothing": None,
    "text": "台北市信義區 🚆 \"quoted\" \n newline",
}


def _sample() -> Sample:
    return Sample(
        functions=[{"name": "f", "description": "測試", "parameters": {"type": "object", "properties": {}}}],
        messages=[
            Message("system", "你是助理。"),
            Message("user", "請查詢台北的天氣，並換算匯率。"),
            Message("assistant", None, tool_calls=[ToolCall("f", MIXED_ARGS, id="call_1"), ToolCall("f", {})],
                    reasoning="先查天氣。"),
            Message("tool", json.dumps({"溫度": 25}, ensure_ascii=False), name="f", tool_call_id="call_1"),
            Message("tool", "", name="f"),
            Message("assistant", "台北目前 25 度。"),
        ],
        source="unit",
        lang="zh-TW",
        meta={"kind": ["a", 1, {"b": None}], "score": 0.5},
        lineage=[Lineage("convert"), Lineage("translate", parent_id="abc")],
    )


def test_parquet_round_trip_is_lossless_for_mixed_nested_arguments_and_chinese(tmp_path):
    sample = _sample()
    path = tmp_path / "s.parquet"
    pq.write_table(samples_to_table([sample]), path)
    table = pq.read_table(path)
    assert table.schema.equals(arrow_schema(), check_metadata=False)
    back = table_to_samples(table)[0]
    assert back == sample
    assert back.messages[2].tool_calls[0].arguments == MIXED_ARGS
    assert type(back.messages[2].tool_calls[0].arguments["big"]) is int
    assert back.to_dict() == sample.to_dict()
    assert back.id == sample.id == content_id(sample.functions, sample.messages)


def test_every_shipped_sample_survives_parquet_and_json(tmp_path):
    samples = [Sample.from_dict(json.loads(l)) for p in (SAMPLES_JSONL, IF_JSONL) for l in p.open(encoding="utf-8")]
    pq.write_table(samples_to_table(samples), tmp_path / "all.parquet")
    assert table_to_samples(pq.read_table(tmp_path / "all.parquet")) == samples
    assert [Sample.from_dict(json.loads(json.dumps(s.to_dict()))) for s in samples] == samples


def test_rows_from_pandas_numpy_batches_convert_back():
    sample = _sample()
    df = pa.Table.from_pylist([sample.to_row()], schema=arrow_schema()).to_pandas()
    assert Sample.from_row(df.iloc[0].to_dict()) == sample


def test_id_is_stable_and_depends_on_content_only():
    a, b = _sample(), _sample()
    b.source, b.meta, b.lang = "other", {"x": 1}, "en"
    assert Sample(functions=b.functions, messages=b.messages).id == a.id
    # key order of arguments does not matter (canonical JSON); values do
    c = _sample()
    c.messages[2].tool_calls[0].arguments = dict(reversed(list(MIXED_ARGS.items())))
    assert content_id(c.functions, c.messages) == a.id
    c.messages[2].tool_calls[0].arguments = {**MIXED_ARGS, "flag": True}
    assert content_id(c.functions, c.messages) != a.id


def test_derive_records_lineage_and_gets_a_fresh_id():
    parent = _sample()
    child = parent.derive("translate", lang="en", messages=parent.messages[:2])
    assert child.lineage[-1] == Lineage("translate", parent.id)
    assert child.id != parent.id and child.lang == "en" and child.source == parent.source


def test_schema_version_is_stored_in_rows_and_schema_metadata():
    assert _sample().to_row()["schema_version"] == SCHEMA_VERSION
    assert arrow_schema().metadata[b"raypipe.schema_version"] == str(SCHEMA_VERSION).encode()
