"""End to end on CPU: a tiny random model answers a slice of the zh-TW BFCL through Ray Data;
the result files are written, scored and reported, and `raypipe score bfcl` re-scores the
same files to the same numbers. A resumed run regenerates only what is missing or failed."""

import json

import pytest

pytestmark = pytest.mark.integration

CATEGORIES = ["simple", "multiple_function", "parallel_function", "parallel_multiple_function", "relevance"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from raypipe.tiny import save_tiny_model

    texts = ['<|im_start|>user\n計算三角形的面積，底為10<|im_end|>\n<|im_start|>assistant\n'
             '<|use_tool|>[calculate_triangle_area(base=10, height=5)]<|im_end|>'] * 20
    return save_tiny_model(tmp_path_factory.mktemp("tiny"), texts)


def _numbers(report):
    cats = {c: (v["correct"], v["total"], v["accuracy"]) for c, v in report["categories"].items()}
    return cats, report["ast_summary"], report["relevance_detection"], report["relevance_detection_strict"]


def test_eval_bfcl_writes_scores_reports_and_resumes(bfcl_data, local_ray, tiny_model, tmp_path):
    from raypipe.cli import main
    from raypipe.eval.scoring import read_result_files
    from raypipe.infer import GenerationConfig
    from raypipe.infer.bfcl import EvalBfclConfig, run_eval_bfcl

    out = tmp_path / "run"
    cfg = EvalBfclConfig(
        data=str(bfcl_data), out=str(out), format="tools-dt", lang="zhtw", limit=3,
        generation=GenerationConfig(model=str(tiny_model), backend="transformers", batch_size=8,
                                    max_new_tokens=8),
    )
    summary = run_eval_bfcl(cfg, log=lambda *_: None)
    assert summary["items"] == 15 and summary["generated"] == 15
    logged = [json.loads(x) for x in (out / "generations.jsonl").read_text(encoding="utf-8").splitlines()]
    assert summary["truncated"] == sum(r["finish_reason"] == "length" for r in logged) > 0

    results = read_result_files(out / "results")
    assert sorted(results) == sorted(CATEGORIES)
    assert all(list(results[c]) == [f"{c}_{i}" for i in range(3)] for c in CATEGORIES)
    report = json.loads((out / "REPORT.json").read_text())
    assert report["decoder"] == "decision-token"  # follows from the tools-dt format
    assert all(report["categories"][c]["total"] == 3 for c in CATEGORIES)
    assert "| run | tools-dt |" in (out / "report.md").read_text()

    # the same files, re-scored by the standalone scorer, give the same numbers
    rescored = tmp_path / "rescored.json"
    assert main(["score", "bfcl", "--data", str(bfcl_data), "--lang", "zhtw", "--results", str(out / "results"),
                 "--decoder", "decision-token", "--subset", "--out", str(rescored)]) == 0
    assert _numbers(json.loads(rescored.read_text())) == _numbers(report)

    # resume: two rows lost in a crash, one failed -> only those three are generated again
    log = out / "generations.jsonl"
    lines = log.read_text(encoding="utf-8").splitlines()
    kept, lost = lines[:-2], [json.loads(x)["id"] for x in lines[-2:]]
    failed = json.loads(kept[0])
    kept.append(json.dumps({**failed, "generated_text": "", "error": "RuntimeError: boom"}))
    log.write_text("\n".join(kept) + "\n", encoding="utf-8")
    again = run_eval_bfcl(cfg, log=lambda *_: None)
    assert again["generated"] == 3
    by_id = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        by_id[row["id"]] = row
    assert all(by_id[i]["error"] == "" for i in [*lost, failed["id"]])
    assert by_id[failed["id"]]["generated_text"] == failed["generated_text"]  # greedy: same text again
    assert _numbers(json.loads((out / "REPORT.json").read_text())) == _numbers(report)

    # the run feeds the comparison report
    assert main(["report", str(out), "--out", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp" / "report.png").stat().st_size > 0


def test_eval_bfcl_runs_v4_single_turn_with_transformers(local_ray, tiny_model, tmp_path):
    """V4 layout, every single-turn category (one item each), the transformers backend; the
    result files carry upstream's names and the report upstream's aggregates and a manifest."""
    from pathlib import Path

    from raypipe.infer import GenerationConfig
    from raypipe.infer.bfcl import EvalBfclConfig, run_eval_bfcl

    v4 = Path(__file__).resolve().parents[1] / "data" / "bfcl" / "v4"
    out = tmp_path / "v4run"
    cfg = EvalBfclConfig(data=str(v4), out=str(out), format="tools", limit=1,
                         generation=GenerationConfig(model=str(tiny_model), backend="transformers", batch_size=11,
                                                     max_new_tokens=4))
    summary = run_eval_bfcl(cfg, log=lambda *_: None)
    assert summary["items"] == 11 and summary["version"] == "v4" and summary["overall"] is not None
    names = sorted(p.name for p in (out / "results").iterdir())
    assert len(names) == 11 and all(n.startswith("BFCL_v4_") and n.endswith("_result.json") for n in names)
    report = json.loads((out / "REPORT.json").read_text())
    assert report["decoder"] == "pythonic" and report["rules"] == "upstream" and len(report["categories"]) == 11
    assert set(report["upstream"]) == {"non_live_ast", "live_ast", "irrelevance", "relevance", "overall"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["template"] == {"format": "tools", "backend": "transformers"}
    assert manifest["sampling"]["max_new_tokens"] == 4 and manifest["versions"]["transformers"]
    assert "Live AST" in (out / "report.md").read_text()
