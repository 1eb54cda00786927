"""BFCL loader (V1 / zh-TW, V3, V4 layouts), result-file helpers, report structure and intervals."""

import json
from pathlib import Path

import pytest

from raypipe.errors import RaypipeError
from raypipe.eval.bfcl_categories import parse_result_file_name
from raypipe.eval.bfcl_data import (
    CATEGORIES,
    load_bfcl,
    reference_calls,
    result_file_name,
)
from raypipe.eval.scoring import (
    mean_interval,
    read_result_files,
    score_results,
    wilson_interval,
    write_result_files,
)
from raypipe.templates.pythonic import format_calls

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "bfcl"


# -- loader ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "zhtw"])
def test_v1_layout(lang):
    items = load_bfcl(FIXTURES / "v1", lang)
    assert [it.category for it in items] == [c for c in CATEGORIES for _ in range(2)]
    simple = items[0]
    assert simple.id == "simple_0" and simple.rules == "v1"
    assert simple.question[0]["role"] == "user" and isinstance(simple.question[0]["content"], str)
    assert [f["name"] for f in simple.functions] == ["convert_recipe_units"]
    assert simple.ground_truth == [{"convert_recipe_units": {
        "quantity": [250.0], "from_unit": ["grams", "g", "公克"], "to_unit": ["cups", "cup", "杯"], "round_to": ["", 2]}}]
    parallel = next(it for it in items if it.id == "parallel_function_0")
    assert [next(iter(c)) for c in parallel.ground_truth] == ["recipes.find_by_ingredient_1", "recipes.find_by_ingredient_2"]
    assert items[-1].category == "relevance" and items[-1].ground_truth is None


def test_v1_questions_differ_by_language_and_answers_are_shared():
    en = load_bfcl(FIXTURES / "v1", "en", ["simple"])
    zh = load_bfcl(FIXTURES / "v1", "zhtw", ["simple"])
    assert en[0].question != zh[0].question
    assert en[0].ground_truth == zh[0].ground_truth and en[0].functions == zh[0].functions


def test_v4_layout():
    items = load_bfcl(FIXTURES / "v4", "en")
    by_id = {it.id: it for it in items}
    assert {(it.category, it.kind) for it in items} >= {
        ("simple_python", "simple"), ("multiple", "multiple"), ("parallel", "parallel"),
        ("parallel_multiple", "parallel"), ("irrelevance", "irrelevance")}
    assert by_id["simple_python_0"].category == "simple_python" and by_id["simple_python_0"].version == "v4"
    assert by_id["irrelevance_0"].kind == "irrelevance" and by_id["irrelevance_0"].ground_truth is None
    assert by_id["parallel_0"].ground_truth == [
        {"recipes.find_by_ingredient": {"ingredient": ["tofu"], "max_minutes": [30]}},
        {"recipes.find_by_ingredient": {"ingredient": ["salmon"], "max_minutes": [45]}},
    ]
    assert all(it.rules == "upstream" for it in items)
    assert {it.rules for it in load_bfcl(FIXTURES / "v4", "en", rules="v1")} == {"v1"}
    assert by_id["simple_python_0"].question == [{"role": "user", "content": by_id["simple_python_0"].question[0]["content"]}]


def test_v3_layout_and_category_selection():
    items = load_bfcl(FIXTURES / "v3", "en", ["simple"])
    assert [it.id for it in items] == ["simple_0", "simple_1"]
    with pytest.raises(RaypipeError, match="unknown BFCL v3 categories"):
        load_bfcl(FIXTURES / "v3", "en", ["multiple_function"])


def test_reference_calls_score_perfectly_on_every_fixture_layout():
    for layout in ("v1", "v3", "v4"):
        items = load_bfcl(FIXTURES / layout, "en")
        results = {it.id: format_calls(reference_calls(it)) if it.ground_truth else "No." for it in items}
        results.update({it.id: format_calls([(it.functions[0]["name"], {})]) for it in items if it.kind == "relevance"})
        report = score_results(items, results, "pythonic")
        assert {c: e["accuracy"] for c, e in report["categories"].items()} == {
            c: 1.0 for c in report["categories"]}, layout


