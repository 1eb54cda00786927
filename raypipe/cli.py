"""The `raypipe` command line: commands are discovered from `raypipe/commands/`."""

from __future__ import annotations

import argparse
import os
import sys

from raypipe.config import ConfigError
from raypipe.errors import RaypipeError
from raypipe.commands import all_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    except (RaypipeError, ConfigError, FileNotFoundError) as exc:
        if os.environ.get("RAYPIPE_DEBUG"):
            raise
        msg = str(exc).strip() or type(exc).__name__
        print(f"raypipe: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("raypipe: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
