"""Job files: a YAML that chains typed steps, run by `raypipe run jobs/X.yaml`.

    name: quickstart
    ray: {address: null}          # null = in-process local Ray; "auto" joins a running cluster
    steps:
      - convert: {format: openai, inputs: [...], out: runs/quickstart/converted}
      - validate: {path: runs/quickstart/converted}

Each step is a one-key mapping from a registered step kind to its config. The whole file
is checked before anything runs, and every problem is reported at once.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raypipe.config import ConfigError, load_config, short_repr
from raypipe.errors import RaypipeError
from raypipe.commands import all_steps
from raypipe.registry import JobContext, Step


@dataclass
class RayConfig:
    address: str | None = None  # None: local in-process Ray; "auto" or "ray://host:10001"
    num_cpus: int | None = None  # local Ray only
    object_store_memory_mb: int | None = None  # local Ray only


@dataclass
class JobFile:
    name: str
    steps: list[dict[str, Any]]
    description: str = ""
    ray: RayConfig = field(default_factory=RayConfig)


@dataclass
class PlannedStep:
    label: str
    step: Step
    config: Any
    file: str | None = None  # the job file, and field path (relative to the step) -> line
    lines: dict[str, int] = field(default_factory=dict)
    raw: Any = None  # the step's data as given (its config is None when that did not load)

    @property
    def where(self) -> str:  # "steps[0].convert", as problems name it
        index, kind = self.label.split(":", 1)
        return f"steps[{index}].{kind}"


def load_job(path: str | Path) -> tuple[JobFile, list[PlannedStep]]:
    """The typed job and its steps. Every problem of the file (YAML duplicate keys, top-level
    keys, every step's keys and values) is collected and raised at once in a ConfigError."""
    job, planned, problems = _load_job(path)
    if problems:
        raise ConfigError(by_line(problems))
    return job, planned


def _load_job(path: str | Path) -> tuple[JobFile | None, list[PlannedStep], list[str]]:
    """(job, its steps, every problem found); a step whose config did not load has config None."""
    from raypipe import safeyaml
    from raypipe.io import fs

    path = Path(path)
    name = str(path)
    if not path.exists():
        raise RaypipeError(f"{name}: job file not found")
    if path.is_dir():
        raise RaypipeError(f"{name}: is a folder, not a job file")
    data, problems, lines = safeyaml.load(fs.read_text(name), name)
    if not isinstance(data, dict):
        raise ConfigError(problems + [f"{name}: a job file is a mapping with name and steps, got "
                                      f"{type(data).__name__}"])
    job = None
    try:
        job = load_config(JobFile, {**data, "steps": []}, where="", file=name, lines=lines)
    except ConfigError as exc:
        problems.extend(exc.problems)
    steps = data.get("steps")
    if steps is None:
        problems.append(f"{name}: steps: required key missing")
        steps = []
    elif not isinstance(steps, list):
        problems.append(f"{name}:{lines['.steps']}: steps: expected a list, got {type(steps).__name__}")
        steps = []
    registry = all_steps()
    planned: list[PlannedStep] = []
    for i, entry in enumerate(steps):
        where = f"steps[{i}]"
        at = f"{name}:{lines[f'.{where}']}" if f".{where}" in lines else name
        if not isinstance(entry, dict) or len(entry) != 1:
            problems.append(f"{at}: {where}: a step is a one-key mapping {{kind: config}}")
            continue
        (kind, cfg), = entry.items()
        if not isinstance(kind, str) or kind not in registry:
            problems.append(f"{at}: {where}: unknown step kind {short_repr(kind)} (known: {', '.join(sorted(registry))})")
            continue
        step_lines = {k[len(f".{where}.{kind}"):]: v for k, v in lines.items()
                      if k.startswith(f".{where}.{kind}")}
        try:
            config = load_config(registry[kind].config, cfg, where=f"{where}.{kind}", file=name,
                                 lines=step_lines)
        except ConfigError as exc:
            problems.extend(exc.problems)
            config = None
        planned.append(PlannedStep(label=f"{i}:{kind}", step=registry[kind], config=config, file=name,
                                   lines=step_lines, raw=cfg))
    if job is not None:
        job.steps = steps
    return job, planned, problems


def by_line(problems: list[str]) -> list[str]:
    """Problems in file order ("job.yaml:12: ..." by line; those without a line first)."""
    def line(problem: str) -> int:
        m = re.match(r"[^:]*:(\d+): ", problem)
        return int(m.group(1)) if m else 0

    return sorted(problems, key=line)


def check_job_file(path: str | Path) -> tuple[JobFile, list[PlannedStep]]:
    """`load_job` plus the checks that need the filesystem (`raypipe.preflight`): everything
    that can be checked without running. All problems at once, in a ConfigError."""
    from raypipe.preflight import check_job

    job, planned, problems = _load_job(path)
    problems += check_job(planned)  # a step whose config has problems still has its paths checked
    if problems:
        raise ConfigError(by_line(problems))
    return job, planned


def init_ray(ray_config: RayConfig, address_override: str | None = None) -> None:
    """The only place raypipe calls ray.init (jobs are thin: the entry point owns Ray)."""
    import ray

    if ray.is_initialized():
        return
    address = address_override or ray_config.address
    from raypipe.console import quiet_ray, quiet_ray_startup, ray_logging_level

    quiet_ray_startup()
    joined = bool(address or os.environ.get("RAY_ADDRESS"))  # `ray job submit` sets RAY_ADDRESS
    if address:
        ray.init(address=address, log_to_driver=True, logging_level=ray_logging_level())
    else:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True,
                                  "logging_level": ray_logging_level()}
        if ray_config.num_cpus is not None:
            kwargs["num_cpus"] = ray_config.num_cpus
        if ray_config.object_store_memory_mb is not None:
            kwargs["object_store_memory"] = ray_config.object_store_memory_mb * 1024 * 1024
        ray.init(**kwargs)
    quiet_ray()
    # One line instead of Ray's start-up notices: where this job runs.
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    cpus, gpus = ray.cluster_resources().get("CPU", 0), ray.cluster_resources().get("GPU", 0)
    where = f"joined the Ray cluster at {ray.get_runtime_context().gcs_address}" if joined else "started a local Ray"
    print(f"[raypipe] {where}: {nodes} node(s), {cpus:g} CPUs, {gpus:g} GPUs", flush=True)


def run_job(path: str | Path, address: str | None = None) -> JobContext:
    from raypipe.console import heartbeat

    job, planned = check_job_file(path)  # a bad path fails now, not after an hour of step 1
    init_ray(job.ray, address)
    ctx = JobContext(name=job.name, job_file=str(path))
    print(f"[raypipe] job {job.name!r}: {len(planned)} step(s)", flush=True)
    for p in planned:
        started = time.monotonic()
        print(f"[raypipe] step {p.label} ...", flush=True)
        with heartbeat(f"step {p.label}"):
            summary = p.step.run(p.config, ctx) or {}
        ctx.results[p.label] = summary
        took = time.monotonic() - started
        print(f"[raypipe] step {p.label} done in {took:.1f}s: {json.dumps(summary, default=str)}", flush=True)
    print(f"[raypipe] job {job.name!r} finished", flush=True)
    return ctx
