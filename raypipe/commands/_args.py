"""Command-line flags made from a config dataclass, so a job step and its command take the same
settings from one place (the dataclass: types, defaults, help).

    inputs: list[str]            -> positional INPUTS...
    out: str                     -> --out (required)
    seed: int = 0                -> --seed N
    few_shot: bool = True        -> --no-few-shot        (metadata "flag" renames a flag)
    overwrite: bool = False      -> --overwrite
    llm: LLMConfig               -> an argument group: --base-url, --model, --rpm, ...

Help comes from `field(metadata={"help": ...})`. Only flags the user gave are passed on; the
dataclass's defaults and checks (via `raypipe.config.load_config`) do the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Literal, Union

# LLMConfig fields offered as flags, with the short names the docs use.
LLM_FLAGS = {
    "base_url": "--base-url", "model": "--model", "api_key_env": "--api-key-env",
    "concurrency": "--concurrency", "num_actors": "--num-actors", "batch_size": "--batch-size",
    "requests_per_minute": "--rpm", "tokens_per_minute": "--tpm", "temperature": "--temperature",
    "max_tokens": "--max-tokens", "cache_dir": "--cache-dir", "max_reasks": "--max-reasks",
    "max_retries": "--max-retries", "timeout_s": "--timeout-s", "max_error_rate": "--max-error-rate",
}
LLM_HELP = {
    "base_url": "endpoint, e.g. http://vllm:8000/v1", "api_key_env": "name of the env var holding the API key",
    "concurrency": "requests in flight per actor", "requests_per_minute": "requests per minute, shared by "
    "every job using this endpoint, model and key", "tokens_per_minute": "tokens per minute (shared likewise)",
    "cache_dir": "persistent request cache (dir or URI)", "batch_size": "rows per batch (the commit unit)",
}


def _scalar(tp: Any) -> tuple[Any, bool]:
    """(the scalar type inside Optional[...], optional?)."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), True
    return tp, False


def _default(f) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _with_default(helptext: str | None, default: Any) -> str:
    text = helptext or ""
    if default is dataclasses.MISSING or default is None or isinstance(default, bool):
        return text
    return f"{text} (default: {default})".strip()


def add_config_arguments(parser, cls: type, *, positional: str | None = "inputs", llm_field: str = "llm") -> None:
    """Flags absent from the command line stay absent (argparse.SUPPRESS): the dataclass
    default applies, and it is what --help shows."""
    hints = typing.get_type_hints(cls)
    quiet = argparse.SUPPRESS
    for f in dataclasses.fields(cls):
        tp, _ = _scalar(hints[f.name])
        meta = f.metadata or {}
        default = _default(f)
        helptext = meta.get("help")
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        if f.name == positional:
            parser.add_argument(f.name, nargs="+", help=helptext or "input files, globs or dataset folders")
        elif f.name == "out":
            parser.add_argument("--out", required=True, default=quiet,
                                help=helptext or "output dataset folder (local or URI)")
        elif f.name == llm_field and dataclasses.is_dataclass(tp):
            add_llm_arguments(parser, llm_field)
        elif tp is bool:
            on = bool(default) if default is not dataclasses.MISSING else False
            if not meta.get("flag"):
                flag = ("--no-" if on else "--") + f.name.replace("_", "-")
            parser.add_argument(flag, dest=f.name, action="store_false" if on else "store_true",
                                default=quiet, help=helptext)
        elif tp in (int, float, str) or typing.get_origin(tp) is Literal:
            kwargs: dict[str, Any] = {"dest": f.name, "default": quiet,
                                      "help": _with_default(helptext, default),
                                      "required": default is dataclasses.MISSING}
            if typing.get_origin(tp) is Literal:
                kwargs["choices"] = list(typing.get_args(tp))
            else:
                kwargs["type"] = tp
            parser.add_argument(flag, **kwargs)
        elif typing.get_origin(tp) is list:
            parser.add_argument(flag, dest=f.name, action="append", default=quiet, help=helptext)
        # other types (nested configs, mappings) are set in job files only


def add_llm_arguments(parser, dest: str = "llm", required: tuple[str, ...] = ()) -> None:
    """The LLM endpoint's flags, from `LLMConfig` (types and defaults), in one group."""
    from raypipe.llm.config import LLMConfig

    group = parser.add_argument_group("LLM endpoint (any OpenAI-compatible API)")
    defaults, hints = LLMConfig(), typing.get_type_hints(LLMConfig)
    for name, flag in LLM_FLAGS.items():
        sub_tp, _ = _scalar(hints[name])
        group.add_argument(flag, dest=f"{dest}.{name}", type=sub_tp, default=argparse.SUPPRESS,
                           required=name in required, metavar=flag[2:].replace("-", "_").upper(),
                           help=_with_default(LLM_HELP.get(name), getattr(defaults, name)))


def llm_data(args, dest: str = "llm") -> dict[str, Any]:
    """The LLM flags the user gave, as `LLMConfig` keys."""
    return {k.split(".", 1)[1]: v for k, v in vars(args).items() if k.startswith(f"{dest}.")}


def config_data(args, cls: type, *, llm_field: str = "llm") -> dict[str, Any]:
    """The keys the user gave on the command line, shaped for `load_config(cls, ...)`."""
    data: dict[str, Any] = {}
    llm: dict[str, Any] = {}
    for dest, value in vars(args).items():
        if value is None or dest.startswith("_") or dest.startswith("cmd"):
            continue
        if dest.startswith(f"{llm_field}."):
            llm[dest.split(".", 1)[1]] = value
        elif dest in {f.name for f in dataclasses.fields(cls)}:
            data[dest] = value
    if llm:
        data[llm_field] = llm
    return data
