"""Model output is hostile input: values the checker cannot compare are wrong answers with an
error type, never a crash, and `raypipe score bfcl` always writes its report (issue 14, item 4)."""

import json
from pathlib import Path

import pytest

from raypipe.cli import main
from raypipe.eval.bfcl_data import BfclItem
from raypipe.eval.scoring import score_item, score_results

pytestmark = pytest.mark.integration

BIG = "10**4000 * 10**4000"  # 8,001 digits: too large for a float, too long for repr
LONG_LITERAL = "9" * 4400  # more digits than Python converts from text


def item(param_type, category="simple_python", required=("x",)):
    spec = {"name": "f", "parameters": {"type": "dict", "properties": {"x": {"type": param_type, "items": {"type": "integer"}}},
                                        "required": list(required)}}
    kind_truth = None if "irrelevance" in category else [{"f": {"x": {"array": [[1]], "string": ["b"]}.get(param_type, [1])}}]
    return BfclItem(id=f"{category}_0", category=category, question=[], functions=[spec], ground_truth=kind_truth,
                    rules="upstream", version="v4")


@pytest.mark.parametrize("raw, param_type, decoder, error_type", [
    (f"[f(x={BIG})]", "float", "pythonic", "value_error:uncomparable"),  # OverflowError converting to float
    (f"[f(x={BIG})]", "integer", "pythonic", "value_error:others"),  # compared, and shown without repr
    (f"[f(x=[{BIG}])]", "array", "pythonic", "value_error:list/tuple"),
    ("[f(x=2**(10**9))]", "integer", "pythonic", "value_error:uncomparable"),  # never computed
    ("[f(x='%099999999d' % 1)]", "string", "pythonic", "value_error:uncomparable"),
    (f"[f(x={LONG_LITERAL})]", "integer", "pythonic", "ast_decoder:decoder_failed"),  # a ValueError in Python
    ([{"f": '{"x": ' + LONG_LITERAL + "}"}], "integer", "openai", "ast_decoder:decoder_failed"),
    ([{"f": '{"x": ' + "[" * 5000 + "]" * 5000 + "}"}], "array", "openai", "ast_decoder:decoder_failed"),
    ("[f(x=" + "[" * 150 + "]" * 150 + ")]", "array", "pythonic", "type_error:nested"),  # deep, still parsed
    ("[f(x=" + "[" * 300 + "]" * 300 + ")]", "array", "pythonic", "ast_decoder:decoder_failed"),  # the parser's limit
    ("[f(x='" + "a" * 5_000_000 + "')]", "string", "pythonic", "value_error:string"),  # 5 MB string
    ("[f(x=" + "-" * 100_000 + "1)]", "integer", "pythonic", "ast_decoder:decoder_failed"),
    ("[f(x=" + "+".join(["1"] * 5000) + ")]", "integer", "pythonic", "ast_decoder:decoder_failed"),
])
def test_values_the_checker_cannot_compare_are_wrong_not_a_crash(raw, param_type, decoder, error_type):
    outcome = score_item(item(param_type), raw, decoder)
    assert (outcome["valid"], outcome["error_type"]) == (False, error_type)
    report = score_results([item(param_type)], {"simple_python_0": raw}, decoder)
    text = json.dumps(report)  # the report is always JSON, whatever the value
    assert len(text) < 200_000


def test_huge_values_still_count_as_calls_in_relevance():
    # the reference decodes these (its eval computes the number), so the model did call f
    assert not score_item(item("integer", "irrelevance"), f"[f(x={BIG})]", "pythonic")["valid"]
    assert not score_item(item("integer", "irrelevance"), "[f(x=2**(10**9))]", "pythonic")["valid"]


def test_messages_show_huge_values_without_repr():
    outcome = score_item(item("integer"), f"[f(x={BIG})]", "pythonic")
    assert "<int of about 8001 digits>" in outcome["errors"][0]


def write(path: Path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")


def test_score_bfcl_writes_its_report_whatever_the_outputs(tmp_path):
    data = tmp_path / "data"
    (data / "possible_answer").mkdir(parents=True)
    spec = {"name": "f", "description": "d", "parameters": {"type": "dict", "properties": {
        "x": {"type": "float", "description": "x"}}, "required": ["x"]}}
    ids = [f"simple_python_{i}" for i in range(6)]
    write(data / "BFCL_v4_simple_python.json",
          [{"id": i, "question": [[{"role": "user", "content": "q"}]], "function": [spec]} for i in ids])
    write(data / "possible_answer" / "BFCL_v4_simple_python.json", [{"id": i, "ground_truth": [{"f": {"x": [1.0]}}]} for i in ids])
    results = tmp_path / "results"
    results.mkdir()
    deep = "[" * 100_000 + "]" * 100_000
    write(results / "BFCL_v4_simple_python_result.json", [
        {"id": ids[0], "result": f"[f(x={BIG})]"},
        {"id": ids[1], "result": f"[f(x={LONG_LITERAL})]"},
        {"id": ids[2], "result": "[f(x=" + "(" * 1000 + "1" + ")" * 1000 + ")]"},
        '{"id": "' + ids[3] + '", "result": ' + deep + "}",  # valid JSON that Python's reader cannot nest
        {"id": ids[4], "result": "[f(x=1.0)]"},
        {"id": ids[5], "result": "[f(x='" + "é" * 1_000_000 + "')]"},
    ])
    out = tmp_path / "REPORT.json"
    assert main(["score", "bfcl", "--data", str(data), "--results", str(results), "--decoder", "pythonic",
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    entry = report["categories"]["simple_python"]
    assert (entry["correct"], entry["total"]) == (1, 6)
    types = {e["id"]: e["error_type"] for e in entry["errors"]}
    assert types == {ids[0]: "value_error:uncomparable", ids[1]: "ast_decoder:decoder_failed",
                     ids[2]: "ast_decoder:decoder_failed", ids[3]: "ast_decoder:decoder_failed",
                     ids[5]: "type_error:simple"}
    shown = {e["id"]: e["raw"] for e in entry["errors"]}
    assert shown[ids[3]].startswith("<unreadable result")
    assert len(shown[ids[5]]) < 25_000  # a huge raw output is cut in the report
