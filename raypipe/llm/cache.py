"""Persistent, content-addressed request cache: a re-run never pays twice for an answer.

The key is the sha256 of what determines the answer: model, messages, sampling parameters and
response format (never the API key or the endpoint URL, so the same request through another
gateway is still a hit). Each entry is one small JSON file `<root>/<k[:2]>/<k>.json`, written
to a temporary name and then renamed, so a crash mid-write leaves no half entry that a later
run could read. Through `pyarrow.fs` the root may be a local directory or any filesystem URI
(s3://, gs://, hdfs://), which all workers of a cluster and all later jobs share.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from raypipe.schema import canonical_json

CACHE_FORMAT = 1


def cache_key(model: str, messages: list[dict], params: dict[str, Any]) -> str:
    """`params` holds the sampling parameters and response format as sent to the API."""
    payload = canonical_json(
        {"v": CACHE_FORMAT, "model": model, "messages": messages, "params": params}
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def resolve_fs(uri_or_path: str):
    """(filesystem, path) for a local path or a URI; local paths are made absolute."""
    import os

    from pyarrow import fs

    if "://" in uri_or_path:
        return fs.FileSystem.from_uri(uri_or_path)
    return fs.LocalFileSystem(), os.path.abspath(uri_or_path)


class RequestCache:
    def __init__(self, root: str):
        self.root_uri = root
        self._fs = None
        self._root = ""

    def _filesystem(self):
        if self._fs is None:  # created on first use, so the cache object pickles as plain data
            self._fs, self._root = resolve_fs(self.root_uri)
            self._fs.create_dir(self._root, recursive=True)
        return self._fs

    def __getstate__(self):
        return {"root_uri": self.root_uri, "_fs": None, "_root": ""}

    def path(self, key: str) -> str:
        self._filesystem()
        return f"{self._root}/{key[:2]}/{key}.json"

    def get(self, key: str) -> dict | None:
        fs = self._filesystem()
        try:
            with fs.open_input_stream(self.path(key)) as f:
                return json.loads(f.read().decode("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            # An unreadable entry (foreign file, disk error) is a miss, never a crash.
            return None

    def put(self, key: str, entry: dict) -> None:
        fs = self._filesystem()
        final = self.path(key)
        directory = final.rsplit("/", 1)[0]
        fs.create_dir(directory, recursive=True)
        tmp = f"{directory}/.tmp-{uuid.uuid4().hex}"
        with fs.open_output_stream(tmp) as f:
            f.write(json.dumps(entry, ensure_ascii=False).encode("utf-8"))
        fs.move(tmp, final)  # atomic on local filesystems; object stores publish on close

    def flush(self) -> None:
        """Make every entry put so far durable (each entry is written at `put`)."""

    def stats(self) -> dict:
        """Number of entries and bytes (walks the whole cache: for `raypipe llm cache`)."""
        from pyarrow import fs as pafs

        filesystem = self._filesystem()
        entries = size = 0
        for info in filesystem.get_file_info(pafs.FileSelector(self._root, recursive=True)):
            if info.type == pafs.FileType.File and info.path.endswith(".json"):
                entries += 1
                size += info.size or 0
        return {"root": self.root_uri, "entries": entries, "bytes": size}
