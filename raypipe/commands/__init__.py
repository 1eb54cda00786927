"""The command modules: each may define `COMMANDS` (CLI) and `STEPS` (job steps); they are
found here by name (see `raypipe.registry` for the types). Modules starting with `_` are
helpers, not commands."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from raypipe.registry import Command, Step


def command_modules() -> list[Any]:
    return [
        importlib.import_module(f"{__name__}.{m.name}")
        for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
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
