"""`raypipe synth reasoning|translate|negatives|mix`: the paper's data pipelines.

Each command has a job step of the same config (`synth_reasoning`, `synth_translate`,
`synth_negatives`, `synth_mix`), so a YAML job can chain them. Cheap to import: the stage
modules load Ray and the LLM engine only when they run.
"""

from __future__ import annotations

from raypipe.registry import Command, Step
from raypipe.synth.mix import MixConfig
from raypipe.synth.negatives import NegativesConfig
from raypipe.synth.reasoning import ReasoningConfig
from raypipe.synth.translate import TranslateConfig


def _init_ray() -> None:
    from raypipe.jobs import RayConfig, init_ray

    init_ray(RayConfig())


def _config(cls, data: dict, where: str):
    from raypipe.config import load_config

    return load_config(cls, data, where=where)


# -- shared arguments -------------------------------------------------------------------------


def _add_io(p) -> None:
    p.add_argument("inputs", nargs="+", help="canonical sample files, globs or dataset folders")
    p.add_argument("--out", required=True, help="output dataset folder (local or pyarrow URI)")


def _add_llm(p) -> None:
    g = p.add_argument_group("teacher LLM (any OpenAI-compatible endpoint)")
    g.add_argument("--base-url", default=None, help="endpoint, e.g. http://vllm:8000/v1")
    g.add_argument("--model", default=None)
    g.add_argument("--api-key-env", default=None, help="name of the env var holding the API key")
    g.add_argument("--concurrency", type=int, default=None, help="requests in flight per actor")
    g.add_argument("--num-actors", type=int, default=None)
    g.add_argument("--rpm", type=float, default=None, help="requests per minute, whole job")
    g.add_argument("--tpm", type=float, default=None, help="tokens per minute, whole job")
    g.add_argument("--cache-dir", default=None, help="persistent request cache (dir or URI)")
    g.add_argument("--max-reasks", type=int, default=None)
    g.add_argument("--temperature", type=float, default=None)
    g.add_argument("--dry-run", action="store_true",
                   help="render every request; print request count, tokens and cost; call nothing")


_LLM_ARGS = {
    "base_url": "base_url", "model": "model", "api_key_env": "api_key_env",
    "concurrency": "concurrency", "num_actors": "num_actors", "rpm": "requests_per_minute",
    "tpm": "tokens_per_minute", "cache_dir": "cache_dir", "max_reasks": "max_reasks",
    "temperature": "temperature",
}


def _llm(args) -> dict:
    return {key: getattr(args, arg) for arg, key in _LLM_ARGS.items() if getattr(args, arg) is not None}


def _print_summary(summary: dict) -> None:
    import json

    print(json.dumps(summary, indent=2, default=str))


# -- reasoning --------------------------------------------------------------------------------


def _add_reasoning(p) -> None:
    _add_io(p)
    p.add_argument("--no-few-shot", action="store_true", help="leave out the worked examples")
    p.add_argument("--overwrite", action="store_true", help="re-explain turns that already have reasoning")
    p.add_argument("--any-function", action="store_true",
                   help="accept a reason that names only some of the called functions")
    p.add_argument("--reject-without-calls", action="store_true",
                   help="reject samples with no tool call (default: they pass through unchanged)")
    _add_llm(p)


def _run_reasoning(args) -> int:
    from raypipe.synth.reasoning import run_reasoning

    cfg = _config(ReasoningConfig, {
        "inputs": args.inputs, "out": args.out, "llm": _llm(args), "few_shot": not args.no_few_shot,
        "overwrite": args.overwrite, "require_all_functions": not args.any_function,
        "keep_without_calls": not args.reject_without_calls,
        "dry_run": args.dry_run,
    }, "synth reasoning")
    _init_ray()
    _print_summary(run_reasoning(cfg))
    return 0


# -- translate --------------------------------------------------------------------------------


def _add_translate(p) -> None:
    _add_io(p)
    p.add_argument("--lang", default="zh-TW", help="target language code")
    p.add_argument("--lang-name", default=None, help="target language name (needed for codes raypipe does not know)")
    p.add_argument("--max-chunk-chars", type=int, default=None, help="turns per request are cut at this JSON size")
    _add_llm(p)


def _run_translate(args) -> int:
    from raypipe.synth.translate import run_translate

    data = {"inputs": args.inputs, "out": args.out, "llm": _llm(args), "target_lang": args.lang,
            "language_name": args.lang_name, "dry_run": args.dry_run}
    if args.max_chunk_chars is not None:
        data["max_chunk_chars"] = args.max_chunk_chars
    cfg = _config(TranslateConfig, data, "synth translate")
    _init_ray()
    _print_summary(run_translate(cfg))
    return 0


# -- negatives --------------------------------------------------------------------------------


def _add_negatives(p) -> None:
    _add_io(p)
    p.add_argument("--tool-pool", default=None, help="JSON list of function specs for distractors "
                   "(default: raypipe's shipped pool)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-functions", type=int, default=2, help="add distractors until this many remain")
    p.add_argument("--keep-lookalikes", action="store_true",
                   help="keep functions whose names look like a called one's")
    p.add_argument("--fraction", type=float, default=1.0, help="seeded share of the inputs to use")
    p.add_argument("--teacher-answer", action="store_true",
                   help="target: a teacher's direct answer instead of the decision token alone")
    _add_llm(p)


def _run_negatives(args) -> int:
    from raypipe.synth.negatives import run_negatives

    cfg = _config(NegativesConfig, {
        "inputs": args.inputs, "out": args.out, "tool_pool": args.tool_pool, "seed": args.seed,
        "min_functions": args.min_functions, "drop_lookalikes": not args.keep_lookalikes,
        "fraction": args.fraction, "teacher_answer": args.teacher_answer, "llm": _llm(args),
        "dry_run": args.dry_run,
    }, "synth negatives")
    _init_ray()
    _print_summary(run_negatives(cfg))
    return 0


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
    Command(path=("synth", "reasoning"), help="add chain-of-thought reasons to tool-call turns (teacher LLM)",
            add_arguments=_add_reasoning, run=_run_reasoning),
    Command(path=("synth", "translate"), help="translate samples, keeping every function-call detail intact",
            add_arguments=_add_translate, run=_run_translate),
    Command(path=("synth", "negatives"), help="non-function-call samples: remove the called functions",
            add_arguments=_add_negatives, run=_run_negatives),
    Command(path=("synth", "mix"), help="a training mixture from named datasets (counts, fractions, shares)",
            add_arguments=_add_mix, run=_run_mix),
]

STEPS = [
    Step(kind="synth_reasoning", config=ReasoningConfig, run=_step("run_reasoning", "raypipe.synth.reasoning"),
         help="chain-of-thought reasons for tool-call turns"),
    Step(kind="synth_translate", config=TranslateConfig, run=_step("run_translate", "raypipe.synth.translate"),
         help="structure-preserving translation"),
    Step(kind="synth_negatives", config=NegativesConfig, run=_step("run_negatives", "raypipe.synth.negatives"),
         help="non-function-call (relevance) samples"),
    Step(kind="synth_mix", config=MixConfig, run=_step("run_mix", "raypipe.synth.mix"),
         help="training mixture from named datasets"),
]

__all__ = ["COMMANDS", "STEPS"]
