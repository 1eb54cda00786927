import json
from pathlib import Path

import pytest

from raypipe.data import IF_JSONL, SAMPLES_JSONL, SOURCES_DIR
from raypipe.errors import RaypipeError
from raypipe.io import convert_files, iter_samples, read_sample_file, write_samples
from raypipe.io.formats import formats
from raypipe.io.records import iter_records
from raypipe.schema import Sample
from raypipe.validate import validate_sample

pytestmark = pytest.mark.unit

BROKEN = Path(__file__).resolve().parents[1] / "data" / "broken"
CANONICAL = [Sample.from_dict(json.loads(l)) for l in SAMPLES_JSONL.open(encoding="utf-8")]
BY_USER_TEXT = {next(m.content for m in s.messages if m.role == "user"): s for s in CANONICAL}

# format -> (repo source file, rows); broken file -> {line: reason fragment}
SOURCES = {
    "openai": ("openai_chat.jsonl", 14),
    "chat": ("chat_messages.jsonl", 7),
    "xlam": ("xlam.json", 8),
    "glaive": ("glaive_v2.json", 8),
    "sharegpt": ("sharegpt_tools.json", 8),
    "openorca": ("openorca.jsonl", 8),
    "bfcl": ("bfcl_v3", 3),
    "canonical": ("../samples.jsonl", 40),
}
BROKEN_FILES = {
    "openai": ("openai_chat.jsonl", {2: "not valid JSON", 3: "messages[1].tool_calls[0].function.arguments: not valid JSON",
                                     4: "messages[1].tool_calls[0].name: undeclared function 'get_weather'",
                                     5: "messages[1].tool_calls[0].arguments.unit: 'kelvin' is not one of"}),
    "xlam": ("xlam.json", {8: "answers: not valid JSON", 14: "query: missing",
                           19: "messages[1].tool_calls[0].arguments.days: expected integer"}),
    "glaive": ("glaive_v2.json", {6: "<functioncall> arguments: not valid JSON", 10: "no USER/ASSISTANT turns",
                                  14: "messages[1]: tool result without a preceding tool call"}),
    "sharegpt": ("sharegpt_tools.json", {23: "conversations[0].from: unknown speaker 'robot'",
                                         32: "conversations[1].value: not valid JSON",
                                         45: "arguments.location: required argument missing"}),
    "bfcl": ("gorilla_openfunctions_v1_test_simple.json", {2: "question: missing", 3: "not valid JSON",
                                                          4: "question[0][0].content: expected a string"}),
    "openorca": ("openorca.jsonl", {2: "response: empty", 3: "expected a JSON object, got list", 4: "response: missing"}),
    "chat": ("chat_messages.jsonl", {2: "messages[0].role: unknown role 'wizard'", 3: "messages: missing",
                                     4: "conversation has no user turn"}),
    "canonical": ("canonical.jsonl", {2: "conversation is empty", 3: "schema_version: 99", 4: "not a canonical sample"}),
}


