"""The on-disk index of the request cache, and the sorted in-memory array built from it.

A segment (`segments/<name>.jsonl`) holds entries as JSON lines, `{"k": key, "e": entry}`.
Its index (`index/<name>-n<entries>-b<bytes>.idx`) lists, for every entry, the first 16 bytes
of its key and where its line lies in the segment. The counts in the index's *name* give the
cache's statistics from one listing, without reading anything. An index may cover several
segments (`compact` merges many small indexes into one).

Index file (little-endian): magic `RPCIDX01`, u32 segment count, u32 record count; per segment
u16 name length, name (UTF-8), u64 segment size; records of 32 bytes (u64 key[0:8],
u64 key[8:16], u32 segment number, u32 length, u64 offset); u32 CRC-32 of everything before
it. A truncated or damaged index fails the check and is ignored (its entries are misses).
"""

from __future__ import annotations

import re
import struct
import zlib

import numpy as np

MAGIC = b"RPCIDX01"
RECORD = np.dtype([("hi", "<u8"), ("lo", "<u8"), ("seg", "<u4"), ("len", "<u4"), ("off", "<u8")])
INDEX_NAME = re.compile(r"^(?P<name>[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*)-n(?P<n>\d+)-b(?P<b>\d+)\.idx$")
MERGE_AT = 50_000  # recent lookups kept in a dict until this many, then merged into the arrays


def key_parts(key: str) -> tuple[int, int]:
    """(hi, lo): the first 16 bytes of a hex sha256 key as two integers."""
    raw = bytes.fromhex(key[:32])
    return int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:16], "little")


def index_file_name(name: str, entries: int, size: int) -> str:
    return f"{name}-n{entries}-b{size}.idx"


def parse_index_name(filename: str) -> tuple[int, int] | None:
    """(entries, segment bytes) from an index file name; None for any other file."""
    m = INDEX_NAME.match(filename)
    return (int(m["n"]), int(m["b"])) if m else None


def encode_index(segments: list[tuple[str, int]], records: np.ndarray) -> bytes:
    parts = [MAGIC, struct.pack("<II", len(segments), len(records))]
    for name, size in segments:
        raw = name.encode("utf-8")
        parts.append(struct.pack("<H", len(raw)) + raw + struct.pack("<Q", size))
    parts.append(np.ascontiguousarray(records, dtype=RECORD).tobytes())
    body = b"".join(parts)
    return body + struct.pack("<I", zlib.crc32(body))


def decode_index(data: bytes) -> tuple[list[tuple[str, int]], np.ndarray]:
    """(segments [(name, size)], records); ValueError for anything but a whole, intact index."""
    if len(data) < 20 or data[:8] != MAGIC:
        raise ValueError("not a cache index")
    body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    if zlib.crc32(body) != crc:
        raise ValueError("cache index checksum mismatch (truncated or damaged)")
    n_segments, n_records = struct.unpack_from("<II", body, 8)
    pos, segments = 16, []
    for _ in range(n_segments):
        (length,) = struct.unpack_from("<H", body, pos)
        name = body[pos + 2 : pos + 2 + length].decode("utf-8")
        (size,) = struct.unpack_from("<Q", body, pos + 2 + length)
        segments.append((name, size))
        pos += 2 + length + 8
    if len(body) - pos != n_records * RECORD.itemsize:
        raise ValueError("cache index has the wrong length")
    records = np.frombuffer(body, dtype=RECORD, count=n_records, offset=pos)
    if n_records and int(records["seg"].max()) >= n_segments:
        raise ValueError("cache index names a segment it does not list")
    return segments, records


class KeyIndex:
    """Every entry this process knows: key -> (segment, offset, length), O(log n) lookups.

    One sorted record array (32 bytes per entry: 1M entries = 32 MB), plus a small dict of
    entries added since the last merge. Not thread-safe: the cache holds its lock around it.
    """

    def __init__(self) -> None:
        self.sorted = np.zeros(0, dtype=RECORD)
        self.his = np.zeros(0, dtype="<u8")  # sorted["hi"], contiguous: the searched column
        self.recent: dict[tuple[int, int], tuple[int, int, int]] = {}
        self.segments: list[tuple[str, int]] = []  # segment number -> (name, size)
        self.segment_numbers: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.sorted) + len(self.recent)

    def has_segment(self, name: str) -> bool:
        return name in self.segment_numbers

    def add(self, segments: list[tuple[str, int]], records: np.ndarray) -> int:
        """Add an index's records, skipping segments already known (another index covered
        them, e.g. before a compaction). Returns the number of entries added."""
        local_to_global = np.full(len(segments), -1, dtype=np.int64)
        for i, (name, size) in enumerate(segments):
            if name not in self.segment_numbers:
                self.segment_numbers[name] = len(self.segments)
                self.segments.append((name, size))
                local_to_global[i] = self.segment_numbers[name]
        if not len(records):
            return 0
        mapped = local_to_global[records["seg"]]
        keep = mapped >= 0
        if not keep.any():
            return 0
        new = np.array(records[keep], dtype=RECORD)
        new["seg"] = mapped[keep]
        # Sorting costs O(n log n) for the whole array: done once per MERGE_AT new entries
        # (and once for a whole batch of indexes read together), never per segment.
        if len(new) + len(self.recent) < MERGE_AT:
            for r in new.tolist():
                self.recent[(r[0], r[1])] = (r[2], r[4], r[3])
        else:
            self._merge(new)
        return len(new)

    def add_many(self, indexes: list[tuple[list[tuple[str, int]], np.ndarray]]) -> int:
        """Add several indexes (a refresh) with at most one sort."""
        segments: list[tuple[str, int]] = []
        parts = []
        for segs, records in indexes:
            shifted = np.array(records, dtype=RECORD)
            shifted["seg"] += len(segments)
            segments.extend(segs)
            parts.append(shifted)
        records = np.concatenate(parts) if parts else np.zeros(0, dtype=RECORD)
        return self.add(segments, records)

    def _merge(self, new: np.ndarray) -> None:
        pending = np.array([(k[0], k[1], v[0], v[2], v[1]) for k, v in self.recent.items()],
                           dtype=RECORD) if self.recent else np.zeros(0, dtype=RECORD)
        merged = np.concatenate([self.sorted, pending, new])
        self.sorted = merged[np.argsort(merged["hi"], kind="stable")]
        self.his = np.ascontiguousarray(self.sorted["hi"])
        self.recent = {}

    def find(self, hi: int, lo: int) -> tuple[str, int, int, int] | None:
        """(segment name, segment size, offset, length) of the key, or None."""
        hit = self.recent.get((hi, lo))
        if hit is None:
            his, i = self.his, int(self.his.searchsorted(np.uint64(hi)))
            while i < len(his) and int(his[i]) == hi:  # 64-bit prefixes: ~1 clash in 2^32 pairs
                r = self.sorted[i]
                if int(r["lo"]) == lo:
                    hit = (int(r["seg"]), int(r["off"]), int(r["len"]))
                    break
                i += 1
        if hit is None:
            return None
        name, size = self.segments[hit[0]]
        return name, size, hit[1], hit[2]
