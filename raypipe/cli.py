"""The `raypipe` command line: commands are discovered from `raypipe/commands/`.

The error contract lives here: a user error (`RaypipeError`, `ConfigError`, an unusable path
the OS refused) prints `raypipe: error: ...` (one line per problem; a single error is exactly
one line) and exits 2, also when it was raised inside a Ray task or actor and comes back
wrapped in Ray's exceptions. `RAYPIPE_DEBUG=1` (or true/yes/on) shows the traceback instead.
Anything else is a bug in raypipe and keeps its traceback.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import re
import sys

from raypipe.config import ConfigError
from raypipe.errors import RaypipeError
from raypipe.registry import all_commands

USER_ERRORS = (RaypipeError, ConfigError)
TRUE_VALUES = ("1", "true", "yes", "on")

# How a raypipe error appears inside the text of a Ray error whose cause object did not survive
# (Ray Data wraps UDF failures in UserCodeException; a failed actor constructor is only text).
_REMOTE_ERROR = re.compile(r"^(raypipe(?:\.\w+)+)\.(\w+): (.+)$", re.MULTILINE)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own: usage + "prog: error:"; ours: one line
        print(f"raypipe: error: {message} (see: {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


@functools.lru_cache(maxsize=1)
def build_parser() -> argparse.ArgumentParser:
    """Built once per process (~60 ms: every command's arguments); parse_args keeps no state."""
    parser = _Parser(
        prog="raypipe",
        description="Function-calling LLM recipes as Ray batch jobs: synthesize, train, evaluate.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {(): sub}
    for cmd in sorted(all_commands(), key=lambda c: c.path):
        parent = groups[()]
        for depth in range(1, len(cmd.path)):
            prefix = cmd.path[:depth]
            if prefix not in groups:
                group_parser = parent.add_parser(prefix[-1], help=f"{prefix[-1]} commands")
                groups[prefix] = group_parser.add_subparsers(
                    dest=f"cmd_{depth}", metavar="COMMAND", required=True
                )
            parent = groups[prefix]
        p = parent.add_parser(
            cmd.path[-1], help=cmd.help, description=cmd.description or cmd.help,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        cmd.add_arguments(p)
        p.set_defaults(_run=cmd.run)
    return parser


def debug_enabled() -> bool:
    return os.environ.get("RAYPIPE_DEBUG", "").strip().lower() in TRUE_VALUES


def _one_line(text: str) -> str:
    return " | ".join(part.strip() for part in str(text).strip().splitlines() if part.strip())


def _is_ray_error(exc: BaseException) -> bool:
    return any(c.__module__.startswith("ray.") for c in type(exc).__mro__[:-1])


def _user_error_class(module: str, name: str) -> bool:
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return False
    return isinstance(cls, type) and issubclass(cls, USER_ERRORS)


def remote_user_error(text: str) -> str | None:
    """The message of the last raypipe user error named in the text of a remote traceback."""
    found = [m for m in _REMOTE_ERROR.finditer(text) if _user_error_class(m.group(1), m.group(2))]
    return _one_line(found[-1].group(3)) if found else None


def user_error_lines(exc: BaseException) -> list[str] | None:
    """The `raypipe: error:` lines for a user error (also one wrapped by Ray), else None."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    ray_texts: list[str] = []
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen or len(seen) > 50:
            continue
        seen.add(id(e))
        if isinstance(e, ConfigError) and not _is_ray_error(e):
            return [_one_line(p) for p in e.problems] or [_one_line(e)]
        if isinstance(e, RaypipeError) and not _is_ray_error(e):
            return [_one_line(e) or type(e).__name__]
        if isinstance(e, OSError) and not _is_ray_error(e) and (e.errno or e.filename):
            # The OS refused a path the user gave (a file where a folder is needed, no
            # permission, disk full): the user's to fix, and its message names the path.
            where = f"{e.filename}: " if e.filename else ""
            return [_one_line(f"{where}{e.strerror or e}")]
        if _is_ray_error(e):
            ray_texts.append(str(e))
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__]
    for text in ray_texts:  # the cause object is gone; its "module.Class: message" line is not
        message = remote_user_error(text)
        if message:
            return [message]
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args._run(args)
    except KeyboardInterrupt:
        print("raypipe: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        lines = user_error_lines(exc)
        if lines is None or debug_enabled():
            raise
        for line in lines:
            print(f"raypipe: error: {line}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
