"""Hugging Face layouts read correctly: `save_to_disk` folders, JSON-string columns, nested Parquet
whose Arrow-merged schema added nulls (dropped) next to nulls the data really holds (kept); the
validator refuses the nulls a spec does not allow. Each layout is written here the way `datasets`
writes it (IPC stream `.arrow` + state.json + dataset_info.json), and by `datasets` itself when it
is installed."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raypipe.io import convert_files, iter_samples
from raypipe.schema import Message, Sample, ToolCall
from raypipe.validate import validate_sample

pytestmark = pytest.mark.unit


def spec(name, properties, required):
    return {"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": properties, "required": required}}}


ROWS = [
    {"messages": [{"role": "user", "content": "Weather in Taipei?"},
                  {"role": "assistant", "content": None, "tool_calls": [
                      {"id": "c1", "type": "function", "function": {"name": "w", "arguments": {"city": "Taipei"}}}]}],
     "tools": [spec("w", {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}}, ["city"])]},
    {"messages": [{"role": "user", "content": "Time in UTC, no offset?"},
                  {"role": "assistant", "content": None, "tool_calls": [
                      {"id": "c2", "type": "function", "function": {"name": "t", "arguments": {"tz": "UTC", "offset": None}}}]}],
     "tools": [spec("t", {"tz": {"type": "string"}, "offset": {"type": ["integer", "null"]}}, ["tz"])]},
]


def write_save_to_disk(folder: Path, rows: list[dict]) -> None:
    """The layout `datasets.Dataset.save_to_disk` writes: IPC stream shards + state + info."""
    folder.mkdir(parents=True)
    table = pa.Table.from_pylist(rows)  # Arrow merges the rows' schemas, as datasets does
    with pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    (folder / "state.json").write_text(json.dumps({
        "_data_files": [{"filename": "data-00000-of-00001.arrow"}], "_fingerprint": "5a1e", "_format_columns": None,
        "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False, "_split": None}, indent=2))
    (folder / "dataset_info.json").write_text(json.dumps({"citation": "", "description": "", "features": {}}))


def converted(tmp_path, inputs, fmt="openai"):
    report = convert_files([str(p) for p in inputs], fmt, str(tmp_path / "out"), log=lambda m: None)
    return report, sorted(iter_samples(str(tmp_path / "out")), key=lambda s: s.messages[0].content)


def check_clean(samples):
    weather, time_ = samples[1], samples[0]
    assert weather.functions == [ROWS[0]["tools"][0]["function"]]  # no null "tz"/"offset" properties
    assert weather.messages[1].tool_calls[0].arguments == {"city": "Taipei"}  # no null "tz"/"offset" arguments
    # the null that was really in the data, for a nullable parameter, is kept
    assert time_.messages[1].tool_calls[0].arguments == {"tz": "UTC", "offset": None}
    assert time_.functions == [ROWS[1]["tools"][0]["function"]]


def test_save_to_disk_folder_reads_its_arrow_data_not_its_json_metadata(tmp_path):
    write_save_to_disk(tmp_path / "ds", ROWS)
    (tmp_path / "ds" / "cache-0a1b.arrow").write_bytes(b"not listed in state.json")
    report, samples = converted(tmp_path, [tmp_path / "ds"])
    assert report.summary["counts"] == {**report.summary["counts"], "in": 2, "out": 2, "rejected": 0}
    assert [Path(s["path"]).name for s in report.summary["sources"]] == ["data-00000-of-00001.arrow"]
    check_clean(samples)
    assert report.summary["repairs"]["arrow_nulls_dropped"] > 0


def test_dataset_dict_folder_reads_every_split(tmp_path):
    root = tmp_path / "dd"
    write_save_to_disk(root / "train", ROWS)
    write_save_to_disk(root / "test", ROWS[:1])
    (root / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    report, samples = converted(tmp_path, [root])
    assert report.summary["counts"]["in"] == 3 and report.rejected == 0


def test_nested_parquet_with_merged_schema_drops_added_nulls_and_keeps_real_ones(tmp_path):
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "nested.parquet")
    row = pq.read_table(tmp_path / "nested.parquet").to_pylist()[0]
    assert row["tools"][0]["function"]["parameters"]["properties"]["tz"] is None  # what Arrow did
    report, samples = converted(tmp_path, [tmp_path / "nested.parquet"])
    assert report.rejected == 0
    check_clean(samples)
    for s in samples:
        assert validate_sample(s) == []


def test_json_string_messages_and_tools_columns(tmp_path):
    rows = [{"messages": json.dumps(r["messages"]), "tools": json.dumps(r["tools"])} for r in ROWS]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "strings.parquet")
    report, samples = converted(tmp_path, [tmp_path / "strings.parquet"])
    assert report.rejected == 0 and "repairs" not in report.summary["sources"][0]
    check_clean(samples)
    conversations = [{"conversations": json.dumps([{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]),
                      "tools": "[]"}]
    pq.write_table(pa.Table.from_pylist(conversations), tmp_path / "sharegpt.parquet")
    report = convert_files([str(tmp_path / "sharegpt.parquet")], "sharegpt", str(tmp_path / "o2"), log=lambda m: None)
    assert report.summary["counts"]["out"] == 1


def test_layouts_written_by_the_datasets_library(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list(ROWS)
    ds.save_to_disk(str(tmp_path / "saved"))
    ds.to_parquet(str(tmp_path / "nested.parquet"))
    for name, path in (("saved", tmp_path / "saved"), ("parquet", tmp_path / "nested.parquet")):
        report, samples = converted(tmp_path / f"out-{name}", [path])
        assert report.rejected == 0, report.rejects_preview
        check_clean(samples)


# -- the validator --------------------------------------------------------------------------------


def test_validator_rejects_null_property_schemas_and_disallowed_null_arguments():
    functions = [{"name": "w", "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "tz": None, "unit": {"type": "string", "enum": ["c", "f"]},
        "offset": {"type": ["integer", "null"]}, "note": {"type": "string", "nullable": True}, "any": {}}}}]
    sample = Sample(functions=functions, messages=[Message("user", "x"), Message("assistant", None, tool_calls=[
        ToolCall("w", {"city": None, "tz": "UTC", "unit": None, "offset": None, "note": None, "any": None})])])
    problems = {p.path: p.message for p in validate_sample(sample)}
    assert problems["functions[0].parameters.properties.tz"] == "property schema must be an object, got null"
    assert "null is not allowed" in problems["messages[1].tool_calls[0].arguments.city"]
    assert "null is not allowed" in problems["messages[1].tool_calls[0].arguments.unit"]
    assert "schema for this argument is null" in problems["messages[1].tool_calls[0].arguments.tz"]
    assert not any(k.endswith((".offset", ".note", ".any")) for k in problems)


def test_validate_reports_zero_rows_for_an_output_with_no_samples(tmp_path):
    source = tmp_path / "bad.jsonl"
    source.write_text('{"messages": "not json"}\n')
    convert_files([str(source)], "openai", str(tmp_path / "out"), log=lambda m: None)
    assert list(iter_samples(str(tmp_path / "out"))) == []
    run = subprocess.run([sys.executable, "-m", "raypipe.cli", "validate", str(tmp_path / "out")],
                         capture_output=True, text=True)
    assert run.returncode == 0 and "0 rows checked" in run.stderr, run.stderr
