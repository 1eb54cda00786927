"""What a job shows on the terminal: raypipe's own lines, not Ray's.

Ray logs its start-up, every Dataset's execution plan and, when stdout is not a terminal, a
multi-line progress block every 10 s per Dataset; it forwards every line its workers print
(stack traces of failed actors, raylet retry notices). `quiet_ray()` keeps those off the
terminal (they still go to the session's log folder, `/tmp/ray/session_*/logs`): Ray's own
loggers show warnings and errors only (not its stack of an error the CLI reports in one line),
forwarded worker output keeps raypipe's own `[raypipe] ...` lines, and a Dataset shows one
progress bar (not one per operator) on a terminal. `RAYPIPE_DEBUG=1` keeps Ray as talkative as
it is by default.

`heartbeat(label)` keeps a long job step from going silent: a line every `LOG_EVERY_S`
seconds while it runs (Ray Data's one bar per Dataset is the live line on a terminal; two live
lines would overwrite each other).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator

LOG_EVERY_S = 60.0


def ray_logging_level() -> int:
    from raypipe.contract import debug_enabled

    return logging.INFO if debug_enabled() else logging.WARNING


# What Ray logs on the console that says nothing to act on: a warning every run gives, one about
# our own setting, and the lines Ray Data logs just before it raises an error to the caller
# (which then reports it: in one line for a user error, with its traceback for a bug).
NOISE = ("Token authentication is enabled for this Ray cluster",
         "is deprecated",  # Ray's deprecation notices: for developers, not for a job's user
         "Progress bars for operators disabled",
         "Exception occurred in Ray Data or Ray Core internal code",
         "Exception occurred in user code, with the abbreviated stack",
         "actors died during initialization")


class _DropNoise(logging.Filter):
    """Drops the NOISE warnings, and Ray's own report (with its stack) of an exception that is a
    raypipe user error: the CLI prints that one as one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(n in message for n in NOISE):
            return False
        if record.exc_info and record.exc_info[1] is not None:
            from raypipe.contract import user_error_lines

            return user_error_lines(record.exc_info[1]) is None
        return True


def _only_raypipe_lines(handler):
    """Worker output forwarded to the driver, keeping raypipe's own lines (`[raypipe] ...`, e.g.
    training progress printed by Ray Train workers); the rest stays in the workers' log files."""

    def forward(data):
        lines = [line for line in data.get("lines", []) if "[raypipe]" in line]
        if lines:
            handler({**data, "lines": lines})

    return forward


def _drop_user_error_notices(print_fn):
    """Ray's notices pushed to the driver ("Task X failed ... Error: <traceback>") for a task that
    failed with a raypipe user error: the CLI reports it in one line. Other notices (a worker
    killed for memory, a node lost) still print."""
    from raypipe.contract import remote_user_error

    def forward(data, *args, **kwargs):
        if data.get("pid") == "raylet" and any(remote_user_error(line) for line in data.get("lines", [])):
            return None
        return print_fn(data, *args, **kwargs)

    forward.raypipe_filter = True
    return forward


def _filter_worker_output() -> None:
    try:  # Ray's private dispatcher of forwarded worker output; if it moved, output stays as is
        from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher
    except ImportError:
        return
    with dispatcher._lock:
        dispatcher.handlers = [(name, _only_raypipe_lines(h) if name == "ray_print_logs" else h)
                               for name, h in dispatcher.handlers]
    import ray._private.worker as ray_worker

    if not getattr(ray_worker.print_to_stdstream, "raypipe_filter", False):
        ray_worker.print_to_stdstream = _drop_user_error_notices(ray_worker.print_to_stdstream)


def quiet_ray_startup() -> None:
    """Before `ray.init`: its start-up warnings go through the "ray" logger's console handler."""
    from raypipe.contract import debug_enabled

    if debug_enabled():
        return
    import warnings

    import ray  # noqa: F401 - configures the "ray" logger and its handlers

    for handler in logging.getLogger("ray").handlers:
        handler.addFilter(_DropNoise())
    try:
        from ray.util.annotations import RayDeprecationWarning
    except ImportError:
        return
    warnings.filterwarnings("ignore", category=RayDeprecationWarning)


def quiet_ray() -> None:
    """Keep Ray's INFO chatter on the driver off the console (call after `ray.init`)."""
    from raypipe.contract import debug_enabled

    if debug_enabled():
        return
    import ray.data

    for name in ("ray", "ray.data", "ray.train", "ray.tune"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handler.setLevel(max(handler.level, logging.WARNING))
                handler.addFilter(_DropNoise())
    ray.data.DataContext.get_current().enable_operator_progress_bars = False  # one bar per Dataset
    _filter_worker_output()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@contextmanager
def heartbeat(label: str, stream=None, every_s: float | None = None) -> Iterator[None]:
    """A line `[raypipe] LABEL: still running (2m00s)` every `every_s` until the block ends."""
    stream = stream or sys.stderr
    every_s = LOG_EVERY_S if every_s is None else every_s
    started = time.monotonic()
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every_s):
            stream.write(f"[raypipe] {label}: still running ({_duration(time.monotonic() - started)})\n")
            stream.flush()

    thread = threading.Thread(target=beat, name=f"raypipe-heartbeat-{label}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
