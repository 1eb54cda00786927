"""`raypipe report --study DIR` on hand-made evaluation folders (no model): cells, paper
figures, differences, paired tests on the shared items, a failed arm, MT-Bench's bootstrap;
and the `fetch_hf` step with a stand-in `datasets`."""

import json
import subprocess
import sys
import types
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raypipe.errors import RaypipeError
from raypipe.study.report import write_study_report

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
AST = ["simple", "multiple_function", "parallel_function", "parallel_multiple_function"]
FILES = {c: f"gorilla_openfunctions_v1_test_{c}_result.json" for c in AST + ["relevance"]}


def bfcl_run(folder: Path, wrong: dict[str, set[int]], n: int = 10) -> str:
    """A scored run: n items per category, the ids in `wrong` failed."""
    (folder / "results").mkdir(parents=True)
    categories = {}
    for c, name in FILES.items():
        lines = [json.dumps({"id": f"{c}_{i}", "result": "[f()]"}) for i in range(n)]
        (folder / "results" / name).write_text("\n".join(lines) + "\n")
        bad = wrong.get(c, set())
        categories[c] = {"total": n, "correct": n - len(bad), "accuracy": (n - len(bad)) / n,
                         "errors": [{"id": f"{c}_{i}"} for i in sorted(bad)]}
    ast = sum(categories[c]["accuracy"] for c in AST) / 4
    (folder / "REPORT.json").write_text(json.dumps({
        "version": "v1", "categories": categories, "ast_summary": ast, "ast_summary_ci95": [ast - 0.1, ast + 0.1],
        "relevance_detection": categories["relevance"]["accuracy"]}))
    return str(folder)


def mtbench_run(folder: Path, ratings: list[float]) -> str:
    (folder / "judgments" / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"id": f"q{i}/1", "rating": r} for i, r in enumerate(ratings)]),
                   folder / "judgments" / "data" / "part-0.parquet")
    (folder / "MTBENCH.json").write_text(json.dumps({"score": sum(ratings) / len(ratings)}))
    return str(folder)


def test_report_cells_and_paired_tests(tmp_path):
    study = tmp_path / "study"
    a = bfcl_run(tmp_path / "a", {c: set(range(6)) for c in AST} | {"relevance": set(range(8))})
    b = bfcl_run(tmp_path / "b", {c: {0} for c in AST} | {"relevance": set(range(7))})  # 20 AST items better
    arms = {
        "a": {"row": "Baseline", "status": "done", "paper": {"ast_summary": 85.25, "relevance_detection": 49.58,
                                                              "mt_bench": 5.57},
              "evals": {"bfcl": a, "mtbench": mtbench_run(tmp_path / "ma", [5.0, 6.0, 7.0, 5.0] * 10)}},
        "b": {"row": "+ Decision Token", "status": "done", "paper": {"ast_summary": 85.25, "relevance_detection": 37.5,
                                                                     "mt_bench": None},
              "evals": {"bfcl": b, "mtbench": mtbench_run(tmp_path / "mb", [6.0, 7.0, 8.0, 6.0] * 10)}},
        "c": {"row": "broken", "status": "failed", "error": "RuntimeError: boom", "paper": {}, "evals": {}},
    }
    study.mkdir()
    (study / "study.json").write_text(json.dumps({
        "study": "t", "scale": "tiny", "metrics": ["mt_bench", "ast_summary", "relevance_detection"],
        "compare": [["a", "b"], ["a", "c"]], "arms": arms}))
    r = subprocess.run([sys.executable, "-m", "raypipe.cli", "report", "--study", str(study)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    data = json.loads((study / "report" / "STUDY.json").read_text())
    rows = {x["arm"]: x for x in data["rows"]}
    ast_a = rows["a"]["cells"]["ast_summary"]
    assert ast_a["raypipe"] == 40.0 and ast_a["paper"] == 85.25 and ast_a["diff"] == -45.25 and ast_a["items"] == 40
    rel_b = rows["b"]["cells"]["relevance_detection"]
    assert rel_b["raypipe"] == 30.0 and rel_b["ci95"] == [10.78, 60.32]  # Wilson 3/10
    assert rows["b"]["cells"]["mt_bench"]["paper"] is None and rows["b"]["cells"]["mt_bench"]["diff"] is None
    assert rows["c"]["status"] == "failed" and rows["c"]["cells"]["ast_summary"]["raypipe"] is None
    ab, ac = data["comparisons"]
    ast = ab["tests"]["ast_summary"]
    assert (ast["items"], ast["a_only"], ast["b_only"]) == (40, 0, 20)
    assert ast["p"] == pytest.approx(2 / 2 ** 20) and ast["beyond_noise"] and ast["raypipe_diff"] == 50.0
    rel = ab["tests"]["relevance_detection"]
    assert (rel["a_only"], rel["b_only"], rel["p"], rel["beyond_noise"]) == (0, 1, 1.0, False)
    assert rel["paper_diff"] == -12.08
    mt = ab["tests"]["mt_bench"]
    assert mt["test"].startswith("paired bootstrap") and mt["raypipe_diff"] == 1.0 and mt["beyond_noise"]
    assert ac["tests"]["ast_summary"]["test"] is None  # the failed arm has nothing to pair
    md = (study / "report" / "study.md").read_text()
    assert "| c | broken | failed: RuntimeError: boom |" in md
    assert "| a -> b | AST Summary | 40 | 50.00 | 0.00 | McNemar exact |" in md


def test_report_without_a_study_is_one_clear_error(tmp_path):
    with pytest.raises(RaypipeError, match="no study.json"):
        write_study_report(tmp_path)
    r = subprocess.run([sys.executable, "-m", "raypipe.cli", "report"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("raypipe: error: report: give RUN_DIR")
    run = tmp_path / "run"
    run.mkdir()
    (run / "REPORT.json").write_text("{truncated")
    (tmp_path / "study.json").write_text(json.dumps({"arms": {"a": {"evals": {"bfcl": str(run)}}}}))
    with pytest.raises(RaypipeError, match=r"REPORT.json: not valid JSON"):
        write_study_report(tmp_path)


def test_fetch_hf_uses_the_hub_code_once(tmp_path, monkeypatch):
    from raypipe.commands.fetch_hf import FetchHfConfig, fetch_hf

    calls = []

    class FakeDataset:
        def save_to_disk(self, path):
            Path(path).mkdir(parents=True)
            (Path(path) / "state.json").write_text("{}")

    def load_dataset(name, split, revision):
        calls.append((name, split, revision))
        return FakeDataset()

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    cfg = FetchHfConfig(dataset="Salesforce/xlam-function-calling-60k", out=str(tmp_path / "x"), split="train[:10]")
    assert fetch_hf(cfg)["fetched"] is True
    assert fetch_hf(cfg) == {"out": cfg.out, "fetched": False, "reason": "already here"}
    assert calls == [("Salesforce/xlam-function-calling-60k", "train[:10]", None)]
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed
    with pytest.raises(RaypipeError, match=r"pip install 'raypipe\[hub\]'"):
        fetch_hf(FetchHfConfig(dataset="glaiveai/glaive-function-calling-v2", out=str(tmp_path / "g")))
    with pytest.raises(ValueError, match="OWNER/NAME"):
        FetchHfConfig(dataset="openorca", out=str(tmp_path / "o"))
