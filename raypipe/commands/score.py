"""`raypipe score bfcl`: score BFCL result files (from raypipe or any other tool)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from raypipe.config import input_paths, output_path
from raypipe.registry import Command, Step

DECODER_CHOICES = ("decision-token", "pythonic", "openai", "json")
CATEGORY_LABELS = {
    "simple": "Simple (AST)",
    "multiple_function": "Multiple (AST)",
    "parallel_function": "Parallel (AST)",
    "parallel_multiple_function": "Parallel Multiple (AST)",
    "relevance": "Relevance",
}


def _add(p) -> None:
    p.add_argument("--data", required=True, help="directory holding en/, zhtw/ and possible_answer/ "
                   "(or BFCL_v3_*/BFCL_v4_* files)")
    p.add_argument("--lang", required=True, choices=("en", "zhtw"), help="question language")
    p.add_argument("--results", required=True,
                   help="directory of gorilla_openfunctions_v1_test_<category>_result.json files")
    p.add_argument("--decoder", required=True, choices=DECODER_CHOICES, help="how to read the model output: decision-token (<|answer|>/<|use_tool|>, Breeze-FC "
                   "blocks or a pythonic list), pythonic ([f(a=1)]), openai (BFCL FC-mode lists), json "
                   "(<|tool_call_begin|> blocks without a decision token)")
    p.add_argument("--underscore-to-dot", action="store_true",
                   help="function names were sent with '.' replaced by '_' (OpenAI-style APIs)")
    p.add_argument("--out", required=True, help="REPORT.json to write")
    p.add_argument("--subset", action="store_true",
                   help="score only the items the result files hold (a run on a slice); without it a "
                   "missing id is an error")


@dataclass
class ScoreBfclConfig:
    """Job step `score_bfcl`: the same as `raypipe score bfcl`."""

    data: str = input_paths()
    results: str = input_paths()
    out: str = output_path(kind="file")
    decoder: Literal["decision-token", "pythonic", "openai", "json"]
    lang: Literal["en", "zhtw"] = "zhtw"
    underscore_to_dot: bool = False
    subset: bool = False


def score_bfcl(cfg: ScoreBfclConfig, log=print) -> dict:
    """Score, write the report, log the summary table and the time; returns the report."""
    import time
    from pathlib import Path

    from raypipe import safejson
    from raypipe.eval.scoring import score_result_files

    started = time.perf_counter()
    report = score_result_files(cfg.data, cfg.lang, cfg.results, cfg.decoder, cfg.underscore_to_dot,
                                subset=cfg.subset)
    elapsed = time.perf_counter() - started
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(safejson.dumps(report, indent=1) + "\n", encoding="utf-8")  # model output may hold lone surrogates
    log(format_summary(report))
    total = sum(c["total"] for c in report["categories"].values())
    log(f"scored {total} items in {elapsed:.2f} s (checking alone {report['scoring_seconds']:.2f} s); report: {out}")
    return report


def _run(args) -> int:
    score_bfcl(ScoreBfclConfig(data=args.data, results=args.results, out=args.out, decoder=args.decoder,
                               lang=args.lang, underscore_to_dot=args.underscore_to_dot, subset=args.subset))
    return 0


def _step(cfg: ScoreBfclConfig, job) -> dict:
    report = score_bfcl(cfg)
    return {"ast_summary": report["ast_summary"], "relevance_detection": report["relevance_detection"],
            "relevance_detection_strict": report["relevance_detection_strict"], "out": cfg.out}


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def _ci(interval) -> str:
    return "" if not interval else f"[{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"


def format_summary(report: dict) -> str:
    """A small table: each category, then AST Summary and Relevance Detection (percent, 95% CI)."""
    rows = [("category", "accuracy %", "95% CI", "correct/total")]
    for category, entry in report["categories"].items():
        rows.append((CATEGORY_LABELS[category], _pct(entry["accuracy"]), _ci(entry["ci95"]),
                     f"{entry['correct']}/{entry['total']}"))
    rows.append(("AST Summary", _pct(report["ast_summary"]), _ci(report["ast_summary_ci95"]), ""))
    rows.append(("Relevance Detection", _pct(report["relevance_detection"]),
                 _ci(report["relevance_detection_ci95"]), ""))
    rows.append(("Relevance (strict)", _pct(report["relevance_detection_strict"]),
                 _ci(report["relevance_detection_strict_ci95"]), ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    if report.get("ast_summary_missing"):
        lines.append(f"(AST Summary needs all four AST categories; missing: {', '.join(report['ast_summary_missing'])})")
    return "\n".join(lines)


COMMANDS = [
    Command(
        path=("score", "bfcl"),
        help="score BFCL result files: per-category accuracy, AST Summary, Relevance Detection",
        add_arguments=_add,
        run=_run,
    )
]

STEPS = [
    Step(kind="score_bfcl", config=ScoreBfclConfig, run=_step,
         help="score existing BFCL result files into REPORT.json (as `raypipe score bfcl`)"),
]
