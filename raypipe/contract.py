"""The error contract: which exceptions are user errors, and their one-line messages.

A user error is a `RaypipeError` or `ConfigError`, or an `OSError` on a path the user gave; it
may reach the CLI wrapped in Ray's exceptions (a task, a Ray Data UDF, an actor's constructor),
sometimes with only its text left. `user_error_lines` finds it; the CLI prints each line as
`raypipe: error: ...` and exits 2. `RAYPIPE_DEBUG` set to a true value shows tracebacks instead.
"""

from __future__ import annotations

import importlib
import os
import re

from raypipe.config import ConfigError
from raypipe.errors import RaypipeError

USER_ERRORS = (RaypipeError, ConfigError)
TRUE_VALUES = ("1", "true", "yes", "on")

# How a raypipe error appears inside the text of a Ray error whose cause object did not survive
# (Ray Data wraps UDF failures in UserCodeException; a failed actor constructor is only text).
_REMOTE_ERROR = re.compile(r"^(raypipe(?:\.\w+)+)\.(\w+): (.+)$", re.MULTILINE)


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
