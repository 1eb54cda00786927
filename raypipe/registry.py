"""How command modules plug into the CLI and into job files.

Every module in `raypipe/commands/` may define:

    COMMANDS = [Command(path=("synth", "reasoning"), help=..., add_arguments=fn, run=fn)]
    STEPS = [Step(kind="synth_reasoning", config=ReasoningConfig, run=fn)]

`run(args) -> int | None` gets the parsed argparse namespace; `Step.run(config, job) -> dict`
gets the typed config and a `JobContext` and returns a small summary for the job log.
Command modules must stay cheap to import: heavy imports go inside the functions.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]
    help: str
    add_arguments: Callable[[Any], None]
    run: Callable[[Any], int | None]
    description: str | None = None


@dataclass(frozen=True)
class Step:
    kind: str
    config: type
    run: Callable[[Any, "JobContext"], dict]
    help: str = ""


@dataclass
class JobContext:
    name: str
    job_file: str
    results: dict[str, dict] = field(default_factory=dict)  # step label -> summary


def command_modules() -> list[Any]:
    import raypipe.commands as pkg

    return [
        importlib.import_module(f"{pkg.__name__}.{m.name}")
        for m in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name)
        if not m.name.startswith("_")
    ]


def all_commands() -> list[Command]:
    return [c for mod in command_modules() for c in getattr(mod, "COMMANDS", [])]


def all_steps() -> dict[str, Step]:
    steps: dict[str, Step] = {}
    for mod in command_modules():
        for step in getattr(mod, "STEPS", []):
            if step.kind in steps:
                raise RuntimeError(f"step kind {step.kind!r} registered twice ({mod.__name__})")
            steps[step.kind] = step
    return steps