def _rejects(out: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return [r for f in sorted((out / "rejects").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def test_every_format_has_a_repo_source_and_a_broken_file():
    assert set(SOURCES) == set(formats()) == set(BROKEN_FILES)
    from raypipe.commands.convert import FORMAT_NAMES

    assert set(FORMAT_NAMES) == set(formats())


@pytest.mark.parametrize("fmt", sorted(SOURCES))
def test_repo_sources_convert_without_rejects(fmt, tmp_path):
    name, rows = SOURCES[fmt]
    report = convert_files([str(SOURCES_DIR / name)], fmt, str(tmp_path), log=lambda m: None)
    assert report.summary["counts"] == {"in": rows, "out": rows, "rejected": 0}
    samples = list(iter_samples(str(tmp_path)))
    assert len(samples) == rows
    assert all(validate_sample(s) == [] for s in samples)
    assert {s.source for s in samples} == ({"raypipe-samples"} if fmt == "canonical" else {fmt})


@pytest.mark.parametrize("fmt", sorted(BROKEN_FILES))
def test_broken_rows_become_rejects_with_file_line_and_reason(fmt, tmp_path):
    name, expected = BROKEN_FILES[fmt]
    path = str(BROKEN / name)
    report = convert_files([path], fmt, str(tmp_path), log=lambda m: None)
    c = report.summary["counts"]
    assert c["in"] == c["out"] + c["rejected"] and c["out"] == 1
    rejects = _rejects(tmp_path)
    assert {r["line"]: r["file"] for r in rejects} == {line: path for line in expected}
    for r in rejects:
        assert expected[r["line"]] in r["reason"], r
        assert r["stage"] == "convert" and r["raw"]
    assert report.summary["sources"][0]["rejected"] == len(expected)


def test_converted_function_calls_match_the_canonical_originals(tmp_path):
    """Formats that carry calls and results keep them exactly (xLAM: the first call turn)."""
    for fmt in ("openai", "sharegpt", "glaive", "xlam"):
        out = tmp_path / fmt
        convert_files([str(SOURCES_DIR / SOURCES[fmt][0])], fmt, str(out), log=lambda m: None)
        for s in iter_samples(str(out)):
            user = next(m.content for m in s.messages if m.role == "user")
            if user not in BY_USER_TEXT:
                continue  # instruction-following rows
            original = BY_USER_TEXT[user]
            got = [[(c.name, c.arguments) for c in m.tool_calls] for m in s.messages if m.tool_calls]
            want = [[(c.name, c.arguments) for c in m.tool_calls] for m in original.messages if m.tool_calls]
            assert got == (want[:1] if fmt == "xlam" else want), (fmt, user)
            if fmt in ("openai", "sharegpt"):
                assert [m.content for m in s.messages if m.role == "tool"] == \
                       [m.content for m in original.messages if m.role == "tool"]
            if fmt == "openai":  # everything survives: roles, contents, call ids, result names
                assert s.messages == original.messages


def test_xlam_parameter_types_become_json_schema(tmp_path):
    from raypipe.io.formats.xlam import python_type_schema, tool_to_spec

    assert python_type_schema("List[int]") == {"type": "array", "items": {"type": "integer"}}
    assert python_type_schema("Dict[str, Any]") == {"type": "object"}
    assert python_type_schema("Callable") == {}
    spec = tool_to_spec({"name": "f", "parameters": {
        "a": {"type": "str", "description": "d"}, "b": {"type": "int, optional", "default": 3},
        "c": {"type": "float", "default": 1.5}}}, "tools[0]")
    assert spec["parameters"]["required"] == ["a"]
    assert spec["parameters"]["properties"]["b"] == {"type": "integer", "default": 3}


def test_glaive_keeps_custom_system_text_and_reads_plain_json_calls():
    from raypipe.io.formats import SourceContext
    from raypipe.io.formats.glaive import convert

    record = {"system": "SYSTEM: Be brief. Use them if required -\n{\"name\": \"f\", \"parameters\": "
                        "{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}}}}",
              "chat": "USER: go\n\n\nASSISTANT: <functioncall> {\"name\": \"f\", \"arguments\": {\"a\": 1}} <|endoftext|>"}
    s = convert(record, SourceContext(path="x", source="glaive"))
    assert s.messages[0].content == "Be brief." and s.messages[2].tool_calls[0].arguments == {"a": 1}


def test_bfcl_v1_files_carry_category_language_and_ground_truth(bfcl_data, tmp_path):
    path = bfcl_data / "zhtw" / "gorilla_openfunctions_v1_test_simple.json"
    convert_files([str(path)], "bfcl", str(tmp_path), log=lambda m: None)
    samples = list(iter_samples(str(tmp_path)))
    assert len(samples) == 400
    first = samples[0]
    assert first.lang == "zh-TW" and first.meta["category"] == "simple" and first.meta["bfcl_id"] == "simple_0"
    assert first.meta["ground_truth"]["calculate_triangle_area"]["base"] == [10]
    assert first.messages[0].role == "user" and "三角形" in first.messages[0].content


def test_bfcl_v3_layout_keeps_turns_and_finds_possible_answers(tmp_path):
    convert_files([str(SOURCES_DIR / "bfcl_v3")], "bfcl", str(tmp_path), log=lambda m: None)
    by_id = {s.meta["bfcl_id"]: s for s in iter_samples(str(tmp_path))}
    assert set(by_id) == {"simple_0", "simple_1", "multi_turn_base_0"}
    assert by_id["multi_turn_base_0"].meta["turn_starts"] == [0, 1]
    assert [m.role for m in by_id["simple_1"].messages] == ["system", "user"]
    assert by_id["simple_0"].meta["ground_truth"][0]["get_current_weather"]["unit"] == ["celsius", ""]
    multi = by_id["multi_turn_base_0"].meta
    assert "ground_truth" not in multi and multi["category"] == "multi_turn_base"
    assert multi["involved_classes"] == ["UnitConverter"]
    # its functions come from multi_turn_func_doc/unit_converter.json (skipped as a record file)
    assert [f["name"] for f in by_id["multi_turn_base_0"].functions] == ["convert", "list_units"]
    assert by_id["simple_0"].meta["category"] == "simple"


def test_json_array_records_know_their_lines(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[\n  {"a": 1},\n\n  {"b":\n 2}, 3,\n  {"c": 3}\n]\n')
    recs = list(iter_records(str(path)))
    assert [(r.line, r.value, r.error) for r in recs] == [
        (2, {"a": 1}, None), (4, {"b": 2}, None), (5, None, "expected a JSON object, got int"), (6, {"c": 3}, None)]
    path.write_text('[{"a": 1},\n {"b": oops}, {"c": 1}]')
    recs = list(iter_records(str(path)))
    assert recs[0].value == {"a": 1} and recs[1].line == 2 and "rest of the file" in recs[1].error
    assert len(recs) == 2  # counted once: the rest cannot be split safely


def test_read_sample_file_raises_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(SAMPLES_JSONL.read_text(encoding="utf-8").splitlines()[0] + "\n{oops\n", encoding="utf-8")
    it = read_sample_file(str(bad))
    assert next(it).source == "raypipe-samples"
    with pytest.raises(RaypipeError, match=rf"{bad}:2: not valid JSON"):
        next(it)


def test_writers_shard_parquet_and_jsonl_and_count(tmp_path):
    samples = CANONICAL[:25]
    rejects = [{"file": "f", "line": 3, "id": None, "stage": "t", "reason": "r", "raw": "{}"}]
    summary = write_samples(samples, str(tmp_path / "p"), rejects=rejects, shard_rows=10, summary_extra={"stage": "t"})
    assert [s["rows"] for s in summary["shards"]] == [10, 10, 5]
    assert summary["counts"] == {"in": 26, "out": 25, "rejected": 1} and summary["stage"] == "t"
    assert json.loads((tmp_path / "p" / "summary.json").read_text()) == summary
    assert list(iter_samples(str(tmp_path / "p"))) == samples
    summary = write_samples(samples, str(tmp_path / "j"), output="jsonl", shard_rows=20)
    assert sorted(p.name.split("-", 1)[1] for p in (tmp_path / "j" / "data").iterdir()) == [
        "part-d00000.jsonl", "part-d00001.jsonl"]
    assert list(iter_samples(str(tmp_path / "j"))) == samples
    # a re-run replaces old shards instead of mixing them in
    write_samples(samples[:3], str(tmp_path / "p"), shard_rows=10)
    assert len(list(iter_samples(str(tmp_path / "p")))) == 3


def test_pyarrow_filesystem_uris_and_globs_work(tmp_path):
    out = f"file://{tmp_path}/uri_out"
    report = convert_files([f"file://{SOURCES_DIR}/open*.jsonl"], "openorca", out, log=lambda m: None)
    assert report.summary["counts"] == {"in": 8 + 14, "out": 8, "rejected": 14}  # openai_chat rows are not OpenOrca
    assert report.summary["sources"][1]["path"] == f"file://{SOURCES_DIR}/openorca.jsonl"
    assert len(report.summary["sources"][1]["sha256"]) == 64
    assert len(list(iter_samples(f"file://{tmp_path}/uri_out/data/*.parquet"))) == 8
    both = list(iter_samples([str(SAMPLES_JSONL), str(IF_JSONL)]))
    assert len(both) == 55
    # a folder holding datasets means their data shards, not summaries or rejects
    write_samples(CANONICAL[:2], str(tmp_path / "runs" / "a"), rejects=[
        {"file": "f", "line": 1, "id": None, "stage": "t", "reason": "r", "raw": "{}"}])
    write_samples(CANONICAL[2:5], str(tmp_path / "runs" / "b"), output="jsonl")
    (tmp_path / "runs" / ".hidden.jsonl").write_text("{oops\n")
    assert len(list(iter_samples(str(tmp_path / "runs")))) == 5
    with pytest.raises(RaypipeError, match="no such file or folder"):
        list(iter_samples(str(tmp_path / "missing.jsonl")))
    with pytest.raises(RaypipeError, match="matches no files"):
        list(iter_samples(str(tmp_path / "*.nothing")))


def test_a_finished_conversion_is_reused_until_inputs_or_settings_change(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text((SOURCES_DIR / "openorca.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    out = str(tmp_path / "out")
    first = convert_files([str(src)], "openorca", out, log=lambda m: None)
    assert not first.up_to_date
    again = convert_files([str(src)], "openorca", out, log=lambda m: None)
    assert again.up_to_date and again.summary == first.summary
    assert not convert_files([str(src)], "openorca", out, log=lambda m: None, force=True).up_to_date
    assert not convert_files([str(src)], "openorca", out, log=lambda m: None, shard_rows=3).up_to_date
    src.write_text(src.read_text(encoding="utf-8") + '{"id": "x", "question": "q", "response": "r"}\n')
    changed = convert_files([str(src)], "openorca", out, log=lambda m: None)
    assert not changed.up_to_date and changed.summary["counts"]["out"] == 9


def test_text_outputs_create_their_folders(tmp_path):
    from raypipe.io import fs

    fs.write_text(str(tmp_path / "a" / "b" / "stats.json"), "{}")
    fs.write_text(f"file://{tmp_path}/c/d/stats.json", "[]")
    assert (tmp_path / "a" / "b" / "stats.json").read_text() == "{}"
    assert (tmp_path / "c" / "d" / "stats.json").read_text() == "[]"


def test_convert_file_can_skip_validation_for_spec_readers():
    from raypipe.io import convert_file, get_format

    path = str(BROKEN / "openai_chat.jsonl")
    checked = [r["line"] for s, r in convert_file(path, get_format("openai")) if r]
    unchecked = [r["line"] for s, r in convert_file(path, get_format("openai"), validate=False) if r]
    assert checked == [2, 3, 4, 5] and unchecked == [2, 3]
