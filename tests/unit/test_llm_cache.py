"""The request cache: segments written in one PUT, an index that makes a half-written segment
invisible, lookups without reading segments, statistics from one listing, crash safety,
threads, pickling, and the older one-file-per-entry layout still read."""

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from raypipe.llm import RequestCache, cache_key
from raypipe.llm import cache_index
from raypipe.llm.cache_bench import counting_filesystem

pytestmark = pytest.mark.unit


def key(i) -> str:
    return cache_key("m", [{"role": "user", "content": f"q{i}"}], {})


def entry(i) -> dict:
    return {"text": f"answer {i}", "finish_reason": "stop"}


def files_under(root) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_cache_key_depends_on_everything_that_changes_the_answer():
    msgs = [{"role": "user", "content": "hi"}]
    base = cache_key("m", msgs, {"temperature": 0.0, "max_tokens": 10})
    assert base == cache_key("m", [dict(msgs[0])], {"max_tokens": 10, "temperature": 0.0})
    assert base != cache_key("m2", msgs, {"temperature": 0.0, "max_tokens": 10})
    assert base != cache_key("m", [{"role": "user", "content": "hi!"}], {"temperature": 0.0, "max_tokens": 10})
    assert base != cache_key("m", msgs, {"temperature": 0.5, "max_tokens": 10})
    assert base != cache_key("m", msgs, {"temperature": 0.0, "max_tokens": 10,
                                         "response_format": {"type": "json_object"}})


def test_entries_are_buffered_then_shared_once_flushed(tmp_path):
    root = str(tmp_path / "c")
    writer = RequestCache(root, flush_seconds=0)
    reader = RequestCache(root, refresh_seconds=0)  # re-lists the index on every lookup
    assert writer.get(key(1)) is None and reader.get(key(1)) is None
    writer.put(key(1), entry(1))
    assert writer.get(key(1)) == entry(1)  # its own buffer
    assert reader.get(key(1)) is None  # nothing written yet
    writer.flush()
    assert reader.get(key(1)) == entry(1)
    assert RequestCache(root).get(key(1)) == entry(1)
    writer.put(key(1), {"text": "other"})  # already stored: the first answer stays
    writer.close()
    assert RequestCache(root).stats()["entries"] == 1


def test_a_segment_and_its_index_are_one_put_each(tmp_path):
    """Object-store path (the counting filesystem is not a LocalFileSystem): 250 entries with
    flush_entries=100 are three segments + three indexes: six PUTs, no rename, no temp file."""
    fs, calls = counting_filesystem()
    root = str(tmp_path / "c")
    cache = RequestCache(root, filesystem=fs, flush_entries=100, flush_seconds=0)
    cache.get(key(0))
    calls.clear()
    for i in range(250):
        cache.put(key(i), entry(i))
    assert calls["open_output_stream"] == 4  # two full buffers flushed by put() itself
    cache.close()
    assert calls["open_output_stream"] == 6
    assert calls["move"] == 0 and calls["delete_file"] == 0
    assert sum(calls.values()) - calls["create_dir"] == 6 and calls["create_dir"] <= 2
    listed = files_under(root)
    assert len([f for f in listed if f.startswith("segments/")]) == 3
    assert len([f for f in listed if f.startswith("index/")]) == 3
    assert not [f for f in listed if ".tmp" in f]

    calls.clear()
    reader = RequestCache(root, filesystem=fs)
    assert all(reader.get(key(i)) == entry(i) for i in range(250))
    assert reader.get(key(999)) is None
    # Loading: one listing (+1 for the old layout check) and 3 index reads; then one open per
    # segment and one ranged read per hit (reads on an open file are not filesystem calls).
    assert calls["open_input_stream"] == 3 and calls["list"] == 2
    assert calls["open_input_file"] == 3 and reader.io["ranged_reads"] == 250


def test_cache_through_a_filesystem_uri(tmp_path):
    cache = RequestCache(f"file://{tmp_path}/uri-cache")
    cache.put(key(1), entry(1))
    cache.close()
    assert RequestCache(f"file://{tmp_path}/uri-cache").get(key(1)) == entry(1)
    assert len(list((tmp_path / "uri-cache" / "segments").iterdir())) == 1


def test_stats_come_from_one_listing_without_reading_entries(tmp_path):
    root = str(tmp_path / "c")
    cache = RequestCache(root, flush_entries=40)
    for i in range(100):
        cache.put(key(i), entry(i))
    cache.close()
    fs, calls = counting_filesystem()
    stats = RequestCache(root, filesystem=fs).stats()
    segment_bytes = sum(os.path.getsize(tmp_path / "c" / f) for f in files_under(root) if f.startswith("segments/"))
    assert stats["entries"] == 100 and stats["index_files"] == 3 and stats["bytes"] == segment_bytes
    assert set(calls) == {"list"} and calls["list"] == 2  # the index folder + the old-layout check


def test_the_timer_flushes_a_quiet_buffer(tmp_path):
    root = str(tmp_path / "c")
    cache = RequestCache(root, flush_seconds=0.2)
    cache.put(key(1), entry(1))
    deadline = time.monotonic() + 5
    while RequestCache(root).get(key(1)) is None:
        assert time.monotonic() < deadline, "the buffer was never flushed"
        time.sleep(0.05)
    cache.close()


