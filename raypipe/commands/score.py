"""`raypipe score bfcl`: score BFCL result files (from raypipe or any other tool)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from raypipe.config import input_paths, output_path
from raypipe.registry import Command, Step

DECODER_CHOICES = ("decision-token", "pythonic", "openai", "json")
V1_LABELS = {
    "simple": "Simple (AST)",
    "multiple_function": "Multiple (AST)",
    "parallel_function": "Parallel (AST)",
    "parallel_multiple_function": "Parallel Multiple (AST)",
    "relevance": "Relevance",
}
SCORER_VERSION = "raypipe-bfcl-3"  # bump when a verdict rule changes (recorded in every manifest)


def _add(p) -> None:
    p.add_argument("--data", required=True, help="directory holding en/, zhtw/ and possible_answer/ "
                   "(V1 / zh-TW) and/or BFCL_v3_*.json / BFCL_v4_*.json with possible_answer/")
    p.add_argument("--lang", choices=("en", "zhtw"), default=None,
                   help="question language: required for V1 / zh-TW data; V3/V4 data is English (en)")
    p.add_argument("--results", required=True,
                   help="directory of result files: BFCL_v4_<category>_result.json, BFCL_v3_..., or "
                   "gorilla_openfunctions_v1_test_<category>_result.json; V3 and V4 files may share it")
    p.add_argument("--decoder", required=True, choices=DECODER_CHOICES, help="how to read the model output: decision-token (<|answer|>/<|use_tool|>, Breeze-FC "
                   "blocks or a pythonic list), pythonic ([f(a=1)]), openai (BFCL FC-mode lists), json "
                   "(<|tool_call_begin|> blocks without a decision token)")
    p.add_argument("--rules", choices=("v1", "upstream"), default=None,
                   help="which reference checker's rules: v1 (the zh-TW leaderboard) or upstream (bfcl_eval "
                   "2026.3.23, prompt mode); default: v1 for V1 data, upstream for V3/V4")
    p.add_argument("--underscore-to-dot", action="store_true",
                   help="function names were sent with '.' replaced by '_' (OpenAI-style APIs)")
    p.add_argument("--out", required=True, help="REPORT.json to write (manifest.json goes beside it)")
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
    lang: Literal["en", "zhtw"] | None = "zhtw"  # None: V3/V4 only (English)
    underscore_to_dot: bool = False
    subset: bool = False
    rules: Literal["v1", "upstream"] | None = None  # None: v1 for V1 data, upstream for V3/V4


def score_bfcl(cfg: ScoreBfclConfig, log=print) -> dict:
    """Score, write the report and its manifest, log the summary table and the time."""
    import time
    from pathlib import Path

    from raypipe import safejson
    from raypipe.errors import RaypipeError
    from raypipe.eval.manifest import run_manifest, write_manifest
    from raypipe.eval.scoring import score_result_files

    started = time.perf_counter()
    out = Path(cfg.out)
    if out.is_dir():
        raise RaypipeError(f"--out {out} is a directory; give the REPORT.json file to write")
    report = score_result_files(cfg.data, cfg.lang, cfg.results, cfg.decoder, cfg.underscore_to_dot,
                                subset=cfg.subset, rules=cfg.rules)
    elapsed = time.perf_counter() - started
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(safejson.dumps(report, indent=1) + "\n", encoding="utf-8")  # model output may hold lone surrogates
        manifest = run_manifest(
            kind="score_bfcl", datasets=score_inputs(cfg.data, cfg.results, report), scorer=scorer_info(report),
            extra={"decoder": cfg.decoder, "underscore_to_dot": cfg.underscore_to_dot, "lang": cfg.lang,
                   "results_dir": str(cfg.results)})
        write_manifest(str(out.parent), manifest)
    except OSError as exc:
        raise RaypipeError(f"cannot write {out}: {exc.strerror or exc}") from None
    log(format_summary(report))
    total = sum(c["total"] for s in report["suites"].values() for c in s["categories"].values())
    log(f"scored {total} items in {elapsed:.2f} s (checking alone {report['scoring_seconds']:.2f} s); report: {out}")
    return report


def scorer_info(report: dict) -> dict:
    return {"name": "raypipe.eval.scoring", "version": SCORER_VERSION, "decoder": report["decoder"],
            "rules": {v: s["rules"] for v, s in report["suites"].items()},
            "references": {"v1": "zh-TW leaderboard eval_checker (BFCL V1 checker)",
                           "upstream": "bfcl-eval 2026.3.23, prompt mode, python"}}


def score_inputs(data_dir: str, results_dir: str, report: dict) -> list[str]:
    """The files a score depends on: the scored result files and the benchmark files they used."""
    from pathlib import Path

    from raypipe.eval.bfcl_categories import KINDS, is_ast_kind, question_file_name
    from raypipe.eval.bfcl_data import question_files

    paths = []
    results = Path(results_dir)
    lang = report.get("lang") or "en"
    for version, suite in report["suites"].items():
        questions = question_files(Path(data_dir), lang, version)
        for category in suite["categories"]:
            paths.append(str(results / _result_name(version, category)))
            question = questions.get(category)
            if question is not None:
                paths.append(str(question))
                answer = question.parent / "possible_answer" / question_file_name(version, category)
                if not answer.is_file():
                    answer = Path(data_dir) / "possible_answer" / question_file_name(version, category)
                if is_ast_kind(KINDS[version][category]) and answer.is_file():
                    paths.append(str(answer))
    return paths


def _result_name(version: str, category: str) -> str:
    from raypipe.eval.bfcl_data import result_file_name

    return result_file_name(category, version)


def _run(args) -> int:
    score_bfcl(ScoreBfclConfig(data=args.data, results=args.results, out=args.out, decoder=args.decoder,
                               lang=args.lang, underscore_to_dot=args.underscore_to_dot, subset=args.subset,
                               rules=args.rules))
    return 0


def _step(cfg: ScoreBfclConfig, job) -> dict:
    report = score_bfcl(cfg)
    overall = (report.get("upstream") or {}).get("overall")
    return {"ast_summary": report.get("ast_summary"), "relevance_detection": report.get("relevance_detection"),
            "relevance_detection_strict": report.get("relevance_detection_strict"),
            "overall": overall["accuracy"] if overall else None, "out": cfg.out}


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def _ci(interval) -> str:
    return "" if not interval else f"[{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"


def format_summary(report: dict) -> str:
    """Per suite: each category, the seed paper's two figures and upstream's aggregates
    (percent, 95% CI), then the files left out."""
    blocks = [_format_suite(suite, len(report["suites"]) > 1) for suite in report["suites"].values()]
    if report.get("not_scored"):
        lines = [f"not scored ({len(report['not_scored'])} files):"]
        lines += [f"  {n['file']}: {n['reason']}" for n in report["not_scored"]]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _format_suite(suite: dict, titled: bool) -> str:
    version = suite["version"]
    rows = [("category", "accuracy %", "95% CI", "correct/total")]
    for category, entry in suite["categories"].items():
        label = V1_LABELS[category] if version == "v1" else category
        rows.append((label, _pct(entry["accuracy"]), _ci(entry["ci95"]), f"{entry['correct']}/{entry['total']}"))
    rows.append(("AST Summary", _pct(suite["ast_summary"]), _ci(suite["ast_summary_ci95"]), ""))
    rows.append(("Relevance Detection", _pct(suite["relevance_detection"]), _ci(suite["relevance_detection_ci95"]), ""))
    rows.append(("Relevance (strict)", _pct(suite["relevance_detection_strict"]),
                 _ci(suite["relevance_detection_strict_ci95"]), ""))
    upstream = suite["upstream"]
    for key, label in (("non_live_ast", "upstream: non-live AST"), ("live_ast", "upstream: live AST"),
                       ("irrelevance", "upstream: irrelevance"), ("relevance", "upstream: relevance"),
                       ("overall", "upstream: overall")):
        part = upstream.get(key)
        if part is not None:
            count = f"{part['correct']}/{part['total']}" if "correct" in part else ""
            rows.append((label, _pct(part["accuracy"]), _ci(part["ci95"]), count))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [f"BFCL {version} (rules: {suite['rules']})"] if titled or version != "v1" else []
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    if suite.get("ast_summary_missing"):
        lines.append(f"(AST Summary needs all four non-live AST categories; missing: {', '.join(suite['ast_summary_missing'])})")
    overall = upstream.get("overall")
    if overall is not None:
        lines.append(f"(upstream overall over the parts scored, weights {overall['weights']}; not scored: "
                     f"{', '.join(overall['parts_not_scored'])})")
    return "\n".join(lines)


COMMANDS = [
    Command(
        path=("score", "bfcl"),
        help="score BFCL result files (V1/zh-TW, V3, V4): per-category accuracy, AST Summary, Relevance "
             "Detection, upstream's aggregates",
        add_arguments=_add,
        run=_run,
    )
]

STEPS = [
    Step(kind="score_bfcl", config=ScoreBfclConfig, run=_step,
         help="score existing BFCL result files into REPORT.json (as `raypipe score bfcl`)"),
]