def write_lines(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_loader_errors_name_file_and_line(tmp_path):
    with pytest.raises(RaypipeError, match="does not exist"):
        load_bfcl(tmp_path / "nope", "en")
    with pytest.raises(RaypipeError, match="no BFCL question files"):
        load_bfcl(tmp_path, "en")
    q = write_lines(tmp_path / "en" / "gorilla_openfunctions_v1_test_simple.json",
                    ['{"id": "simple_0", "question": "q", "function": {"name": "f", "parameters": {"properties": {}}}}',
                     '{"id": "simple_1", "question": "q", '])
    with pytest.raises(RaypipeError, match=rf"{q}:2: invalid JSON"):
        load_bfcl(tmp_path, "en")
    write_lines(q, [{"id": "simple_0", "question": "q", "function": {"name": "f", "parameters": {"properties": {}}}},
                    {"id": "simple_1", "question": "q"}])
    with pytest.raises(RaypipeError, match=rf"{q}:2: missing field 'function'"):
        load_bfcl(tmp_path, "en")
    write_lines(q, [{"id": "simple_0", "question": "q", "function": {"name": "f", "parameters": {"properties": {}}}}])
    with pytest.raises(RaypipeError, match="possible answers file .* is missing"):
        load_bfcl(tmp_path, "en")
    write_lines(tmp_path / "possible_answer" / q.name, [{"id": "simple_9", "ground_truth": {"f": {}}}])
    with pytest.raises(RaypipeError, match="missing simple_0, extra simple_9"):
        load_bfcl(tmp_path, "en")
    write_lines(tmp_path / "possible_answer" / q.name, [{"id": "simple_0", "ground_truth": {"f": {"x": 1}}}])
    with pytest.raises(RaypipeError, match=r":1: ground_truth\[0\].f.x must be a list"):
        load_bfcl(tmp_path, "en")
    with pytest.raises(RaypipeError, match="unknown BFCL v1 categories"):
        load_bfcl(tmp_path, "en", ["exec_simple"])


# -- result files -------------------------------------------------------------------------------


def test_result_file_names():
    assert result_file_name("simple") == "gorilla_openfunctions_v1_test_simple_result.json"
    assert result_file_name("live_relevance", "v4") == "BFCL_v4_live_relevance_result.json"
    assert result_file_name("simple", "v3") == "BFCL_v3_simple_result.json"
    with pytest.raises(RaypipeError):
        result_file_name("simple", "v4")  # V4 calls it simple_python
    parse = parse_result_file_name
    assert parse("gorilla_openfunctions_v1_test_parallel_function_result.json")[:3] == ("v1", "parallel_function", True)
    assert parse("BFCL_v4_simple_python_result.json")[:3] == ("v4", "simple_python", True)
    assert parse("BFCL_v3_simple_result.json")[:3] == ("v3", "simple", True)  # V3 and V4 kept apart
    assert parse("BFCL_v4_live_parallel_multiple_result.json")[:3] == ("v4", "live_parallel_multiple", True)
    assert parse("BFCL_v3_irrelevance_result.json")[:3] == ("v3", "irrelevance", True)
    assert parse("gorilla_openfunctions_v1_test_executable_simple_result.json")[:3] == ("v1", "executable_simple", False)
    assert parse("BFCL_v4_multi_turn_base_result.json").reason.startswith("multi-turn")
    assert parse("BFCL_v4_simple_java_result.json").reason.startswith("Java")
    assert parse("BFCL_v4_brand_new_result.json").reason == "not a v4 category raypipe knows"
    assert parse("notes.txt") is None and parse("BFCL_v9_simple_result.json") is None


def test_result_files_round_trip(tmp_path):
    results = {"simple": {"simple_0": "[f(a=1)]"}, "relevance": [("relevance_0", [{"f": "{}"}])]}
    paths = write_result_files(results, tmp_path, extra_fields={"simple_0": {"latency": 0.5}})
    assert sorted(p.name for p in paths) == sorted(result_file_name(c) for c in results)
    first = json.loads((tmp_path / result_file_name("simple")).read_text().splitlines()[0])
    assert first == {"id": "simple_0", "result": "[f(a=1)]", "latency": 0.5}
    (tmp_path / "gorilla_openfunctions_v1_test_executable_simple_result.json").write_text("garbage")
    assert read_result_files(tmp_path) == {"simple": {"simple_0": "[f(a=1)]"},
                                           "relevance": {"relevance_0": [{"f": "{}"}]}}


def test_result_file_errors(tmp_path):
    with pytest.raises(RaypipeError, match="no BFCL result files raypipe scores"):
        read_result_files(tmp_path)
    path = write_lines(tmp_path / result_file_name("simple"), [{"id": "simple_0", "result": "x"}, {"id": "simple_0", "result": "y"}])
    with pytest.raises(RaypipeError, match=rf"{path}:2: duplicate id 'simple_0'"):
        read_result_files(tmp_path)
    write_lines(path, [{"id": "simple_0"}])
    with pytest.raises(RaypipeError, match=rf"{path}:1: a result line needs 'id' and 'result'"):
        read_result_files(tmp_path)
    write_lines(path, ["{oops"])
    with pytest.raises(RaypipeError, match=rf"{path}:1: invalid JSON"):
        read_result_files(tmp_path)


# -- report ---------------------------------------------------------------------------------------


def test_wilson_interval_values():
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) is None


