"""Compare evaluation runs: one JSON, one Markdown table (the seed paper's columns), one PNG.

A run directory holds any of `REPORT.json` (BFCL scores, from `raypipe eval bfcl` or
`raypipe score bfcl`), `MTBENCH.json` (from `raypipe eval mtbench`) and `run.json` (what was
evaluated). Missing metrics show as "-", as in the paper's tables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from raypipe.errors import RaypipeError

CATEGORIES = ["simple", "multiple_function", "parallel_function", "parallel_multiple_function", "relevance"]
SHORT = {"simple": "Simple", "multiple_function": "Multiple", "parallel_function": "Parallel",
         "parallel_multiple_function": "Parallel Multiple", "relevance": "Relevance"}
UPSTREAM = [("non_live_ast", "Non-live AST"), ("live_ast", "Live AST"), ("irrelevance", "Irrelevance"),
            ("relevance", "Relevance"), ("overall", "Overall")]


def category_order(runs: list[dict[str, Any]]) -> list[str]:
    """The categories any run has: the V1 five first (the paper's order), then the others as
    the runs list them (V3/V4 names, or ``<version>/<category>`` keys)."""
    seen = [c for c in CATEGORIES if any(c in r["categories"] for r in runs)]
    for r in runs:
        seen += [c for c in r["categories"] if c not in seen]
    return seen


def label(category: str) -> str:
    return SHORT.get(category, category)


def _load(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RaypipeError(f"{path}: not valid JSON ({exc.msg})") from None


def collect_run(run_dir: str | Path, name: str | None = None) -> dict[str, Any]:
    """The comparable figures of one run directory (accuracies as fractions in [0, 1])."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RaypipeError(f"{run_dir}: not a directory")
    bfcl = _load(run_dir / "REPORT.json")
    mtbench = _load(run_dir / "MTBENCH.json")
    meta = _load(run_dir / "run.json") or {}
    agent = _load(run_dir / "AGENT.json")  # `raypipe eval agent run` (pass^k)
    if bfcl is None and mtbench is None and agent is None:
        raise RaypipeError(f"{run_dir}: holds neither REPORT.json nor MTBENCH.json (nor AGENT.json)")
    categories = {}
    for cat, c in ((bfcl or {}).get("categories") or {}).items():
        categories[cat] = {"accuracy": c.get("accuracy"), "correct": c.get("correct"),
                           "total": c.get("total"), "ci95": _ci(c)}
    return {
        "name": name or run_dir.name,
        "dir": str(run_dir),
        "model": meta.get("model") or (bfcl or {}).get("run", {}).get("model"),
        "adapter": meta.get("adapter"),
        "format": meta.get("format") or (bfcl or {}).get("run", {}).get("format"),
        "lang": meta.get("lang") or (bfcl or {}).get("run", {}).get("lang"),
        "ast_summary": (bfcl or {}).get("ast_summary"),
        "relevance_detection": (bfcl or {}).get("relevance_detection"),
        "relevance_detection_strict": _strict(bfcl),
        "mt_bench": (mtbench or {}).get("score"),
        "upstream": {k: (v or {}).get("accuracy") for k, v in ((bfcl or {}).get("upstream") or {}).items()},
        "categories": categories,
        "agent": agent,
    }


def _ci(cat: dict) -> list[float] | None:
    for key in ("ci95", "ci_95", "confidence_interval"):
        value = cat.get(key)
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return [float(value[0]), float(value[1])]
        if isinstance(value, dict) and {"low", "high"} <= set(value):
            return [float(value["low"]), float(value["high"])]
    return None


def _strict(bfcl: dict | None) -> float | None:
    if not bfcl:
        return None
    for key in ("relevance_detection_strict", "relevance_strict"):
        if isinstance(bfcl.get(key), (int, float)):
            return float(bfcl[key])
    return None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def markdown_table(runs: list[dict[str, Any]]) -> str:
    """The paper's table (AST Summary, Relevance Detection in %, MT-Bench out of 10), then
    the per-category accuracies with their 95% intervals."""
    lines = [
        "| Run | Format | AST Summary | Relevance Detection | MT-Bench |",
        "|---|---|---:|---:|---:|",
    ]
    for r in runs:
        mt = "-" if r["mt_bench"] is None else f"{r['mt_bench']:.2f}"
        lines.append(f"| {r['name']} | {r.get('format') or '-'} | {_pct(r['ast_summary'])} | "
                     f"{_pct(r['relevance_detection'])} | {mt} |")
    if any(any(v is not None for v in r.get("upstream", {}).values()) for r in runs):
        lines += ["", "| Run | " + " | ".join(name for _, name in UPSTREAM) + " |", "|---|" + "---:|" * len(UPSTREAM)]
        for r in runs:
            lines.append(f"| {r['name']} | " + " | ".join(_pct(r.get("upstream", {}).get(k)) for k, _ in UPSTREAM) + " |")
    columns = category_order(runs)
    if columns:
        lines += ["", "| Run | " + " | ".join(label(c) for c in columns) + " | Relevance (strict) |",
                  "|---|" + "---:|" * (len(columns) + 1)]
        for r in runs:
            cells = []
            for c in columns:
                cat = r["categories"].get(c)
                if not cat or cat.get("accuracy") is None:
                    cells.append("-")
                    continue
                cell = f"{_pct(cat['accuracy'])} ({cat['correct']}/{cat['total']})"
                if cat.get("ci95"):
                    cell += f" [{_pct(cat['ci95'][0])}, {_pct(cat['ci95'][1])}]"
                cells.append(cell)
            cells.append(_pct(r["relevance_detection_strict"]))
            lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("Accuracies in %, (correct/total) and [95% confidence interval]; "
                     "AST Summary = mean of the four non-live AST categories; Relevance (strict) counts "
                     "only well-formed direct answers as correct; the upstream figures follow bfcl_eval's "
                     "leaderboard formulas over the categories scored (docs/scoring.md).")
    return "\n".join(lines)


def plot_runs(runs: list[dict[str, Any]], path: str | Path) -> Path:
    """Grouped bars: one group per BFCL category (+ AST Summary), one bar per run; MT-Bench
    (a 0-10 score) in its own panel when any run has it."""
    import matplotlib

    matplotlib.use("Agg")  # no display on cluster nodes
    import matplotlib.pyplot as plt

    groups = category_order(runs)
    labels = [label(c) for c in groups]
    values = [[(r["categories"].get(c) or {}).get("accuracy") for c in groups] for r in runs]
    cis = [[(r["categories"].get(c) or {}).get("ci95") for c in groups] for r in runs]
    if any(r["ast_summary"] is not None for r in runs):
        labels.append("AST Summary")
        for v, ci, r in zip(values, cis, runs):
            v.append(r["ast_summary"])
            ci.append(None)
    has_mt = any(r["mt_bench"] is not None for r in runs)
    fig, axes = plt.subplots(1, 2 if has_mt else 1, figsize=(11 if has_mt else 9, 4.5),
                             gridspec_kw={"width_ratios": [4, 1]} if has_mt else None, squeeze=False)
    ax = axes[0][0]
    width = 0.8 / max(len(runs), 1)
    for i, (r, vals, ci) in enumerate(zip(runs, values, cis)):
        xs = [j + (i - (len(runs) - 1) / 2) * width for j in range(len(labels))]
        heights = [float("nan") if v is None else 100 * v for v in vals]  # missing: no bar, not 0
        err = [[0 if c is None or v is None else max(0.0, 100 * (v - c[0])) for v, c in zip(vals, ci)],
               [0 if c is None or v is None else max(0.0, 100 * (c[1] - v)) for v, c in zip(vals, ci)]]
        bars = ax.bar(xs, heights, width, yerr=err, capsize=2, label=r["name"], error_kw={"lw": 0.8})
        ax.bar_label(bars, labels=["" if v is None else f"{100 * v:.1f}" for v in vals], fontsize=6, padding=1)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=15)
    ax.set_ylabel("accuracy (%), 95% CI")
    ax.set_ylim(0, 115)  # headroom for the value labels and the legend
    ax.set_title("BFCL (AST and relevance)")
    ax.legend(fontsize="small", ncol=min(len(runs), 4), loc="upper left")
    if has_mt:
        mx = axes[0][1]
        scores = [r["mt_bench"] for r in runs]
        bars = mx.bar(range(len(runs)), [float("nan") if v is None else v for v in scores],
                      color=[f"C{i}" for i in range(len(runs))])
        mx.bar_label(bars, labels=["-" if v is None else f"{v:.2f}" for v in scores], fontsize=7, padding=1)
        mx.set_xticks(range(len(runs)))
        mx.set_xticklabels([r["name"] for r in runs], rotation=30, fontsize="small")
        mx.set_ylim(0, 10)
        mx.set_title("MT-Bench")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(run_dirs: list[str | Path], out_dir: str | Path, names: list[str] | None = None) -> dict:
    if names and len(names) != len(run_dirs):
        raise RaypipeError(f"{len(names)} names for {len(run_dirs)} run directories")
    runs = [collect_run(d, names[i] if names else None) for i, d in enumerate(run_dirs)]
    seen: dict[str, int] = {}
    for r in runs:  # two runs named alike (same leaf dir) would be indistinguishable
        seen[r["name"]] = seen.get(r["name"], 0) + 1
        if seen[r["name"]] > 1:
            r["name"] = f"{r['name']} ({seen[r['name']]})"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps({"runs": runs}, indent=2, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    (out / "report.md").write_text(markdown_table(runs) + "\n", encoding="utf-8")
    plot_runs(runs, out / "report.png")
    if any(r["agent"] for r in runs):
        from raypipe.agent.records import write_passk_report

        write_passk_report([(r["name"], r["agent"]) for r in runs if r["agent"]], out)
    return {"runs": len(runs), "json": str(out / "report.json"), "markdown": str(out / "report.md"),
            "png": str(out / "report.png")}
