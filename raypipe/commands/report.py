"""`raypipe report RUN_DIR... --out DIR`: compare evaluation runs (JSON, Markdown, PNG)."""

from __future__ import annotations

from dataclasses import dataclass

from raypipe.config import input_paths, output_path
from raypipe.registry import Command, Step


@dataclass
class ReportConfig:
    runs: list[str] = input_paths()  # run directories holding REPORT.json and/or MTBENCH.json
    out: str = output_path()
    names: list[str] | None = None  # display names, one per run


def _step(cfg: ReportConfig, job) -> dict:
    from raypipe.eval.report import write_report

    return write_report(cfg.runs, cfg.out, names=cfg.names)


def _add(p) -> None:
    p.add_argument("runs", nargs="*", metavar="RUN_DIR",
                   help="run directories holding REPORT.json and/or MTBENCH.json")
    p.add_argument("--study", default=None, metavar="DIR",
                   help="a study's out folder (raypipe run STUDY.yaml): its table beside the paper's, "
                   "95%% CIs and paired tests; writes DIR/report/ unless --out")
    p.add_argument("--out", default=None, help="where report.json, report.md and report.png go")
    p.add_argument("--names", nargs="+", default=None, help="display names, one per RUN_DIR")


def _run(args) -> int:
    from raypipe.errors import RaypipeError
    from raypipe.eval.report import write_report

    if args.study is not None:
        if args.runs:
            raise RaypipeError("report: give RUN_DIR... or --study DIR, not both")
        from raypipe.study.report import write_study_report

        written = write_study_report(args.study, args.out)
        print(open(written["markdown"], encoding="utf-8").read())
        print(f"wrote {written['json']}, {written['markdown']}, {written['png']}")
        return 0
    if not args.runs or args.out is None:
        raise RaypipeError("report: give RUN_DIR... and --out DIR (or --study DIR)")

    written = write_report(args.runs, args.out, names=args.names)
    print(open(written["markdown"], encoding="utf-8").read())
    print(f"wrote {written['json']}, {written['markdown']}, {written['png']}")
    return 0


COMMANDS = [Command(path=("report",), help="compare evaluation runs: JSON + Markdown table + PNG chart",
                    add_arguments=_add, run=_run)]

STEPS = [Step(kind="eval_report", config=ReportConfig, run=_step, help="compare evaluation runs")]
