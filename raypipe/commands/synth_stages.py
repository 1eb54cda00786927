"""Every stage in `raypipe/stages/` as a command (`raypipe synth <name>`) and a job step
(`synth_<name>`), with flags made from its config dataclass (`raypipe.commands._args`)."""

from __future__ import annotations

import json

from raypipe.registry import Command, Step


def _make_command(stage_cls) -> Command:
    def add_arguments(p) -> None:
        from raypipe.commands._args import add_config_arguments

        add_config_arguments(p, stage_cls.config_class)

    def run(args) -> int:
        from raypipe.commands._args import config_data
        from raypipe.config import load_config
        from raypipe.jobs import RayConfig, init_ray

        cfg = load_config(stage_cls.config_class, config_data(args, stage_cls.config_class),
                          where=" ".join(stage_cls.command))
        init_ray(RayConfig())
        print(json.dumps(_run(stage_cls, cfg), indent=2, default=str))
        return 0

    return Command(path=stage_cls.command, help=stage_cls.help, add_arguments=add_arguments, run=run)


def _run(stage_cls, cfg) -> dict:
    from raypipe.stages._run import run_configured

    return run_configured(stage_cls(cfg))


def _make_step(stage_cls) -> Step:
    def run(config, job) -> dict:
        return _run(stage_cls, config)

    return Step(kind=stage_cls.step, config=stage_cls.config_class, run=run, help=stage_cls.help)


def _stages() -> list:
    from raypipe.stages import stage_classes

    return stage_classes()


COMMANDS = [_make_command(s) for s in _stages()]
STEPS = [_make_step(s) for s in _stages() if s.step]
