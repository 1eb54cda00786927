"""What a job shows on the terminal: raypipe's own lines, not Ray's.

Ray logs its start-up, every Dataset's execution plan and, when stdout is not a terminal, a
multi-line progress block every 10 s per Dataset. `quiet_ray()` keeps those off the terminal
(they still go to the session's log folder, `/tmp/ray/session_*/logs`): Ray's own loggers show
warnings and errors only, and a Dataset shows one progress bar (not one per operator) on a
terminal. `RAYPIPE_DEBUG=1` keeps Ray as talkative as it is by default.

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
    from raypipe.cli import debug_enabled

    return logging.INFO if debug_enabled() else logging.WARNING


# Warnings Ray gives every run that say nothing to act on (the second is about our own setting).
NOISE = ("Token authentication is enabled for this Ray cluster",
         "Progress bars for operators disabled")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(n in message for n in NOISE)


def quiet_ray_startup() -> None:
    """Before `ray.init`: its start-up warnings go through the "ray" logger's console handler."""
    from raypipe.cli import debug_enabled

    if debug_enabled():
        return
    import ray  # noqa: F401 - configures the "ray" logger and its handlers

    for handler in logging.getLogger("ray").handlers:
        handler.addFilter(_DropNoise())


def quiet_ray() -> None:
    """Keep Ray's INFO chatter on the driver off the console (call after `ray.init`)."""
    from raypipe.cli import debug_enabled

    if debug_enabled():
        return
    import ray.data

    for name in ("ray", "ray.data", "ray.train", "ray.tune"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handler.setLevel(max(handler.level, logging.WARNING))
                handler.addFilter(_DropNoise())
    ray.data.DataContext.get_current().enable_operator_progress_bars = False  # one bar per Dataset


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