def test_a_segment_without_its_index_and_a_damaged_index_are_invisible(tmp_path):
    root = tmp_path / "c"
    cache = RequestCache(str(root), flush_seconds=0)
    cache.put(key(1), entry(1))
    cache.close()
    (index_file,) = (root / "index").iterdir()
    data = index_file.read_bytes()
    # A crash after the segment PUT and before the index: an orphan segment, never read.
    (root / "segments" / "0000000000000-crashed-000001.jsonl").write_bytes(
        json.dumps({"k": key(2), "e": entry(2)}).encode() + b"\n")
    # A truncated index (a foreign copy tool, a disk error) fails its checksum.
    (root / "index" / "0000000000000-trunc-000001-n1-b10.idx").write_bytes(data[: len(data) // 2])
    (root / "index" / "notes.txt").write_text("not an index")
    fresh = RequestCache(str(root))
    assert fresh.get(key(1)) == entry(1) and fresh.get(key(2)) is None
    with pytest.raises(ValueError):
        cache_index.decode_index(data[:-1])


def test_a_damaged_segment_is_a_miss_not_a_crash(tmp_path):
    root = tmp_path / "c"
    cache = RequestCache(str(root), flush_seconds=0)
    cache.put(key(1), entry(1))
    cache.put(key(2), entry(2))
    cache.close()
    (segment,) = (root / "segments").iterdir()
    raw = bytearray(segment.read_bytes())
    raw[5] = ord("#")  # corrupt the first line only
    segment.write_bytes(bytes(raw))
    fresh = RequestCache(str(root))
    assert fresh.get(key(1)) is None and fresh.get(key(2)) == entry(2)


CHILD = """
import os, signal, sys
from raypipe.llm import RequestCache, cache_key
root, how = sys.argv[1], sys.argv[2]
cache = RequestCache(root, flush_entries=10, flush_seconds=3600)
for i in range(25):  # two segments of 10 are written by put(); 5 entries stay buffered
    cache.put(cache_key("m", [{"role": "user", "content": f"q{i}"}], {}), {"text": f"answer {i}"})
if how == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_a_crash_loses_at_most_the_unflushed_buffer(tmp_path, how):
    root = str(tmp_path / "c")
    proc = subprocess.run([sys.executable, "-c", CHILD, root, how], capture_output=True, text=True, timeout=120)
    assert proc.returncode == (-signal.SIGKILL if how == "kill" else 0), proc.stderr
    cache = RequestCache(root)
    found = [i for i in range(25) if cache.get(key(i)) is not None]
    assert found == list(range(20 if how == "kill" else 25))  # a normal exit flushes the rest
    assert cache.stats()["entries"] == len(found)


def test_threads_put_and_get_concurrently(tmp_path):
    root = str(tmp_path / "c")
    cache = RequestCache(root, flush_entries=37, flush_seconds=0.05)
    errors = []

    def work(t):
        try:
            for i in range(t * 300, (t + 1) * 300):
                cache.put(key(i), entry(i))
                assert cache.get(key(i)) == entry(i)
                assert cache.get(key(i - 7)) in (None, entry(i - 7))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cache.close()
    assert not errors
    fresh = RequestCache(root)
    assert all(fresh.get(key(i)) == entry(i) for i in range(2400))
    assert fresh.stats()["entries"] == 2400


def test_the_cache_pickles_as_plain_data(tmp_path):
    cache = RequestCache(str(tmp_path), flush_entries=5)
    cache.put(key(1), entry(1))
    state = cache.__getstate__()
    assert set(state) == {"root_uri", "flush_entries", "flush_seconds", "refresh_seconds", "_given_fs"}
    cache.flush()
    clone = pickle.loads(pickle.dumps(cache))
    assert clone.get(key(1)) == entry(1) and clone.flush_entries == 5


def test_entries_of_the_one_file_per_entry_layout_are_still_read(tmp_path):
    old = tmp_path / "c" / key(1)[:2]
    old.mkdir(parents=True)
    (old / f"{key(1)}.json").write_text(json.dumps(entry(1)))
    cache = RequestCache(str(tmp_path / "c"))
    assert cache.get(key(1)) == entry(1) and cache.get(key(2)) is None
    assert cache.stats()["legacy_layout"] is True


def test_key_index_finds_keys_sharing_a_64_bit_prefix_and_after_merges(monkeypatch):
    monkeypatch.setattr(cache_index, "MERGE_AT", 10)
    index = cache_index.KeyIndex()
    rows = []
    for i in range(50):  # keys 2i and 2i+1 share their first 8 bytes
        rows.append((i, 2 * i, 0, 10, i * 100))
        rows.append((i, 2 * i + 1, 0, 20, i * 100 + 50))
    records = np.array(rows, dtype=cache_index.RECORD)
    index.add([("seg-a", 5000)], records[:6])  # into the small dict
    index.add([("seg-b", 5000)], records[6:])  # merged into the sorted array
    assert len(index) == 100 and not index.recent
    assert index.find(1, 2) == ("seg-a", 5000, 100, 10)
    assert index.find(3, 7) == ("seg-b", 5000, 350, 20)
    assert index.find(40, 80) == ("seg-b", 5000, 4000, 10)
    assert index.find(40, 82) is None and index.find(99, 0) is None
    again = index.add([("seg-a", 5000)], records[:6])  # a compacted copy of a known segment
    assert again == 0 and len(index) == 100


def test_index_names_carry_the_statistics():
    assert cache_index.parse_index_name(cache_index.index_file_name("0001-ab-000002", 17, 4096)) == (17, 4096)
    assert cache_index.parse_index_name("notes.txt") is None
    assert cache_index.parse_index_name(".tmp-abc") is None


def test_cli_cache_stats(tmp_path, capsys):
    from raypipe.cli import main

    cache = RequestCache(str(tmp_path))
    cache.put("ef" * 32, {"text": "x"})
    cache.close()
    assert main(["llm", "cache-stats", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["entries"] == 1 and out["index_files"] == 1 and out["bytes"] > 0
    assert main(["llm", "cache-stats", str(tmp_path / "missing")]) == 2
    assert "no such cache directory" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()
