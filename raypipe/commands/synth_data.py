"""`raypipe synth mix` and its job step `synth_mix`: a training mixture from named datasets.
(The per-row stages, `synth reasoning|translate|negatives`, come from raypipe/stages/ through
`synth_stages.py`.) Cheap to import: Ray loads only when it runs."""

from __future__ import annotations

from raypipe.registry import Command, Step
from raypipe.synth.mix import MixConfig


def _init_ray() -> None:
    from raypipe.jobs import RayConfig, init_ray

    init_ray(RayConfig())


def _config(cls, data: dict, where: str):
    from raypipe.config import load_config

    return load_config(cls, data, where=where)


def _print_summary(summary: dict) -> None:
    import json

    print(json.dumps(summary, indent=2, default=str))


# -- mix ----------------------------------------------------------------------------------------


def _add_mix(p) -> None:
    p.add_argument("--source", action="append", required=True, metavar="NAME=PATH[,PATH...]",
                   help="a named dataset (repeat; earlier sources win duplicate ids)")
    p.add_argument("--count", action="append", default=[], metavar="NAME=N", help="take N rows of NAME")
    p.add_argument("--fraction", action="append", default=[], metavar="NAME=F", help="take a fraction F of NAME")
    p.add_argument("--share", action="append", default=[], metavar="NAME=F",
                   help="NAME is a fraction F of --total rows")
    p.add_argument("--total", type=int, default=None, help="mixture size (for --share)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    from raypipe.errors import RaypipeError

    out = {}
    for v in values:
        name, sep, value = v.partition("=")
        if not sep or not name or not value:
            raise RaypipeError(f"{flag} {v!r}: expected NAME=VALUE")
        out[name] = value
    return out


def _run_mix(args) -> int:
    from raypipe.errors import RaypipeError
    from raypipe.synth.mix import run_mix

    sources = _pairs(args.source, "--source")
    amounts: dict[str, dict] = {name: {} for name in sources}
    for flag, key, kind in (("--count", "count", int), ("--fraction", "fraction", float), ("--share", "share", float)):
        for name, value in _pairs(getattr(args, key), flag).items():
            if name not in sources:
                raise RaypipeError(f"{flag} {name}=...: no --source named {name!r}")
            try:
                amounts[name][key] = kind(value)
            except ValueError:
                raise RaypipeError(f"{flag} {name}={value}: not a number") from None
    cfg = _config(MixConfig, {
        "sources": [{"name": n, "inputs": p.split(","), **amounts[n]} for n, p in sources.items()],
        "out": args.out, "seed": args.seed, "total": args.total,
    }, "synth mix")
    _init_ray()
    _print_summary(run_mix(cfg))
    return 0


# -- job steps ----------------------------------------------------------------------------------


def _step(runner_name: str, module: str):
    def run(config, job):
        import importlib

        return getattr(importlib.import_module(module), runner_name)(config)

    return run


COMMANDS = [
    Command(path=("synth", "mix"), help="a training mixture from named datasets (counts, fractions, shares)",
            add_arguments=_add_mix, run=_run_mix),
]

STEPS = [
    Step(kind="synth_mix", config=MixConfig, run=_step("run_mix", "raypipe.synth.mix"),
         help="training mixture from named datasets"),
]

__all__ = ["COMMANDS", "STEPS"]