def test_summary_interval_contains_the_mean_even_at_100_percent():
    low, high = mean_interval([(400, 400), (200, 200), (200, 200), (200, 200)])
    assert low < 1.0 and high == 1.0
    low, high = mean_interval([(300, 400), (100, 200), (150, 200), (120, 200)])
    mean = (0.75 + 0.5 + 0.75 + 0.6) / 4
    assert low < mean < high


def test_report_structure_errors_and_relevance_variants():
    items = load_bfcl(FIXTURES / "v1", "en")
    results = {it.id: format_calls(reference_calls(it)) for it in items if it.ground_truth}
    results["simple_1"] = "[astronomy.orbital_period(semi_major_axis_au=9.5)]"  # wrong value
    results["multiple_function_0"] = "I don't know"  # not decodable
    results["relevance_0"] = "Sorry, no tool knows who wrote novels."  # answered in words
    results["relevance_1"] = "[shipping.print_label(tracking_number='JUPITER')]"  # called a function anyway
    report = score_results(items, results, "pythonic")
    simple = report["categories"]["simple"]
    assert (simple["correct"], simple["total"], simple["accuracy"]) == (1, 2, 0.5)
    assert simple["errors"][0]["id"] == "simple_1" and simple["errors"][0]["error_type"] == "value_error:others"
    assert report["categories"]["multiple_function"]["errors"][0]["error_type"] == "ast_decoder:decoder_failed"
    rel = report["categories"]["relevance"]
    assert (rel["correct"], rel["strict_correct"]) == (1, 1)
    assert rel["errors"][0]["error_type"] == "relevance_error:decoder_success"
    assert report["ast_summary"] == pytest.approx((0.5 + 0.5 + 1 + 1) / 4)
    assert report["relevance_detection"] == 0.5 and report["relevance_detection_strict"] == 0.5
    assert report["error_counts"]["simple"] == {"value_error:others": 1}
    json.dumps(report)  # serialisable as REPORT.json


def test_lenient_relevance_rewards_garbage_and_strict_does_not():
    items = load_bfcl(FIXTURES / "v1", "en", ["relevance"])
    report = score_results(items, {"relevance_0": "[[[garbage", "relevance_1": "<|answer|>"}, "pythonic")
    assert report["relevance_detection"] == 1.0 and report["relevance_detection_strict"] == 0.0
    report = score_results(items, {"relevance_0": "<|answer|>不適用。", "relevance_1": "<|answer|>"}, "decision-token")
    assert report["relevance_detection"] == 1.0 and report["relevance_detection_strict"] == 0.5


def test_ast_summary_needs_all_four_ast_categories():
    items = load_bfcl(FIXTURES / "v1", "en", ["simple", "relevance"])
    results = {it.id: format_calls(reference_calls(it)) if it.ground_truth else "no" for it in items}
    report = score_results(items, results, "pythonic")
    assert report["ast_summary"] is None
    assert report["ast_summary_missing"] == ["multiple_function", "parallel_function", "parallel_multiple_function"]
    assert report["relevance_detection"] == 1.0


def test_missing_and_extra_ids_are_named():
    items = load_bfcl(FIXTURES / "v1", "en", ["simple"])
    with pytest.raises(RaypipeError, match=r"missing 1 ids: simple_1; 1 ids not in the benchmark: simple_7"):
        score_results(items, {"simple_0": "[f()]", "simple_7": "[f()]"}, "pythonic")
    with pytest.raises(RaypipeError, match="unknown decoder"):
        score_results(items, {}, "xml")


def test_underscore_to_dot_in_a_report():
    items = load_bfcl(FIXTURES / "v1", "en", ["simple"])
    results = {it.id: [{name.replace(".", "_"): json.dumps(args)} for name, args in reference_calls(it)] for it in items}
    assert score_results(items, results, "openai", underscore_to_dot=True)["categories"]["simple"]["accuracy"] == 1.0
    # simple_1 calls astronomy.orbital_period: without the option its underscored name does not match
    assert score_results(items, results, "openai")["categories"]["simple"]["accuracy"] == 0.5
