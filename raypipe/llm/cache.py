"""Persistent, content-addressed request cache: a re-run never pays twice for an answer.

The key is the sha256 of what determines the answer: model, messages, sampling parameters and
response format (never the API key or the endpoint URL, so the same request through another
gateway is still a hit).

Built for millions of entries on an object store, where every operation is a paid round trip:

- **Segments.** Each process buffers its new entries and writes them as one segment file in
  ONE PUT (`segments/<name>.jsonl`), every `flush_entries` entries or `flush_seconds`
  seconds, on `flush()` (the engine flushes before it commits rows, so an answer a committed
  row used is durable) and on `close()`.
- **Index.** After the segment, its index (`index/<name>-n<entries>-b<bytes>.idx`, see
  `cache_index.py`). A segment without its index is invisible, so a crash loses at most the
  unflushed buffer and never exposes half an entry; on a local filesystem the index is
  written under a temporary name and renamed (object stores publish a PUT whole).
- **Lookups** never read segments to find a key: every process loads all indexes into one
  sorted array (32 bytes per entry) on first use and picks up new index files every
  `refresh_seconds`; a hit is one ranged read of exactly the entry's bytes, and the entry
  carries its full key, which is checked.
- **Statistics** (entries, bytes, segments) come from the index file names: one listing.

Through `pyarrow.fs` the root may be a local directory or any filesystem URI (s3://, gs://,
hdfs://) that all workers of a cluster and all later jobs share. Thread-safe (the client calls
`get`/`put` from a thread pool); pickles as plain data (the filesystem is opened on first use).
Entries of the older one-file-per-entry layout (`<k[:2]>/<k>.json`) are still read.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from typing import Any

from raypipe.schema import canonical_json

CACHE_FORMAT = 1  # part of every key: bump it to invalidate all entries
SEGMENTS, INDEX = "segments", "index"
# Open segment handles kept per process: a hit in an open segment is one ranged read (opening
# one costs a HEAD on S3). Local handles are file descriptors: fewer of them.
OPEN_SEGMENTS, OPEN_LOCAL_SEGMENTS = 4096, 64


def cache_key(model: str, messages: list[dict], params: dict[str, Any]) -> str:
    """`params` holds the sampling parameters and response format as sent to the API."""
    payload = canonical_json(
        {"v": CACHE_FORMAT, "model": model, "messages": messages, "params": params}
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class RequestCache:
    def __init__(self, root: str, *, flush_entries: int = 1000, flush_seconds: float = 30.0,
                 refresh_seconds: float = 30.0, filesystem=None):
        """`filesystem`: a pyarrow filesystem to use with `root` as its path (tests count
        its operations); by default it comes from `root` (a local path or a URI)."""
        self.root_uri = root
        self.flush_entries = flush_entries
        self.flush_seconds = flush_seconds
        self.refresh_seconds = refresh_seconds
        self._given_fs = filesystem
        self._reset()

    def _reset(self) -> None:
        self._fs = None
        self._root = ""
        self._local = False
        self._dirs_made = False
        self._legacy = False  # the root also holds entries of the one-file-per-entry layout
        self._lock = threading.RLock()  # buffer, index and handles
        self._flush_lock = threading.Lock()  # one segment write at a time, in order
        self._loaded = False
        self._last_refresh = 0.0
        self._index = None  # KeyIndex, built on first use
        self._index_files: set[str] = set()  # index files already read (or found damaged)
        self._buffer: dict[str, bytes] = {}  # key -> JSON line, not yet written
        self._flushing: dict[str, bytes] = {}  # key -> JSON line, being written now
        self._buffer_since = 0.0
        self._writer = uuid.uuid4().hex[:12]
        self._seq = 0
        self._handles: OrderedDict = OrderedDict()
        self._timer = None  # the flush timer's stop event, while one runs
        self.io = {"segment_puts": 0, "index_puts": 0, "ranged_reads": 0, "index_reads": 0,
                   "listings": 0, "legacy_reads": 0}  # object-store operations issued
        self.flush_errors = 0

    def __getstate__(self):
        return {"root_uri": self.root_uri, "flush_entries": self.flush_entries,
                "flush_seconds": self.flush_seconds, "refresh_seconds": self.refresh_seconds,
                "_given_fs": self._given_fs}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reset()

    # -- plumbing -----------------------------------------------------------------------
    def _filesystem(self):
        if self._fs is None:
            with self._lock:
                if self._fs is None:
                    from pyarrow import fs as pafs

                    if self._given_fs is not None:
                        fs, root = self._given_fs, self.root_uri.rstrip("/")
                    else:
                        from raypipe.io.fs import resolve

                        fs, root = resolve(self.root_uri)
                    self._local = isinstance(fs, pafs.LocalFileSystem)
                    self._root, self._fs = root, fs
        return self._fs

    def _ensure_loaded(self) -> None:
        """Read every index on first use; later, new index files every `refresh_seconds`."""
        if self._loaded and time.monotonic() - self._last_refresh < self.refresh_seconds:
            return
        if not self._flush_lock.acquire(blocking=not self._loaded):
            return  # another thread refreshes (or flushes) right now: use what is there
        try:
            if self._loaded and time.monotonic() - self._last_refresh < self.refresh_seconds:
                return
            self._refresh()
        finally:
            self._flush_lock.release()

    def _refresh(self) -> None:
        from pyarrow import fs as pafs

        from raypipe.llm.cache_index import KeyIndex, decode_index, parse_index_name

        fs = self._filesystem()
        if self._index is None:
            self._index = KeyIndex()
            self._legacy = self._has_legacy_layout(fs)
        self.io["listings"] += 1
        infos = fs.get_file_info(pafs.FileSelector(f"{self._root}/{INDEX}", allow_not_found=True))
        new = [i for i in infos if i.base_name not in self._index_files
               and parse_index_name(i.base_name) is not None]
        new.sort(key=lambda i: i.base_name)

        def read(info):
            try:
                with fs.open_input_stream(info.path) as f:
                    return info, decode_index(f.read())
            except (OSError, ValueError):
                return info, None  # vanished (compacted away) or damaged: skipped

        if len(new) > 4:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=16) as pool:
                loaded = list(pool.map(read, new))
        else:
            loaded = [read(i) for i in new]
        with self._lock:
            for info, _ in loaded:
                self.io["index_reads"] += 1
                self._index_files.add(info.base_name)
            self._index.add_many([parsed for _, parsed in loaded if parsed is not None])
            self._loaded = True
            self._last_refresh = time.monotonic()

    def _has_legacy_layout(self, fs) -> bool:
        from pyarrow import fs as pafs

        self.io["listings"] += 1
        infos = fs.get_file_info(pafs.FileSelector(self._root, allow_not_found=True))
        return any(i.type == pafs.FileType.Directory and len(i.base_name) == 2
                   and all(c in "0123456789abcdef" for c in i.base_name) for i in infos)

    # -- the interface the client uses ------------------------------------------------------
    def get(self, key: str) -> dict | None:
        from raypipe.llm.cache_index import key_parts

        self._ensure_loaded()
        with self._lock:
            line = self._buffer.get(key) or self._flushing.get(key)
            where = None if line is not None else self._index.find(*key_parts(key))
        if line is not None:
            return _decode(line, key)
        if where is not None:
            try:
                return _decode(self._read_range(*where), key)
            except OSError:
                return None  # an unreadable entry is a miss, never a crash
        return self._get_legacy(key) if self._legacy else None

    def put(self, key: str, entry: dict) -> None:
        from raypipe.llm.cache_index import key_parts

        line = (json.dumps({"k": key, "e": entry}, ensure_ascii=False) + "\n").encode("utf-8")
        self._ensure_loaded()
        with self._lock:
            if key in self._buffer or key in self._flushing or self._index.find(*key_parts(key)):
                return  # already stored (another worker answered it first)
            if not self._buffer:
                self._buffer_since = time.monotonic()
            self._buffer[key] = line
            full = len(self._buffer) >= self.flush_entries
            self._start_timer()
        if full:
            self._flush_quietly()

    def flush(self) -> None:
        """Write the buffered entries now (one segment + its index). Raises OSError if the
        filesystem fails; the entries then stay buffered for the next flush."""
        with self._flush_lock:
            with self._lock:
                if not self._buffer:
                    return
                self._flushing, self._buffer = self._buffer, {}
            try:
                self._write_segment(self._flushing)
            except BaseException:
                with self._lock:  # keep them for the next try (newer puts win on a clash)
                    self._buffer = {**self._flushing, **self._buffer}
                    self._flushing = {}
                raise
            with self._lock:
                self._flushing = {}

    def close(self) -> None:
        """Flush and stop the timer (idempotent; the cache can still be used afterwards)."""
        with self._lock:
            if self._timer is not None:
                self._timer.set()
                self._timer = None
        self.flush()
        with self._lock:
            for handle in self._handles.values():
                handle.close()
            self._handles.clear()

    def exists(self) -> bool:
        from pyarrow import fs as pafs

        return self._filesystem().get_file_info(self._root).type == pafs.FileType.Directory

    def stats(self) -> dict:
        """Entries, bytes and segments from one listing of the index folder (no walk over
        entries). Two workers that answered the same request both count."""
        from pyarrow import fs as pafs

        from raypipe.llm.cache_index import parse_index_name

        fs = self._filesystem()
        entries = size = files = 0
        for info in fs.get_file_info(pafs.FileSelector(f"{self._root}/{INDEX}", allow_not_found=True)):
            parsed = parse_index_name(info.base_name)
            if parsed is not None:
                entries, size, files = entries + parsed[0], size + parsed[1], files + 1
        out = {"root": self.root_uri, "entries": entries, "bytes": size, "index_files": files}
        if self._has_legacy_layout(fs):
            out["legacy_layout"] = True  # older one-file-per-entry entries: read, not counted
        return out

    # -- segments -------------------------------------------------------------------------
    def _write_segment(self, lines: dict[str, bytes]) -> None:
        import numpy as np

        from raypipe.llm.cache_index import RECORD, encode_index, index_file_name, key_parts

        fs = self._filesystem()
        if not self._dirs_made:  # once per process (object stores need no folders)
            for sub in (SEGMENTS, INDEX):
                fs.create_dir(f"{self._root}/{sub}", recursive=True)
            self._dirs_made = True
        self._seq += 1
        name = f"{int(time.time() * 1000):013d}-{self._writer}-{self._seq:06d}"
        records = np.zeros(len(lines), dtype=RECORD)
        offset = 0
        for i, (key, line) in enumerate(lines.items()):
            records[i] = (*key_parts(key), 0, len(line), offset)
            offset += len(line)
        seg_path = f"{self._root}/{SEGMENTS}/{name}.jsonl"
        with fs.open_output_stream(seg_path) as f:  # one PUT on object stores
            f.write(b"".join(lines.values()))
        self.io["segment_puts"] += 1
        final = f"{self._root}/{INDEX}/{index_file_name(name, len(lines), offset)}"
        data = encode_index([(name, offset)], records)
        if self._local:  # a local file is visible while written: publish it by rename
            tmp = f"{self._root}/{INDEX}/.tmp-{uuid.uuid4().hex}"
            with fs.open_output_stream(tmp) as f:
                f.write(data)
            fs.move(tmp, final)
        else:
            with fs.open_output_stream(final) as f:
                f.write(data)
        self.io["index_puts"] += 1
        with self._lock:
            self._index_files.add(final.rsplit("/", 1)[1])
            self._index.add([(name, offset)], records)

    def _read_range(self, name: str, size: int, offset: int, length: int) -> bytes:
        path = f"{self._root}/{SEGMENTS}/{name}.jsonl"
        with self._lock:
            handle = self._handles.get(path)
            if handle is not None:
                self._handles.move_to_end(path)
        if handle is None:
            handle = self._filesystem().open_input_file(path)
            with self._lock:
                self._handles[path] = handle
                while len(self._handles) > (OPEN_LOCAL_SEGMENTS if self._local else OPEN_SEGMENTS):
                    self._handles.popitem(last=False)[1].close()
        self.io["ranged_reads"] += 1
        return handle.read_at(length, offset)

    def _get_legacy(self, key: str) -> dict | None:
        self.io["legacy_reads"] += 1
        try:
            with self._filesystem().open_input_stream(f"{self._root}/{key[:2]}/{key}.json") as f:
                entry = json.loads(f.read().decode("utf-8"))
        except (OSError, ValueError):
            return None
        return entry if isinstance(entry, dict) else None

    # -- the flush timer ----------------------------------------------------------------
    def _start_timer(self) -> None:
        if self._timer is None and self.flush_seconds > 0:
            self._timer = threading.Event()
            threading.Thread(target=_flush_loop, args=(weakref.ref(self), self._timer),
                             name="raypipe-cache-flush", daemon=True).start()
            _LIVE.add(self)

    def _flush_quietly(self) -> None:
        """Flush from put() or the timer: a failure is retried at the next flush, not raised
        into the request that happened to fill the buffer."""
        try:
            self.flush()
        except OSError:
            self.flush_errors += 1


_LIVE: "weakref.WeakSet[RequestCache]" = weakref.WeakSet()  # caches that may hold a buffer


@atexit.register
def _flush_at_exit() -> None:
    """A normal interpreter exit writes what is buffered (a crash loses only the buffer)."""
    for cache in list(_LIVE):
        cache._flush_quietly()


def _flush_loop(ref, closed: threading.Event) -> None:
    """Flush a cache's buffer once it is `flush_seconds` old; ends with the cache."""
    while True:
        cache = ref()
        if cache is None:
            return
        period = max(0.05, cache.flush_seconds / 4)
        due = cache._buffer and time.monotonic() - cache._buffer_since >= cache.flush_seconds
        if due:
            cache._flush_quietly()
        del cache
        if closed.wait(period):
            return


def _decode(line: bytes, key: str) -> dict | None:
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("k") != key or not isinstance(record.get("e"), dict):
        return None  # not this key's entry (damaged segment, or a 128-bit prefix collision)
    return record["e"]
