"""Raw records of a source file, each with the line it starts on, so a reject can say where.

Reads JSON Lines, a JSON array (BFCL names its JSON Lines files `.json`, xLAM and glaive ship
one array; both are sniffed from the first character), and Parquet (row number as the line).
A record that cannot be parsed is yielded with an error instead of stopping the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator

from raypipe.io import fs


@dataclass
class Record:
    line: int | None
    raw: str
    value: dict[str, Any] | None = None
    error: str | None = None


def iter_records(path: str) -> Iterator[Record]:
    if path.endswith(".parquet"):
        yield from _parquet_records(path)
        return
    if _first_char(path) == "[":
        yield from _array_records(path)
        return
    for n, line in fs.iter_lines(path):
        if not line.strip():
            continue
        yield _parse(n, line)


def _parse(line: int | None, raw: str) -> Record:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return Record(line, raw, error=f"not valid JSON: {exc.msg} (column {exc.colno})")
    if not isinstance(value, dict):
        return Record(line, raw, error=f"expected a JSON object, got {type(value).__name__}")
    return Record(line, raw, value=value)


def _first_char(path: str) -> str:
    with fs.open_input(path) as f:
        head = f.read(4096)
    text = head.decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n")
    return text[:1]


def _array_records(path: str) -> Iterator[Record]:
    """Elements of a top-level JSON array, each with the line it starts on."""
    text = fs.read_text(path).lstrip("\ufeff")
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    line, counted_to = 1, 0

    def skip_ws(p: int) -> int:
        while p < len(text) and text[p] in " \t\r\n":
            p += 1
        return p

    pos = skip_ws(pos)
    if pos < len(text) and text[pos] == "]":
        return
    while pos < len(text):
        line += text.count("\n", counted_to, pos)
        counted_to = pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            # No safe way to find the next element after broken JSON: the rest is one reject.
            yield Record(line, text[pos:], error=f"not valid JSON: {exc.msg} (line {exc.lineno}); "
                         "the rest of the file could not be read")
            return
        raw = text[pos:end]
        if isinstance(value, dict):
            yield Record(line, raw, value=value)
        else:
            yield Record(line, raw, error=f"expected a JSON object, got {type(value).__name__}")
        pos = skip_ws(end)
        if pos < len(text) and text[pos] == ",":
            pos = skip_ws(pos + 1)
        elif pos < len(text) and text[pos] == "]":
            return
        else:
            line += text.count("\n", counted_to, pos)
            yield Record(line, text[pos:pos + 200], error="not valid JSON: expected ',' or ']' "
                         "between array elements; the rest of the file could not be read")
            return


def _parquet_records(path: str) -> Iterator[Record]:
    import pyarrow.parquet as pq

    filesystem, inner = fs.resolve(path)
    with filesystem.open_input_file(inner) as f:
        row_number = 0
        for batch in pq.ParquetFile(f).iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                row_number += 1
                yield Record(row_number, json.dumps(row, ensure_ascii=False, default=str), value=row)


def first_char(path: str) -> str:
    """The first character of a text file after a BOM and whitespace ('[' means a JSON array)."""
    return _first_char(path)


def parse_line(path: str, line: int, raw: bytes) -> Record:
    """One JSON Lines record from the raw bytes of its line (a line that is not UTF-8 is an
    error of that line alone)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Record(line, raw.decode("utf-8", errors="replace"),
                      error=f"not UTF-8 text (byte {exc.start} of the line)")
    if line == 1:
        text = text.lstrip("\ufeff")
    return _parse(line, text.rstrip("\r\n"))
