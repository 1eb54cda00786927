"""How command modules plug into the CLI and into job files (the types; the discovery of the
modules in raypipe/commands/ is `raypipe.commands.all_commands` / `all_steps`).

Every module in `raypipe/commands/` may define:

    COMMANDS = [Command(path=("synth", "reasoning"), help=..., add_arguments=fn, run=fn)]
    STEPS = [Step(kind="synth_reasoning", config=ReasoningConfig, run=fn)]

`run(args) -> int | None` gets the parsed argparse namespace; `Step.run(config, job) -> dict`
gets the typed config and a `JobContext` and returns a small summary for the job log.
Command modules must stay cheap to import: heavy imports go inside the functions.
"""

from __future__ import annotations

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
