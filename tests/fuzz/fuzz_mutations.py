"""Hypothesis strategies that damage valid input files the ways hostile or unlucky users do.

A `Damaged` file is the bytes to write plus what is still known about it: how many records a
reader must account for (`expected_records`: None once a byte-level mutation may have merged,
split or hidden records of a JSON array). Mutations:

- structural (on parsed records, record count kept): deep nesting, huge/invalid numbers, type
  swaps, lone surrogate escapes, long strings, dropped and unknown keys, duplicated records and
  duplicated ids;
- byte-level (on the serialized file): truncation, byte flips, invalid UTF-8, BOMs, CRLF, NULs.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

PLACEHOLDER = "\u0000raypipe-fuzz-raw-{}\u0000"

# Raw JSON texts a writer of hostile files can produce (the placeholders are swapped for them
# after serializing, since json.dumps would never write most of these).
RAW_NUMBERS = ["1e999", "-1e999", "1" * 5000, "9" * 4301, "NaN", "Infinity", "-Infinity",
               "123456789012345678901234567890", "-0", "1E400", "0.1e-400", "4300"]
SWAPS: list[Any] = [None, 0, -1, 1.5, True, False, "", "x", [], {}, [1, "a", None], {"k": "v"},
                    "a" * 5000, 10**30, -(10**18), "\u202e\u0000\u200b", "<|im_end|>", "../../etc/passwd"]
RAW_STRINGS = ['"\\ud800"', '"\\udfff tail"', '"ok \\ud83d\\ude00"', '"\\u0000"']


@dataclass
class Damaged:
    data: bytes
    expected_records: int | None  # records a reader must count (in = out + rejected)
    how: list[str]


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys/indices) inside a JSON value, the root excluded."""
    out = []
    todo = [(prefix, value)]
    while todo and len(out) < 5000:
        path, v = todo.pop()
        if isinstance(v, dict):
            for k, child in v.items():
                out.append(path + (k,))
                todo.append((path + (k,), child))
        elif isinstance(v, list):
            for i, child in enumerate(v):
                out.append(path + (i,))
                todo.append((path + (i,), child))
    return out


def _set(root: Any, path: tuple, new: Any) -> None:
    target = root
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new


def _nested_text(depth: int, kind: str) -> str:
    return "[" * depth + "1" + "]" * depth if kind == "list" else '{"a":' * depth + "1" + "}" * depth


def mutate_records(records: list[Any], rng: random.Random, ops: int, id_key: str | None) -> tuple[list[Any], dict, list[str]]:
    """Structural damage; returns (records, raw placeholders -> text, description)."""
    records = json.loads(json.dumps(records))  # a private copy
    raw: dict[str, str] = {}
    how: list[str] = []
    for _ in range(ops):
        if not records:
            break
        i = rng.randrange(len(records))
        op = rng.choice(["nest", "number", "swap", "surrogate", "drop_key", "unknown_key",
                         "dup_record", "dup_id", "swap_root"])
        paths = _paths(records[i])
        if op == "nest" and paths:
            depth = rng.choice([50, 99, 100, 101, 150, 999, 1000, 1500, 5000])
            key = PLACEHOLDER.format(len(raw))
            raw[key] = _nested_text(depth, rng.choice(["list", "dict"]))  # as text: json would recurse
            _set(records[i], rng.choice(paths), key)
            how.append(f"nest {depth} in record {i}")
        elif op in ("number", "surrogate") and paths:
            text = rng.choice(RAW_NUMBERS if op == "number" else RAW_STRINGS)
            key = PLACEHOLDER.format(len(raw))
            raw[key] = text
            _set(records[i], rng.choice(paths), key)
            how.append(f"{op} {text[:12]} in record {i}")
        elif op == "swap" and paths:
            _set(records[i], rng.choice(paths), rng.choice(SWAPS))
            how.append(f"type swap in record {i}")
        elif op == "drop_key" and paths:
            path = rng.choice(paths)
            parent = records[i]
            for key in path[:-1]:
                parent = parent[key]
            if isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent.pop(path[-1])
            how.append(f"drop {path[-1]!r} in record {i}")
        elif op == "unknown_key" and isinstance(records[i], dict):
            records[i]["zz_unknown"] = rng.choice(SWAPS)
            how.append(f"unknown key in record {i}")
        elif op == "dup_record":
            records.insert(rng.randrange(len(records) + 1), json.loads(json.dumps(records[i])))
            how.append(f"duplicate record {i}")
        elif op == "dup_id" and id_key and len(records) > 1:
            j = rng.randrange(len(records))
            if isinstance(records[i], dict) and isinstance(records[j], dict) and id_key in records[j]:
                records[i][id_key] = records[j][id_key]
                how.append(f"record {i} takes the id of record {j}")
        elif op == "swap_root":
            records[i] = rng.choice([None, 1, "s", [1], [records[i]]])
            how.append(f"record {i} is no object")
    return records, raw, how


