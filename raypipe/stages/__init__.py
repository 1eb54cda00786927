"""Synthesis stages that are commands and job steps. One module per stage; each defines one
`raypipe.llm.LLMStage` subclass with `command`, `step`, `help` and `config_class`, and is
found here by name: adding a stage is adding a file (see docs/synth.md, "a new stage").

Modules here import only light things at the top (the CLI imports them to build its parser).
"""

from __future__ import annotations

import importlib
import pkgutil


def stage_classes() -> list[type]:
    from raypipe.llm.stage import LLMStage

    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, LLMStage) and value is not LLMStage
                    and value.__module__ == module.__name__ and value.command):
                found.append(value)
    return found
