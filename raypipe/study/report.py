"""`raypipe report --study DIR`: a study's table beside the paper's, with paired tests.

Reads DIR/study.json (written by the runner) and each arm's evaluation folders; writes
STUDY.json, study.md and study.png into the report folder. Each cell: raypipe's figure with
its 95% interval, the paper's figure (from the study file, null when the paper has none) and
the difference. Each pair of arms the study compares gets a paired test on the items both
arms were scored on: McNemar's exact test for AST (the items of the four AST categories,
pooled) and relevance; a seeded paired bootstrap over MT-Bench judgments.

AST Summary itself is BFCL's unweighted mean of the four category accuracies; its interval is
the scorer's (`ast_summary_ci95`), and its test pools the items, since McNemar needs items.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from raypipe.errors import RaypipeError
from raypipe.study import stats

LABELS = {"ast_summary": "AST Summary", "relevance_detection": "Relevance Detection", "mt_bench": "MT-Bench"}
PERCENT = {"ast_summary", "relevance_detection"}  # shown in %, as in the paper


def write_study_report(study_dir: str | Path, out: str | Path | None = None) -> dict[str, str]:
    study_dir = Path(study_dir)
    state_path = study_dir / "study.json"
    if not state_path.is_file():
        raise RaypipeError(f"{study_dir}: no study.json (run the study first: raypipe run STUDY.yaml)")
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
        arms_state = state["arms"]
    except (ValueError, KeyError, TypeError) as exc:
        raise RaypipeError(f"{state_path}: not a study state file ({exc})") from None
    out = Path(out) if out else study_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    metrics = state.get("metrics") or ["ast_summary", "relevance_detection"]
    outcomes = {name: _outcomes(arm) for name, arm in arms_state.items()}
    rows = [_row(name, arm, outcomes[name], metrics) for name, arm in arms_state.items()]
    comparisons = [_compare(a, b, outcomes, arms_state, metrics) for a, b in state.get("compare") or []]
    report = {"study": state.get("study"), "scale": state.get("scale"), "paper": state.get("paper"),
              "metrics": metrics, "rows": rows, "comparisons": comparisons, "alpha": stats.ALPHA}
    (out / "STUDY.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "study.md").write_text(markdown(report), encoding="utf-8")
    _plot(report, out / "study.png")
    return {"json": str(out / "STUDY.json"), "markdown": str(out / "study.md"), "png": str(out / "study.png")}


def _outcomes(arm: dict) -> dict[str, Any]:
    """Per metric: item id -> outcome (bool, or a rating for MT-Bench), plus the summaries."""
    found: dict[str, Any] = {}
    bfcl = (arm.get("evals") or {}).get("bfcl")
    if bfcl and (Path(bfcl) / "REPORT.json").is_file():
        from raypipe.eval.bfcl_categories import IRRELEVANCE, NON_LIVE_AST
        from raypipe.eval.scoring import read_result_files

        report = _read_json(Path(bfcl) / "REPORT.json")
        version = report.get("version") or "v1"
        categories = report.get("categories") or {}
        results = read_result_files(Path(bfcl) / "results")

        def items(names) -> dict[str, bool]:
            got = {}
            for c in names:
                failed = {e["id"] for e in (categories.get(c) or {}).get("errors") or []}
                got.update({f"{c}/{i}": i not in failed for i in results.get(c) or {}})
            return got

        found["ast_summary"] = {"value": report.get("ast_summary"), "ci95": report.get("ast_summary_ci95"),
                                "items": items(NON_LIVE_AST.get(version, ()))}
        rel = items(IRRELEVANCE.get(version, ())[:1])
        found["relevance_detection"] = {"value": report.get("relevance_detection"),
                                        "ci95": stats.wilson(sum(rel.values()), len(rel)), "items": rel}
    mtbench = (arm.get("evals") or {}).get("mtbench")
    if mtbench and (Path(mtbench) / "MTBENCH.json").is_file():
        summary = _read_json(Path(mtbench) / "MTBENCH.json")
        ratings = _ratings(Path(mtbench) / "judgments" / "data")
        values = list(ratings.values())
        # the interval of one arm's mean: the bootstrap of (ratings - 0)
        ci = stats.paired_bootstrap([0.0] * len(values), values)["ci95"] if values else None
        found["mt_bench"] = {"value": summary.get("score"), "ci95": ci, "items": ratings}
    return found


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RaypipeError(f"{path}: not valid JSON ({exc}); re-run that evaluation") from None
    if not isinstance(data, dict):
        raise RaypipeError(f"{path}: expected a JSON object")
    return data


def _ratings(folder: Path) -> dict[str, float]:
    if not folder.is_dir():
        return {}
    import pyarrow.parquet as pq

    rows = [r for f in sorted(folder.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    return {str(r["id"]): float(r["rating"]) for r in rows if r.get("rating") is not None}


def _scaled(metric: str, value: float | None) -> float | None:
    if value is None:
        return None
    return round(100 * value, 2) if metric in PERCENT else round(value, 2)


def _row(name: str, arm: dict, found: dict, metrics: list[str]) -> dict:
    cells = {}
    for m in metrics:
        got = found.get(m) or {}
        value, ci = _scaled(m, got.get("value")), got.get("ci95")
        paper = (arm.get("paper") or {}).get(m)
        cells[m] = {"raypipe": value, "ci95": [_scaled(m, x) for x in ci] if ci else None,
                    "items": len(got.get("items") or {}), "paper": paper,
                    "diff": round(value - paper, 2) if value is not None and paper is not None else None}
    return {"arm": name, "row": arm.get("row") or name, "status": arm.get("status"), "error": arm.get("error"),
            "cells": cells}


def _compare(a: str, b: str, outcomes: dict, arms: dict, metrics: list[str]) -> dict:
    tests = {}
    for m in metrics:
        xa, xb = (outcomes.get(a) or {}).get(m), (outcomes.get(b) or {}).get(m)
        paper_a, paper_b = (((arms.get(x) or {}).get("paper") or {}).get(m) for x in (a, b))
        paper_diff = round(paper_b - paper_a, 2) if paper_a is not None and paper_b is not None else None
        if not xa or not xb:
            tests[m] = {"test": None, "p": None, "paper_diff": paper_diff, "note": "not evaluated in both arms"}
            continue
        shared = sorted(set(xa["items"]) & set(xb["items"]))  # the same benchmark items only
        va, vb = [xa["items"][i] for i in shared], [xb["items"][i] for i in shared]
        if m == "mt_bench":
            r = stats.paired_bootstrap(va, vb)
            test, diff = "paired bootstrap (10000 resamples, seed 0)", r["diff"]
        else:
            r = stats.mcnemar_exact(va, vb)
            test = "McNemar exact"
            diff = 100 * (sum(vb) - sum(va)) / len(shared) if shared else None
        tests[m] = {"test": test, "items": len(shared), "p": r["p"],
                    "beyond_noise": r["p"] is not None and r["p"] < stats.ALPHA,
                    "raypipe_diff": round(diff, 2) if diff is not None else None, "paper_diff": paper_diff,
                    **{k: r[k] for k in ("a_only", "b_only", "ci95") if k in r}}
    return {"a": a, "b": b, "tests": tests}


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def markdown(report: dict) -> str:
    metrics = report["metrics"]
    lines = [f"# Study {report['study']} ({report['scale']} scale)", ""]
    if report.get("paper"):
        lines += [f"Paper: {report['paper']}", ""]
    lines += ["Each cell: raypipe's figure [95% CI] / the paper's figure / raypipe minus the paper "
              "(AST and relevance in %).", ""]
    lines.append("| arm | paper row | status | " + " | ".join(LABELS[m] for m in metrics) + " |")
    lines.append("|---|---|---|" + "---|" * len(metrics))
    for r in report["rows"]:
        cells = []
        for m in metrics:
            c = r["cells"][m]
            ci = f" [{_fmt(c['ci95'][0])}, {_fmt(c['ci95'][1])}]" if c["ci95"] else ""
            cells.append(f"{_fmt(c['raypipe'])}{ci} / {_fmt(c['paper'])} / {_fmt(c['diff'])}")
        status = r["status"] if not r.get("error") else f"{r['status']}: {r['error'][:80]}"
        lines.append(f"| {r['arm']} | {r['row']} | {status} | " + " | ".join(cells) + " |")
    if report["comparisons"]:
        lines += ["", f"Paired tests (beyond noise: p < {report['alpha']}; the paper reports none):", "",
                  "| A -> B | metric | items | raypipe B-A | paper B-A | test | p | beyond noise |",
                  "|---|---|---|---|---|---|---|---|"]
        for c in report["comparisons"]:
            for m, t in c["tests"].items():
                if t["test"] is None:
                    lines.append(f"| {c['a']} -> {c['b']} | {LABELS[m]} | - | - | {_fmt(t['paper_diff'])} | "
                                 f"{t['note']} | - | - |")
                    continue
                p = "-" if t["p"] is None else f"{t['p']:.3g}"
                lines.append(f"| {c['a']} -> {c['b']} | {LABELS[m]} | {t['items']} | {_fmt(t['raypipe_diff'])} | "
                             f"{_fmt(t['paper_diff'])} | {t['test']} | {p} | {'yes' if t['beyond_noise'] else 'no'} |")
    return "\n".join(lines) + "\n"


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on cluster nodes
    import matplotlib.pyplot as plt

    metrics = report["metrics"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 + 2 * len(report["rows"]), 3.5), squeeze=False)
    names = [r["arm"] for r in report["rows"]]
    for ax, m in zip(axes[0], metrics):
        ours = [r["cells"][m]["raypipe"] for r in report["rows"]]
        paper = [r["cells"][m]["paper"] for r in report["rows"]]
        xs = range(len(names))
        err = [[(o - c["ci95"][0]) if o is not None and c["ci95"] else 0 for o, c in
                zip(ours, (r["cells"][m] for r in report["rows"]))],
               [(c["ci95"][1] - o) if o is not None and c["ci95"] else 0 for o, c in
                zip(ours, (r["cells"][m] for r in report["rows"]))]]
        ax.bar([x - 0.2 for x in xs], [o or 0 for o in ours], 0.4, yerr=err, label="raypipe", capsize=3)
        ax.bar([x + 0.2 for x in xs], [p or 0 for p in paper], 0.4, label="paper")
        ax.set_xticks(list(xs), names, rotation=30, ha="right", fontsize=7)
        ax.set_title(LABELS[m])
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
