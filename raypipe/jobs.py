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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raypipe.config import ConfigError, load_config
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


def load_job(path: str | Path) -> tuple[JobFile, list[PlannedStep]]:
    import yaml

    path = Path(path)
    if not path.exists():
        raise RaypipeError(f"{path}: job file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RaypipeError(f"{path}: not valid YAML: {exc}") from None
    job = load_config(JobFile, data, where=str(path))
    registry = all_steps()
    problems: list[str] = []
    planned: list[PlannedStep] = []
    for i, entry in enumerate(job.steps):
        where = f"{path}: steps[{i}]"
        if not isinstance(entry, dict) or len(entry) != 1:
            problems.append(f"{where}: a step is a one-key mapping {{kind: config}}")
            continue
        (kind, cfg), = entry.items()
        if kind not in registry:
            problems.append(f"{where}: unknown step kind {kind!r} (known: {', '.join(sorted(registry))})")
            continue
        try:
            config = load_config(registry[kind].config, cfg, where=f"{where}.{kind}")
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        planned.append(PlannedStep(label=f"{i}:{kind}", step=registry[kind], config=config))
    if problems:
        raise ConfigError(problems)
    return job, planned


def init_ray(ray_config: RayConfig, address_override: str | None = None) -> None:
    """The only place raypipe calls ray.init (jobs are thin: the entry point owns Ray)."""
    import ray

    if ray.is_initialized():
        return
    address = address_override or ray_config.address
    if address:
        ray.init(address=address, log_to_driver=True)
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    if ray_config.num_cpus is not None:
        kwargs["num_cpus"] = ray_config.num_cpus
    if ray_config.object_store_memory_mb is not None:
        kwargs["object_store_memory"] = ray_config.object_store_memory_mb * 1024 * 1024
    ray.init(**kwargs)


def run_job(path: str | Path, address: str | None = None) -> JobContext:
    job, planned = load_job(path)
    init_ray(job.ray, address)
    ctx = JobContext(name=job.name, job_file=str(path))
    print(f"[raypipe] job {job.name!r}: {len(planned)} step(s)", flush=True)
    for p in planned:
        started = time.monotonic()
        print(f"[raypipe] step {p.label} ...", flush=True)
        summary = p.step.run(p.config, ctx) or {}
        ctx.results[p.label] = summary
        took = time.monotonic() - started
        print(f"[raypipe] step {p.label} done in {took:.1f}s: {json.dumps(summary, default=str)}", flush=True)
    print(f"[raypipe] job {job.name!r} finished", flush=True)
    return ctx
