"""`raypipe run JOB.yaml`: run a job file locally or on a cluster."""

from __future__ import annotations

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


def _run(args) -> int:
    from raypipe.jobs import check_job_file, run_job

    if args.check:
        job, planned = check_job_file(args.job)
        print(f"{args.job}: ok ({len(planned)} steps: {', '.join(p.label for p in planned)})")
        return 0
    run_job(args.job, address=args.address)
    return 0


COMMANDS = [Command(path=("run",), help="run a job file (jobs/*.yaml)", add_arguments=_add, run=_run)]