def serialize(records: list[Any], layout: str, raw: dict[str, str]) -> bytes:
    if layout == "jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    else:
        text = json.dumps(records, ensure_ascii=False, indent=1)
    for key, value in raw.items():
        text = text.replace(json.dumps(key, ensure_ascii=False), value)
    return text.encode("utf-8")


BAD_BYTES = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\x00", b"\xef\xbb\xbf", b"\x80\x80",
             b"\xf4\x90\x80\x80", b"\r", b"\x1c", b"\x85", b"\xe2\x80\xa8"]


def damage_bytes(data: bytes, rng: random.Random, ops: int) -> tuple[bytes, list[str]]:
    how = []
    buf = bytearray(data)
    for _ in range(ops):
        op = rng.choice(["truncate", "flip", "insert_bad", "bom", "crlf", "latin1", "delete_newline", "blank_lines"])
        if op == "truncate" and buf:
            cut = rng.randrange(len(buf))
            del buf[cut:]
            how.append(f"truncate at {cut}")
        elif op == "flip" and buf:
            for _ in range(rng.randint(1, 5)):
                buf[rng.randrange(len(buf))] = rng.randrange(256)
            how.append("flip bytes")
        elif op == "insert_bad":
            at = rng.randrange(len(buf) + 1)
            bad = rng.choice(BAD_BYTES)
            buf[at:at] = bad
            how.append(f"insert {bad!r} at {at}")
        elif op == "bom":
            buf[0:0] = b"\xef\xbb\xbf"
            how.append("BOM")
        elif op == "crlf":
            buf = bytearray(bytes(buf).replace(b"\n", b"\r\n"))
            how.append("CRLF")
        elif op == "latin1":
            text = bytes(buf).decode("utf-8", errors="ignore")
            buf = bytearray(text.encode("latin-1", errors="replace"))
            how.append("latin-1")
        elif op == "delete_newline" and b"\n" in buf:
            positions = [i for i, b in enumerate(buf) if b == 10]
            del buf[rng.choice(positions)]
            how.append("join two lines")
        elif op == "blank_lines":
            at = bytes(buf).find(b"\n")
            if at >= 0:
                buf[at:at] = b"\n \t\n\r\n"
            how.append("blank lines")
    return bytes(buf), how


def count_jsonl_records(data: bytes) -> int | None:
    """Records a JSON Lines reader must account for: every line holding more than JSON
    whitespace (a BOM at a line start is not content). None if the file reads as a JSON array."""
    head = data[:4096].decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n")
    if head.startswith("["):
        return None
    n = 0
    for line in data.split(b"\n"):
        if line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        if line.strip(b" \t\r"):
            n += 1
    return n


@st.composite
def damaged_files(draw, records: list[Any], layout: str, id_key: str | None = None) -> Damaged:
    """A damaged copy of `records` written as `layout` ("jsonl" or "array")."""
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    structural = draw(st.integers(0, 3))
    byte_ops = draw(st.integers(0, 2)) if structural else draw(st.integers(1, 3))
    mutated, raw, how = mutate_records(records, rng, structural, id_key)
    data = serialize(mutated, layout, raw)
    expected: int | None = len(mutated)
    if byte_ops:
        data, more = damage_bytes(data, rng, byte_ops)
        how += more
        expected = count_jsonl_records(data) if layout == "jsonl" else None
    elif layout == "jsonl":
        expected = count_jsonl_records(data)
    return Damaged(data, expected, how)
