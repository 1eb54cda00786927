"""`raypipe run JOB.yaml`: run a job file locally or on a cluster."""

from __future__ import annotations

import argparse

from raypipe.registry import Command


def _add(p) -> None:
    p.add_argument("job", help="job YAML file (see jobs/)")
    p.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join ('auto', 'ray://host:10001'); default: the job file's, "
        "else an in-process local Ray",
    )
    p.add_argument("--check", action="store_true",
                   help="check everything that can be checked without running (keys, types, ranges, "
                   "URLs, key variable names, inputs exist, outputs writable and not inputs); "
                   "report every problem, exit 2 if there is any")
    p.add_argument("--arm", default=None, help=argparse.SUPPRESS)  # internal: one arm's driver (study runner)
    p.add_argument("--scale", default=None,
                   help="study files only (a top-level `study:` key): run the scale of that name kept in "
                   "the file, e.g. `tiny` (CPU, tiny model, mini data); default: the paper's full scale")


def _run(args) -> int:
    from raypipe.errors import RaypipeError
    from raypipe.jobs import check_job_file, run_job
    from raypipe.study.spec import is_study_file

    if is_study_file(args.job):
        return _run_study(args)
    if args.scale is not None:
        raise RaypipeError(f"{args.job}: --scale is for study files (a top-level `study:` key); this is a job file")
    if args.check:
        job, planned = check_job_file(args.job)
        print(f"{args.job}: ok ({len(planned)} steps: {', '.join(p.label for p in planned)})")
        return 0
    run_job(args.job, address=args.address)
    return 0


def _run_study(args) -> int:
    from raypipe.errors import RaypipeError
    from raypipe.study.runner import run_study
    from raypipe.study.spec import check_study, load_study

    study = load_study(args.job, args.scale)
    check_study(study)  # every arm's steps typed and their paths checked before anything runs
    if args.check:
        steps = sorted({s.fingerprint for a in study.arms for s in a.steps})
        print(f"{args.job}: ok (study {study.name}, {study.scale} scale: {len(study.arms)} arms, "
              f"{len(steps)} distinct steps)")
        return 0
    arm = getattr(args, "arm", None)
    if arm is not None and arm not in {a.name for a in study.arms}:
        raise RaypipeError(f"{args.job}: --arm: no arm named {arm!r}")
    state = run_study(study, address=args.address, only_arm=arm)
    if arm is not None:
        return 0 if state["arms"][arm]["status"] == "done" else 1
    return 0 if all(a["status"] == "done" for a in state["arms"].values()) else 1


COMMANDS = [Command(path=("run",), help="run a job file (jobs/*.yaml)", add_arguments=_add, run=_run)]
