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
import sys

from raypipe.commands import all_commands
from raypipe.contract import debug_enabled, user_error_lines

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
