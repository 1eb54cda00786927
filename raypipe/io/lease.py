"""One writer per output folder at a time: `out/_lease.json`, renewed while its run lives.

Two runs writing one folder would pay every LLM request twice and overwrite each other's
shards. The first run takes the lease; a second one stops with one line naming the holder.
A holder that dies stops renewing, so its lease expires after `ttl_s` (at once when it ran on
this host and its process is gone); the next run then takes it over.

On a local disk the lease file is created exclusively (O_EXCL), so of two runs racing for a
free folder exactly one wins. Object stores have no exclusive create in pyarrow: there the
lease is written, read back after a pause, and kept only if it is still ours (best effort).
"""

from __future__ import annotations

import json
import os
import posixpath
import secrets
import socket
import threading
import time
from typing import Any

from raypipe.errors import RaypipeError
from raypipe.io import fs

LEASE = "_lease.json"
TTL_S = 120.0


class Lease:
    def __init__(self, out: str, stage: str, ttl_s: float = TTL_S):
        self.out, self.stage, self.ttl_s = out, stage, ttl_s
        self.path = fs.join(out, LEASE)
        self.owner = secrets.token_hex(8)
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the record ------------------------------------------------------------------------
    def _record(self) -> dict[str, Any]:
        return {"owner": self.owner, "stage": self.stage, "host": socket.gethostname(),
                "pid": os.getpid(), "renewed_at": time.time(), "ttl_s": self.ttl_s}

    def _read(self) -> dict[str, Any] | None:
        try:
            return json.loads(fs.read_text(self.path))
        except (RaypipeError, ValueError):
            return None  # absent, or half-written by a writer that died: not a live lease

    @staticmethod
    def alive(record: dict[str, Any]) -> bool:
        if record.get("host") == socket.gethostname():
            try:
                os.kill(int(record["pid"]), 0)
            except ProcessLookupError:
                return False
            except (PermissionError, ValueError, KeyError):
                pass
        return time.time() - float(record.get("renewed_at", 0)) < float(record.get("ttl_s", TTL_S))

    # -- taking and keeping it ---------------------------------------------------------------
    def acquire(self) -> "Lease":
        held = self._read()
        if held is not None and held.get("owner") != self.owner and self.alive(held):
            raise self._busy(held)
        from pyarrow import fs as pafs

        filesystem, inner = fs.resolve(self.path)
        filesystem.create_dir(posixpath.dirname(inner), recursive=True)
        body = json.dumps(self._record()).encode("utf-8")
        if isinstance(filesystem, pafs.LocalFileSystem):
            if held is not None:
                try:
                    os.unlink(inner)  # a dead holder's lease
                except FileNotFoundError:
                    pass
            try:
                fd = os.open(inner, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                raise self._busy(self._read() or {}) from None
            with os.fdopen(fd, "wb") as f:
                f.write(body)
        else:
            with filesystem.open_output_stream(inner) as f:
                f.write(body)
            time.sleep(0.5)
            now_held = self._read() or {}
            if now_held.get("owner") != self.owner:
                raise self._busy(now_held)
        self._thread = threading.Thread(target=self._renew_loop, name="raypipe-lease", daemon=True)
        self._thread.start()
        return self

    def _busy(self, held: dict[str, Any]) -> RaypipeError:
        age = time.time() - float(held.get("renewed_at", time.time()))
        return RaypipeError(
            f"{self.out}: another run is writing this folder ({held.get('stage', '?')} step, pid "
            f"{held.get('pid', '?')} on {held.get('host', '?')}, lease renewed {age:.0f}s ago); wait "
            f"for it to finish, or write elsewhere (a dead run's lease expires after "
            f"{float(held.get('ttl_s', TTL_S)):.0f}s)")

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_s / 4):
            held = self._read()
            if held is not None and held.get("owner") != self.owner:
                self.lost = True  # taken over after we looked dead: stop writing
                return
            try:
                fs.write_text(self.path, json.dumps(self._record()))
            except OSError:
                pass  # a transient storage error: the next renewal tries again

    def check(self) -> None:
        """Raise if another run took the folder over (we were thought dead)."""
        if self.lost:
            raise RaypipeError(f"{self.out}: this run lost its lease to another run; its output "
                               "was left to that run")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        held = self._read()
        if held is not None and held.get("owner") == self.owner:
            try:
                filesystem, inner = fs.resolve(self.path)
                filesystem.delete_file(inner)
            except OSError:
                pass

    def __enter__(self) -> "Lease":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
