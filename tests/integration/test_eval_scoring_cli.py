"""`raypipe score bfcl` end to end: the console script on result files, and its id errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from raypipe.cli import main
from raypipe.eval.bfcl_data import load_bfcl, reference_calls, result_file_name
from raypipe.eval.scoring import write_result_files
from raypipe.templates.pythonic import format_calls

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "bfcl"


def perfect_results(data_dir, lang, version=None):
    by_category = {}
    for it in load_bfcl(data_dir, lang, version=version):
        if it.kind == "relevance":  # right when a call is made
            raw = format_calls([(it.functions[0]["name"], {})])
        else:
            raw = format_calls(reference_calls(it)) if it.ground_truth else "沒有適用的工具。"
        by_category.setdefault(it.category, {})[it.id] = raw
    return by_category


def run_cli(*args):
    script = Path(sys.executable).parent / "raypipe"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "raypipe.cli"]
    return subprocess.run(command + ["score", "bfcl", *map(str, args)], capture_output=True, text=True, timeout=120)


def test_score_bfcl_command_end_to_end(tmp_path):
    results = tmp_path / "results"
    by_category = perfect_results(FIXTURES / "v1", "zhtw")
    by_category["simple"]["simple_1"] = "[astronomy.orbital_period(semi_major_axis_au=4.0)]"
    write_result_files(by_category, results)
    out = tmp_path / "reports" / "REPORT.json"
    proc = run_cli("--data", FIXTURES / "v1", "--lang", "zhtw", "--results", results,
                   "--decoder", "pythonic", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "scored 10 items in" in proc.stdout and "AST Summary" in proc.stdout
    report = json.loads(out.read_text())
    assert set(report["categories"]) == {"simple", "multiple_function", "parallel_function",
                                         "parallel_multiple_function", "relevance"}
    simple = report["categories"]["simple"]
    assert (simple["accuracy"], simple["correct"], simple["total"]) == (0.5, 1, 2)
    assert simple["errors"][0]["id"] == "simple_1"
    assert report["ast_summary"] == pytest.approx(0.875) and report["relevance_detection"] == 1.0
    assert report["relevance_detection_strict"] == 1.0 and len(report["ast_summary_ci95"]) == 2


def test_any_subset_of_categories_and_v4_result_names(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    rows = perfect_results(FIXTURES / "v4", "en")["parallel"]
    (results / "BFCL_v4_parallel_result.json").write_text(
        "".join(json.dumps({"id": i, "result": r}) + "\n" for i, r in rows.items()))
    out = tmp_path / "r.json"
    assert main(["score", "bfcl", "--data", str(FIXTURES / "v4"), "--results", str(results),
                 "--decoder", "pythonic", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert list(report["categories"]) == ["parallel"]
    assert report["categories"]["parallel"]["accuracy"] == 1.0 and report["ast_summary"] is None


def test_missing_and_extra_ids_are_an_error_naming_them(tmp_path):
    results = tmp_path / "results"
    by_category = perfect_results(FIXTURES / "v1", "en")
    del by_category["multiple_function"]["multiple_function_1"]
    by_category["multiple_function"]["multiple_function_99"] = "[f(a=1)]"
    write_result_files(by_category, results)
    proc = run_cli("--data", FIXTURES / "v1", "--lang", "en", "--results", results,
                   "--decoder", "pythonic", "--out", tmp_path / "r.json")
    assert proc.returncode == 2
    assert result_file_name("multiple_function") in proc.stderr
    assert "missing 1 ids: multiple_function_1" in proc.stderr
    assert "1 ids not in the benchmark: multiple_function_99" in proc.stderr
    assert not (tmp_path / "r.json").exists()


def test_real_zhtw_data_scores_and_prints_time(bfcl_data, tmp_path):
    results = tmp_path / "results"
    write_result_files(perfect_results(bfcl_data, "zhtw"), results)
    out = tmp_path / "REPORT.json"
    proc = run_cli("--data", bfcl_data, "--lang", "zhtw", "--results", results, "--decoder", "pythonic", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "scored 1240 items in" in proc.stdout
    report = json.loads(out.read_text())
    assert report["ast_summary"] == pytest.approx(0.9975) and report["relevance_detection"] == 1.0


def test_subset_scores_a_slice_and_still_rejects_extra_ids(tmp_path):
    results = tmp_path / "results"
    by_category = perfect_results(FIXTURES / "v1", "en")
    del by_category["simple"]["simple_1"]
    write_result_files(by_category, results)
    out = tmp_path / "r.json"
    args = ["score", "bfcl", "--data", str(FIXTURES / "v1"), "--lang", "en", "--results", str(results),
            "--decoder", "pythonic", "--out", str(out)]
    assert main(args) == 2  # without --subset the missing id is an error
    assert main(args + ["--subset"]) == 0
    report = json.loads(out.read_text())
    assert report["subset"] is True and report["items_left_out"] == 1
    assert report["categories"]["simple"]["total"] == 1 and report["ast_summary"] == 1.0
    by_category["simple"]["simple_5"] = "[f()]"
    write_result_files(by_category, results)
    assert main(args + ["--subset"]) == 2


def test_score_bfcl_job_step(tmp_path):
    from raypipe.jobs import load_job
    from raypipe.registry import JobContext

    results = tmp_path / "results"
    write_result_files(perfect_results(FIXTURES / "v1", "zhtw"), results)
    job = tmp_path / "score.yaml"
    job.write_text(
        "name: rescore\nsteps:\n"
        f"  - score_bfcl: {{data: {FIXTURES / 'v1'}, results: {results}, out: {tmp_path / 'R.json'}, "
        "decoder: pythonic, lang: zhtw}\n")
    _, planned = load_job(job)
    summary = planned[0].step.run(planned[0].config, JobContext(name="rescore", job_file=str(job)))
    assert summary["ast_summary"] == 1.0 and summary["relevance_detection"] == 1.0
    assert json.loads((tmp_path / "R.json").read_text())["categories"]["simple"]["accuracy"] == 1.0
    job.write_text("name: rescore\nsteps:\n  - score_bfcl: {data: d, results: r, out: o, decoder: xml}\n")
    with pytest.raises(Exception, match="decoder"):
        load_job(job)


def test_a_folder_of_v3_and_v4_files_of_every_category(tmp_path):
    """Issue 16's check: V3 and V4 result files of every single-turn category side by side, plus
    files raypipe does not score; every category, the aggregates and what was left out are printed."""
    data = tmp_path / "data"
    data.mkdir()
    for version in ("v3", "v4"):  # one data folder holding both versions, as upstream's package does
        for path in (FIXTURES / version).rglob("*.json"):
            target = data / path.relative_to(FIXTURES / version)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    results = tmp_path / "results"
    for version in ("v3", "v4"):
        by_category = perfect_results(data, "en", version)
        if version == "v4":
            by_category["live_simple"]["live_simple_1-1-0"] = "```python\n[kitchen_timer(minutes=12)]\n```"
            by_category["irrelevance"]["irrelevance_0"] = "(recipes.nutrition_facts(dish='x'),)"  # no call upstream
        write_result_files(by_category, results, version=version)
    (results / "BFCL_v4_multi_turn_base_result.json").write_text('{"id": "multi_turn_base_0", "result": [[]]}\n')
    (results / "BFCL_v4_simple_java_result.json").write_text("")
    (results / "notes.txt").write_text("hello")
    out = tmp_path / "REPORT.json"
    proc = run_cli("--data", data, "--results", results, "--decoder", "pythonic", "--out", out)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    for category in ("simple_python", "simple", "multiple", "parallel", "parallel_multiple", "irrelevance",
                     "live_simple", "live_multiple", "live_parallel", "live_parallel_multiple",
                     "live_irrelevance", "live_relevance"):
        assert f"\n{category} " in text, category
    for label in ("BFCL v4 (rules: upstream)", "BFCL v3 (rules: upstream)", "upstream: non-live AST",
                  "upstream: live AST", "upstream: irrelevance", "upstream: relevance", "upstream: overall",
                  "not scored (3 files):", "BFCL_v4_multi_turn_base_result.json: multi-turn category",
                  "BFCL_v4_simple_java_result.json: Java category", "notes.txt: not a BFCL result file name"):
        assert label in text, label
    report = json.loads(out.read_text())
    assert sorted(report["suites"]) == ["v3", "v4"]
    v4 = report["suites"]["v4"]
    assert len(v4["categories"]) == 11 and len(report["suites"]["v3"]["categories"]) == 11
    assert v4["categories"]["live_simple"]["correct"] == 1  # the ```python fence fails upstream
    assert v4["categories"]["live_simple"]["errors"][0]["error_type"] == "ast_decoder:decoder_failed"
    assert v4["categories"]["irrelevance"]["accuracy"] == 1.0
    assert v4["upstream"]["live_ast"]["accuracy"] == pytest.approx(7 / 8)
    assert v4["upstream"]["overall"]["accuracy"] == pytest.approx((1 + 7 / 8 + 1) / 3)
    assert report["suites"]["v3"]["upstream"]["overall"]["accuracy"] == pytest.approx(1.0)
    assert report["categories"]["v4/live_simple"]["accuracy"] == 0.5  # several suites: keys carry the version
    assert [n["file"] for n in report["not_scored"]] == [
        "BFCL_v4_multi_turn_base_result.json", "BFCL_v4_simple_java_result.json", "notes.txt"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["kind"] == "score_bfcl" and manifest["scorer"]["rules"] == {"v4": "upstream", "v3": "upstream"}
    hashed = {Path(d["path"]).name for d in manifest["datasets"]}
    assert {"BFCL_v4_live_simple_result.json", "BFCL_v3_simple.json", "BFCL_v4_simple_python.json"} <= hashed


def test_rules_switch_and_v1_needs_a_language(tmp_path):
    results = tmp_path / "results"
    write_result_files({"irrelevance": {"irrelevance_0": "[f(a=1)]", "irrelevance_1": "no"}}, results, version="v4")
    out = tmp_path / "r.json"
    base = ["score", "bfcl", "--data", str(FIXTURES / "v4"), "--results", str(results), "--decoder", "pythonic",
            "--out", str(out)]
    assert main(base) == 0
    assert json.loads(out.read_text())["error_counts"] == {"irrelevance": {"irrelevance_error:decoder_success": 1}}
    assert main(base + ["--rules", "v1"]) == 0
    report = json.loads(out.read_text())
    assert report["rules"] == "v1" and report["error_counts"]["irrelevance"] == {"relevance_error:decoder_success": 1}
    v1_results = tmp_path / "v1"
    write_result_files(perfect_results(FIXTURES / "v1", "en"), v1_results)
    proc = run_cli("--data", FIXTURES / "v1", "--results", v1_results, "--decoder", "pythonic", "--out", out)
    assert proc.returncode == 2 and "--lang en or --lang zhtw" in proc.stderr
