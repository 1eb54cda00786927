"""Hostile data files (issue 14 items 3, 6, 7): deep nesting, encoding damage, BOMs, forged ids,
values of the wrong type. Each bad row is a reject with its reason; the good rows survive."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raypipe import safejson
from raypipe.cli import main
from raypipe.data import SAMPLES_JSONL, SOURCES_DIR
from raypipe.io import fs
from raypipe.io.records import iter_records
from raypipe.schema import Sample, arrow_schema

pytestmark = pytest.mark.unit

GOOD = [json.loads(line) for line in SAMPLES_JSONL.read_text(encoding="utf-8").splitlines()[:3]]
DEEP = "[" * 3000 + "]" * 3000


def _line(record) -> str:
    return json.dumps(record, ensure_ascii=False)


def _rejects(out: Path) -> list[dict]:
    rows = []
    for path in sorted((out / "rejects").glob("*.parquet")):
        rows += pq.read_table(path).to_pylist()
    return rows


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())["counts"]


def _convert(capsys, fmt: str, path: Path, out: Path) -> tuple[dict, list[dict]]:
    assert main(["convert", "--from", fmt, str(path), "--out", str(out)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    return _summary(out), _rejects(out)


# -- nesting (item 3) --------------------------------------------------------------------------


def test_safejson_measures_depth_without_recursion_and_skips_strings():
    assert safejson.nesting_depth(DEEP) == 3000
    assert safejson.nesting_depth('{"a": "[[[[\\"[[[", "b": [1, {"c": []}]}') == 4
    assert safejson.end_of_value('[1, "]", [2]] tail', 0) == len('[1, "]", [2]]')
    assert safejson.end_of_value("[[", 0) is None
    with pytest.raises(ValueError, match="nesting deeper than 100"):
        safejson.loads('{"a": ' + DEEP + "}")
    assert safejson.loads("[" * 100 + "]" * 100) is not None  # the limit itself is fine


@pytest.mark.parametrize("text, reason", [
    ('{"a": NaN}', "NaN is not a JSON number"),
    ('{"a": -Infinity}', "-Infinity is not a JSON number"),
    ('{"a": 1e999}', "number out of range"),
    ('{"a": ' + "9" * 5000 + "}", "number out of range"),
    ('{"a": "\\ud800"}', "lone surrogate"),
])
def test_safejson_refuses_what_cannot_be_written_back(text, reason):
    with pytest.raises(ValueError, match=reason):
        safejson.loads(text)
    assert safejson.loads('{"a": "ok \\ud83d\\ude00", "b": 1e308}') == {"a": "ok \U0001F600", "b": 1e308}


def test_deep_rows_are_rejects_and_the_good_rows_survive_in_convert_and_validate(tmp_path, capsys):
    src = tmp_path / "deep.jsonl"
    src.write_text(f"{_line(GOOD[0])}\n" + '{"id": "x", "functions": [], "messages": ' + DEEP + "}\n"
                   + f"{_line(GOOD[1])}\n")
    counts, rejects = _convert(capsys, "canonical", src, tmp_path / "out")
    assert counts == {"in": 3, "out": 2, "rejected": 1}
    assert [(r["line"], r["reason"]) for r in rejects] == [(2, "nesting deeper than 100")]
    assert main(["validate", str(src)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [f"{src}:2: nesting deeper than 100"]
    assert "3 rows checked, 2 valid, 1 with 1 problem(s)" in captured.err


def test_a_deep_element_of_a_json_array_is_stepped_over(tmp_path, capsys):
    records = json.loads((SOURCES_DIR / "xlam.json").read_text())[:3]
    text = json.dumps(records, indent=1)
    head, rest = text.split("\n", 1)
    src = tmp_path / "xlam.json"
    src.write_text(head + "\n" + '{"query": ' + DEEP + "},\n" + rest)
    counts, rejects = _convert(capsys, "xlam", src, tmp_path / "out")
    assert counts == {"in": 4, "out": 3, "rejected": 1}
    assert [(r["line"], r["reason"]) for r in rejects] == [(2, "nesting deeper than 100")]


def test_deep_values_inside_json_strings_and_parquet_rows_are_rejects(tmp_path, capsys):
    xlam = json.loads((SOURCES_DIR / "xlam.json").read_text())[:2]
    xlam[0]["answers"] = DEEP  # xLAM keeps answers as a JSON string
    (tmp_path / "x.json").write_text(json.dumps(xlam))
    counts, rejects = _convert(capsys, "xlam", tmp_path / "x.json", tmp_path / "x")
    assert counts["rejected"] == 1 and rejects[0]["reason"] == "answers: nesting deeper than 100"

    rows = [Sample.from_dict(r).to_row() for r in GOOD[:2]]
    rows[1]["meta"] = '{"a": ' + DEEP + "}"
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema()), tmp_path / "s.parquet")
    counts, rejects = _convert(capsys, "canonical", tmp_path / "s.parquet", tmp_path / "p")
    assert counts == {"in": 2, "out": 1, "rejected": 1}
    assert "nesting deeper than 100" in rejects[0]["reason"]


def test_readers_name_the_deep_row_in_one_line(tmp_path, capsys):
    src = tmp_path / "deep.jsonl"
    src.write_text(f"{_line(GOOD[0])}\n" + '{"messages": ' + DEEP + "}\n")
    assert main(["stats", str(src)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"raypipe: error: {src}:2: nesting deeper than 100"]


# -- encoding (item 7) -------------------------------------------------------------------------


def test_a_bad_byte_rejects_its_line_only_naming_line_and_column(tmp_path, capsys):
    src = tmp_path / "bad.jsonl"
    src.write_bytes(f"{_line(GOOD[0])}\n".encode() + b'{"a": "caf\xe9"}\n' + f"{_line(GOOD[1])}\n".encode())
    counts, rejects = _convert(capsys, "canonical", src, tmp_path / "out")
    assert counts == {"in": 3, "out": 2, "rejected": 1}
    assert [(r["line"], r["reason"], r["raw"]) for r in rejects] == [
        (2, "not UTF-8 text (byte 0xe9 at column 11)", '{"a": "caf\\xe9"}')]


def test_a_bad_byte_in_a_json_array_rejects_its_element_only(tmp_path, capsys):
    records = json.loads((SOURCES_DIR / "xlam.json").read_text())[:3]
    data = json.dumps(records, indent=1, ensure_ascii=False).encode()
    at = data.index(records[1]["query"][:10].encode())
    src = tmp_path / "x.json"
    src.write_bytes(data[:at] + b"\xff" + data[at:])
    counts, rejects = _convert(capsys, "xlam", src, tmp_path / "out")
    assert counts == {"in": 3, "out": 2, "rejected": 1}
    assert rejects[0]["reason"] == "not UTF-8 text (byte 0xff)" and "\\xff" in rejects[0]["raw"]


@pytest.mark.parametrize("fmt, name", [("canonical", None), ("openai", "openai_chat.jsonl"),
                                        ("xlam", "xlam.json")])
def test_a_bom_is_not_a_reject(tmp_path, capsys, fmt, name):
    source = SAMPLES_JSONL if name is None else SOURCES_DIR / name
    src = tmp_path / source.name
    src.write_bytes(b"\xef\xbb\xbf" + source.read_bytes())
    counts, _ = _convert(capsys, fmt, src, tmp_path / "out")
    assert counts["rejected"] == 0 and counts["in"] > 0
    assert main(["validate", "--from", fmt, str(src)]) == 0
    capsys.readouterr()


def test_stats_and_text_readers_accept_a_bom(tmp_path, capsys):
    src = tmp_path / "s.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + SAMPLES_JSONL.read_bytes())
    assert main(["stats", str(src)]) == 0
    assert "samples: 40" in capsys.readouterr().out
    assert fs.read_text(str(src)) == SAMPLES_JSONL.read_text(encoding="utf-8")
    assert [n for n, _ in fs.iter_lines(str(src))][:2] == [1, 2]


def test_a_line_of_control_characters_is_a_reject_not_a_silent_skip(tmp_path, capsys):
    src = tmp_path / "s.jsonl"
    src.write_text(f"{_line(GOOD[0])}\n\x0c\x1c\n \t\r\n")
    counts, rejects = _convert(capsys, "canonical", src, tmp_path / "out")
    assert counts == {"in": 2, "out": 1, "rejected": 1} and rejects[0]["line"] == 2


def test_text_after_a_json_array_is_a_reject(tmp_path):
    src = tmp_path / "a.json"
    src.write_text('[{"a": 1}]\n{"b": 2}\n')
    recs = list(iter_records(str(src)))
    assert [(r.line, r.error) for r in recs] == [
        (1, None), (2, "not valid JSON: text after the closing ']' of the array")]


# -- ids and shapes (item 6) -------------------------------------------------------------------


def test_a_sample_carrying_another_samples_id_is_rejected_in_convert_and_validate(tmp_path, capsys):
    forged = dict(GOOD[1], id=GOOD[0]["id"])
    edited = json.loads(json.dumps(GOOD[2]))
    edited["messages"][0]["content"] += " (edited)"
    named = dict(GOOD[2], id="my-own-name")  # not of the content-hash form: a name, kept
    src = tmp_path / "s.jsonl"
    src.write_text("".join(_line(r) + "\n" for r in (GOOD[0], forged, edited, named)))
    counts, rejects = _convert(capsys, "canonical", src, tmp_path / "out")
    assert counts == {"in": 4, "out": 2, "rejected": 2}
    assert [r["line"] for r in rejects] == [2, 3]
    assert rejects[0]["reason"].startswith(f"id: {GOOD[0]['id']} is not the id of this content (")
    assert "carries another sample's id" in rejects[0]["reason"]
    assert main(["validate", str(src)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line.split(": ", 1)[0] for line in out] == [f"{src}:2", f"{src}:3"]


def test_the_validate_step_checks_ids_too():
    from raypipe.io.validation import problems_of_batch

    rows = [Sample.from_dict(GOOD[0]).to_row(), Sample.from_dict(dict(GOOD[1], id=GOOD[0]["id"])).to_row()]
    out = problems_of_batch(pa.Table.from_pylist(rows, schema=arrow_schema())).to_pylist()
    assert out[0]["problems"] == [] and "is not the id of this content" in out[1]["problems"][0]


@pytest.mark.parametrize("change, reason", [
    (lambda r: r.update(id=12), "id: expected str, got int"),
    # (a list of OpenAI text parts is a wire form that is read; anything else in a list is not)
    (lambda r: r["messages"][0].update(content=["a"]), "content: only text parts"),
    (lambda r: r.update(functions="get_weather"), "functions: expected list, got str"),
    (lambda r: r["messages"][2]["tool_calls"][0].update(arguments=[["a", 1]]),
     "arguments of 'get_current_weather' must be an object, got list"),
    (lambda r: r.update(meta=[1]), "meta: expected dict, got list"),
])
def test_values_of_the_wrong_type_are_rejects_never_coerced(tmp_path, capsys, change, reason):
    record = json.loads(json.dumps(GOOD[0]))
    change(record)
    src = tmp_path / "s.jsonl"
    src.write_text(_line(record) + "\n" + _line(GOOD[1]) + "\n")
    counts, rejects = _convert(capsys, "canonical", src, tmp_path / "out")
    assert counts == {"in": 2, "out": 1, "rejected": 1}
    assert reason in rejects[0]["reason"], rejects[0]["reason"]


def test_a_broken_parquet_file_keeps_its_rows_read_so_far(tmp_path, capsys):
    rows = [Sample.from_dict(r).to_row() for r in GOOD]
    path = tmp_path / "s.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema()), path)
    path.write_bytes(path.read_bytes()[:-40])  # the footer is gone
    counts, rejects = _convert(capsys, "canonical", path, tmp_path / "out")
    assert counts == {"in": 1, "out": 0, "rejected": 1}
    assert rejects[0]["reason"].startswith("cannot read Parquet after row 0: ")
