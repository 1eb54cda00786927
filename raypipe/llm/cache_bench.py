"""`raypipe bench cache`: the request cache's write and lookup rates, filesystem operations per
request and `cache stats` time, side by side with the one-file-per-entry layout it replaced.

Both designs run on the local disk seen through `CountingFileSystem`, a pyarrow filesystem that
counts every call its user makes and is *not* a `LocalFileSystem`, so the cache takes its
object-store path (one PUT per file, no rename). On S3 each counted call is at least one HTTP
request (a `move` is a CopyObject plus a DeleteObject; reading a file also costs a HEAD).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
import uuid
from collections import Counter

from pyarrow import fs as pafs

from raypipe.llm.cache import RequestCache, cache_key


def counting_filesystem(inner=None):
    """(PyFileSystem, Counter of calls by method) over `inner` (default: the local disk)."""
    calls: Counter = Counter()
    return pafs.PyFileSystem(_CountingHandler(inner or pafs.LocalFileSystem(), calls)), calls


class _CountingHandler(pafs.FileSystemHandler):
    """A pyarrow FileSystemHandler that forwards to `inner` and counts each call."""

    def __init__(self, inner, calls: Counter):
        self.inner, self.calls = inner, calls

    def __eq__(self, other):
        return isinstance(other, _CountingHandler) and other.inner.equals(self.inner)

    def __ne__(self, other):
        return not self == other

    def get_type_name(self):
        return "counting"

    def normalize_path(self, path):
        return self.inner.normalize_path(path)

    def get_file_info(self, paths):
        self.calls["get_file_info"] += len(paths)
        return self.inner.get_file_info(paths)

    def create_dir(self, path, recursive):
        self.calls["create_dir"] += 1
        self.inner.create_dir(path, recursive=recursive)

    def delete_dir(self, path):
        self.calls["delete_dir"] += 1
        self.inner.delete_dir(path)

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self.calls["delete_dir_contents"] += 1
        self.inner.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_file(self, path):
        self.calls["delete_file"] += 1
        self.inner.delete_file(path)

    def move(self, src, dest):
        self.calls["move"] += 1
        self.inner.move(src, dest)

    def copy_file(self, src, dest):
        self.calls["copy_file"] += 1
        self.inner.copy_file(src, dest)

    def open_input_stream(self, path):
        self.calls["open_input_stream"] += 1
        return self.inner.open_input_stream(path)

    def open_input_file(self, path):
        self.calls["open_input_file"] += 1
        return self.inner.open_input_file(path)

    def get_file_info_selector(self, selector):
        self.calls["list"] += 1
        return self.inner.get_file_info(selector)

    def delete_root_dir_contents(self):
        self.calls["delete_root_dir_contents"] += 1
        self.inner.delete_dir_contents("/", accept_root_dir=True)

    def open_output_stream(self, path, metadata):
        self.calls["open_output_stream"] += 1
        return self.inner.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path, metadata):
        self.calls["open_append_stream"] += 1
        return self.inner.open_append_stream(path, metadata=metadata)



class OneFilePerEntryCache:
    """The layout this cache replaced (raypipe before issue 10), kept only as the baseline:
    `<k[:2]>/<k>.json`, written to a temporary name and moved; stats walk every file."""

    def __init__(self, fs, root: str):
        self.fs, self.root = fs, root

    def get(self, key: str):
        try:
            with self.fs.open_input_stream(f"{self.root}/{key[:2]}/{key}.json") as f:
                return json.loads(f.read())
        except (OSError, ValueError):
            return None

    def put(self, key: str, entry: dict) -> None:
        directory = f"{self.root}/{key[:2]}"
        self.fs.create_dir(directory, recursive=True)
        tmp = f"{directory}/.tmp-{uuid.uuid4().hex}"
        with self.fs.open_output_stream(tmp) as f:
            f.write(json.dumps(entry).encode())
        self.fs.move(tmp, f"{directory}/{key}.json")

    def stats(self) -> dict:
        infos = self.fs.get_file_info(pafs.FileSelector(self.root, recursive=True))
        files = [i for i in infos if i.type == pafs.FileType.File and i.path.endswith(".json")]
        return {"entries": len(files), "bytes": sum(i.size or 0 for i in files)}


def _entry(i: int, answer_bytes: int) -> dict:
    text = (f"answer {i} " * (answer_bytes // 8 + 1))[:answer_bytes]
    return {"text": text, "finish_reason": "stop", "usage": {"prompt_tokens": 50, "completion_tokens": 90},
            "model": "bench-model", "created": 1.0}


def _keys(n: int) -> list[str]:
    return [cache_key("bench-model", [{"role": "user", "content": f"question {i}"}], {}) for i in range(n)]


def _ops(calls: Counter, n: int) -> float:
    return round(sum(calls.values()) / max(n, 1), 4)


def bench_segmented(n: int, lookups: int, answer_bytes: int, work: str) -> dict:
    fs, calls = counting_filesystem()
    root = f"{work}/segmented"
    keys = _keys(n)
    cache = RequestCache(root, filesystem=fs, flush_entries=1000)
    cache.get(keys[0])  # first use: creates the folders, loads the (empty) index
    calls.clear()
    started = time.perf_counter()
    for i, key in enumerate(keys):
        cache.put(key, _entry(i, answer_bytes))
    cache.close()
    write_s = time.perf_counter() - started
    write_calls = dict(calls)
    write_ops = _ops(calls, n)

    calls.clear()
    reader = RequestCache(root, filesystem=fs)
    started = time.perf_counter()
    reader.get("0" * 64)  # loads every index
    load_s = time.perf_counter() - started
    load_calls = dict(calls)
    calls.clear()
    sample = random.Random(0).sample(keys, min(lookups, n))
    started = time.perf_counter()
    hits = sum(reader.get(k) is not None for k in sample)
    hit_s = time.perf_counter() - started
    calls["read_at"] = reader.io["ranged_reads"]  # reads on open files: one GET each on S3
    hit_ops = _ops(calls, len(sample))
    calls.clear()
    misses = [cache_key("bench-model", [{"role": "user", "content": f"new {i}"}], {}) for i in range(lookups)]
    started = time.perf_counter()
    found = sum(reader.get(k) is not None for k in misses)
    miss_s = time.perf_counter() - started
    miss_ops = _ops(calls, len(misses))
    calls.clear()
    started = time.perf_counter()
    stats = RequestCache(root, filesystem=fs).stats()
    stats_s = time.perf_counter() - started
    assert hits == len(sample) and found == 0 and stats["entries"] == n, (hits, found, stats)
    return {
        "entries": n, "put_per_s": round(n / write_s), "write_ops_per_put": write_ops,
        "write_calls": write_calls, "index_load_s": round(load_s, 3), "index_load_calls": load_calls,
        "hit_lookups_per_s": round(len(sample) / hit_s), "ops_per_hit": hit_ops,
        "miss_lookups_per_s": round(len(misses) / miss_s), "ops_per_miss": miss_ops,
        "stats_s": round(stats_s, 4), "stats_calls": dict(calls), "bytes": stats["bytes"],
        "index_files": stats["index_files"],
    }


def bench_one_file_per_entry(n: int, lookups: int, answer_bytes: int, work: str) -> dict:
    fs, calls = counting_filesystem()
    root = f"{work}/one-file-per-entry"
    fs.create_dir(root, recursive=True)
    cache = OneFilePerEntryCache(fs, root)
    keys = _keys(n)
    calls.clear()
    started = time.perf_counter()
    for i, key in enumerate(keys):
        cache.put(key, _entry(i, answer_bytes))
    write_s = time.perf_counter() - started
    write_calls, write_ops = dict(calls), _ops(calls, n)
    calls.clear()
    sample = random.Random(0).sample(keys, min(lookups, n))
    started = time.perf_counter()
    hits = sum(cache.get(k) is not None for k in sample)
    hit_s = time.perf_counter() - started
    hit_ops = _ops(calls, len(sample))
    calls.clear()
    misses = [cache_key("bench-model", [{"role": "user", "content": f"new {i}"}], {}) for i in range(lookups)]
    started = time.perf_counter()
    sum(cache.get(k) is not None for k in misses)
    miss_s = time.perf_counter() - started
    miss_ops = _ops(calls, len(misses))
    started = time.perf_counter()
    stats = cache.stats()
    stats_s = time.perf_counter() - started
    assert hits == len(sample) and stats["entries"] == n
    return {
        "entries": n, "put_per_s": round(n / write_s), "write_ops_per_put": write_ops,
        "write_calls": write_calls, "hit_lookups_per_s": round(len(sample) / hit_s),
        "ops_per_hit": hit_ops, "miss_lookups_per_s": round(len(misses) / miss_s),
        "ops_per_miss": miss_ops, "stats_s": round(stats_s, 4),
        "stats_s_per_1m_entries": round(stats_s * 1_000_000 / n, 1), "bytes": stats["bytes"],
    }


def run(entries: int = 200_000, baseline_entries: int = 20_000, lookups: int = 20_000,
        answer_bytes: int = 400, work_dir: str | None = None) -> dict:
    work = tempfile.mkdtemp(prefix="raypipe-cache-bench-", dir=work_dir)
    try:
        new = bench_segmented(entries, lookups, answer_bytes, work)
        old = bench_one_file_per_entry(baseline_entries, min(lookups, baseline_entries), answer_bytes, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    paid = 2  # a paid request is one miss + one put, in both designs
    new_per_request = round(new["ops_per_miss"] + new["write_ops_per_put"], 4)
    old_per_request = round(old["ops_per_miss"] + old["write_ops_per_put"], 4)
    return {
        "segmented": new, "one_file_per_entry": old,
        "fs_calls_per_paid_request": {"segmented": new_per_request, "one_file_per_entry": old_per_request,
                                      "ratio": round(old_per_request / max(new_per_request, 1e-9), 1)},
        "put_rate_ratio": round(new["put_per_s"] / old["put_per_s"], 2),
        "hit_rate_ratio": round(new["hit_lookups_per_s"] / old["hit_lookups_per_s"], 2),
        "notes": [f"a paid request = {paid} cache calls (a miss, then a put of the answer)",
                  "calls are pyarrow filesystem calls on the local disk through a counting "
                  "filesystem; on S3 each is >= 1 request (move = copy + delete)",
                  f"answers of {answer_bytes} bytes; {os.cpu_count()} cpus"],
    }


def main_json(**kwargs) -> str:
    return json.dumps(run(**kwargs), indent=2)
