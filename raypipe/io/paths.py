"""Can this path be read / written? The checks `raypipe run --check` and the writers share.

`check_output(path, kind="dir", inputs=...)` is the one check at write time: every writer calls
it before it creates anything, and it raises `RaypipeError` with one line when the output is a
file where a folder is needed (or the reverse), lies under a file, cannot be written, or is
(or overlaps) one of the step's inputs. `output_problem` / `input_problem` / `overlap_problem`
return the same reasons as strings, for `raypipe.preflight` to collect them all at once.

Local paths only: a URI (s3://, gs://) is checked by its store when written.
"""

from __future__ import annotations

import glob
import os
import tempfile
from typing import Iterable

from raypipe.errors import RaypipeError
from raypipe.io.fs import GLOB_CHARS, is_uri


def local_path(path: str) -> str:
    path = str(path)
    if path.startswith("file://"):
        path = path[len("file://"):]
    if "\0" in path:  # no filesystem has such a name; compared as given (reported elsewhere)
        return path
    return os.path.realpath(os.path.expanduser(path))


def _show(path: str) -> str:
    """A path as a message shows it: whole unless absurdly long."""
    path = str(path)
    return path if len(path) <= 300 else path[:150] + "..." + path[-100:]


def _unusable(path: str) -> str | None:
    if not str(path).strip():
        return "the path is empty"
    if "\0" in str(path):
        return f"{_show(path)!r}: a path cannot hold a NUL character"
    return None


def _can_create_in(folder: str) -> bool:
    """Whether a file can be created in `folder` (tried, not guessed: permission bits say
    nothing for root or a read-only mount)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".raypipe-probe-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def output_problem(path: str, kind: str = "dir") -> str | None:
    """Why raypipe cannot write `path` (a folder it fills, or a file), or None."""
    if is_uri(path) and not str(path).startswith("file://"):
        return None
    if _unusable(path):
        return f"output: {_unusable(path)}"
    target = local_path(path)
    if os.path.lexists(target):
        if kind == "dir" and not os.path.isdir(target):
            return f"{_show(path)}: is a file; the output must be a folder"
        if kind == "file" and os.path.isdir(target):
            return f"{_show(path)}: is a folder; the output must be a file"
        if kind == "dir":
            return None if _can_create_in(target) else f"{_show(path)}: not writable (cannot create files in it)"
        try:
            with open(target, "ab"):
                pass
        except OSError as exc:
            return f"{_show(path)}: not writable ({exc.strerror})"
        return None
    parent = os.path.dirname(target)
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"{_show(path)}: cannot be created: {_show(parent)} is a file"
    if not _can_create_in(parent):
        return f"{_show(path)}: not writable (cannot create files in {_show(parent)})"
    return None


def _is_glob(path: str) -> bool:
    return any(c in str(path) for c in GLOB_CHARS)


def glob_base(path: str) -> str:
    """The folder a glob starts from, or the path itself."""
    if not _is_glob(path):
        return local_path(path)
    fixed = []
    for part in str(path).split("/"):
        if _is_glob(part):
            break
        fixed.append(part)
    joined = "/".join(fixed)
    return local_path(joined or ("/" if str(path).startswith("/") else "."))


def is_under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def overlap_problem(out: str, inputs: Iterable[str], kind: str = "dir") -> str | None:
    """Why `out` must not be written while reading `inputs`, or None: an output is never one of
    the inputs (a re-run would read its own output, or destroy its input)."""
    if is_uri(out) and not str(out).startswith("file://"):
        return None
    target = local_path(out)
    for given in inputs:
        if is_uri(given) and not str(given).startswith("file://"):
            continue
        base = glob_base(given)
        if target == base:
            return f"{_show(out)}: is also an input ({_show(given)})"
        if kind == "dir" and is_under(base, target):
            return f"{_show(out)}: holds an input ({_show(given)}); write the output somewhere else"
        if kind == "dir" and is_under(target, base) and (_is_glob(given) or os.path.isdir(base)):
            return f"{_show(out)}: is inside an input folder ({_show(given)}); a re-run would read it back"
    return None


def input_problem(path: str) -> str | None:
    """Why `path` (a file, folder or glob) names nothing to read, or None."""
    if is_uri(path) and not str(path).startswith("file://"):
        return None
    if _unusable(path):
        return f"input: {_unusable(path)}"
    local = str(path)[len("file://"):] if str(path).startswith("file://") else os.path.expanduser(str(path))
    if any(c in local for c in GLOB_CHARS):
        return None if glob.glob(local, recursive=True) else f"{_show(path)}: matches no files"
    return None if os.path.exists(local) else f"{_show(path)}: no such file or folder"


def check_output(path: str, kind: str = "dir", inputs: Iterable[str] = ()) -> None:
    """Raise RaypipeError (one line) when `path` cannot be this step's output; call it before
    creating anything. `kind`: "dir" for a folder the step fills, "file" for one file."""
    problem = output_problem(path, kind) or overlap_problem(path, list(inputs), kind)
    if problem:
        raise RaypipeError(problem)
