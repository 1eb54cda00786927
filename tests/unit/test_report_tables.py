import json

import pytest

from raypipe.errors import RaypipeError
from raypipe.eval.report import collect_run, markdown_table, write_report

pytestmark = pytest.mark.unit


def _bfcl_report(acc: dict[str, tuple[int, int]], strict=None) -> dict:
    cats = {c: {"accuracy": k / n, "correct": k, "total": n, "ci95": [max(0, k / n - 0.1), min(1, k / n + 0.1)],
                "errors": []} for c, (k, n) in acc.items()}
    ast = ["simple", "multiple_function", "parallel_function", "parallel_multiple_function"]
    return {"categories": cats,
            "ast_summary": sum(cats[c]["accuracy"] for c in ast) / 4 if all(c in cats for c in ast) else None,
            "relevance_detection": cats["relevance"]["accuracy"] if "relevance" in cats else None,
            "relevance_detection_strict": strict}


def _run_dir(tmp_path, name, bfcl=None, mtbench=None, meta=None):
    d = tmp_path / name
    d.mkdir()
    if bfcl is not None:
        (d / "REPORT.json").write_text(json.dumps(bfcl))
    if mtbench is not None:
        (d / "MTBENCH.json").write_text(json.dumps(mtbench))
    if meta is not None:
        (d / "run.json").write_text(json.dumps(meta))
    return d


FULL = {"simple": (341, 400), "multiple_function": (180, 200), "parallel_function": (170, 200),
        "parallel_multiple_function": (155, 200), "relevance": (119, 240)}


def test_markdown_has_the_papers_columns_in_percent(tmp_path):
    a = _run_dir(tmp_path, "tools-dt", _bfcl_report(FULL, strict=0.3), {"score": 5.57}, {"format": "tools-dt"})
    b = _run_dir(tmp_path, "if-only", None, {"score": 5.4625})
    md = markdown_table([collect_run(a), collect_run(b)])
    lines = md.splitlines()
    assert lines[0] == "| Run | Format | AST Summary | Relevance Detection | MT-Bench |"
    ast = (341 / 400 + 180 / 200 + 170 / 200 + 155 / 200) / 4
    assert f"| tools-dt | tools-dt | {100 * ast:.2f} | 49.58 | 5.57 |" in lines
    assert "| if-only | - | - | - | 5.46 |" in lines  # missing metrics show as "-"
    assert "85.25 (341/400) [75.25, 95.25]" in md  # per-category accuracy, counts and CI
    assert md.splitlines()[7].endswith("| 30.00 |")  # strict relevance beside the lenient one


def test_write_report_makes_json_markdown_and_png(tmp_path):
    a = _run_dir(tmp_path, "a", _bfcl_report(FULL, strict=0.3), {"score": 6.1})
    b = _run_dir(tmp_path, "b", _bfcl_report({"simple": (1, 3), "relevance": (2, 3)}))
    out = tmp_path / "out"
    written = write_report([a, b], out, names=["with DT", "baseline"])
    data = json.loads((out / "report.json").read_text())
    assert [r["name"] for r in data["runs"]] == ["with DT", "baseline"]
    assert data["runs"][0]["relevance_detection_strict"] == 0.3
    assert data["runs"][1]["ast_summary"] is None  # not all four AST categories were scored
    png = (out / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert written["markdown"].endswith("report.md")


def test_same_leaf_names_are_told_apart(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a = _run_dir(tmp_path / "x", "run", None, {"score": 5.0})
    b = _run_dir(tmp_path / "y", "run", None, {"score": 6.0})
    write_report([a, b], tmp_path / "out")
    names = [r["name"] for r in json.loads((tmp_path / "out" / "report.json").read_text())["runs"]]
    assert names == ["run", "run (2)"]


def test_a_dir_without_results_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RaypipeError, match="neither REPORT.json nor MTBENCH.json"):
        collect_run(tmp_path / "empty")
    with pytest.raises(RaypipeError, match="2 names for 1"):
        write_report([tmp_path / "empty"], tmp_path / "o", names=["a", "b"])
