"""Raw records of a source file, each with the line it starts on, so a reject can say where.

Reads JSON Lines, a JSON array (BFCL names its JSON Lines files `.json`, xLAM and glaive ship
one array; both are sniffed from the first character), and Parquet (row number as the line).
A record that cannot be read is yielded with an error (the reject reason) instead of stopping
the file: broken JSON, a line that is not UTF-8, nesting deeper than `safejson.MAX_DEPTH`,
numbers out of range, lone surrogates. A UTF-8 byte-order mark is dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterator

from raypipe import safejson
from raypipe.io import fs

# JSON's own whitespace: a line of only these is blank. Anything else (a form feed, a stray
# control character) is a line that holds something, so it is a reject, never skipped unseen.
JSON_WHITESPACE = " \t\r\n"
BOM_BYTES = b"\xef\xbb\xbf"
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


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
    for n, data in fs.iter_byte_lines(path):
        if not is_blank(data):
            yield parse_line(path, n, data)


def parse(line: int | None, raw: str) -> Record:
    """One JSON object as a Record (value or error)."""
    try:
        value = safejson.loads(raw)
    except json.JSONDecodeError as exc:
        return Record(line, raw, error=f"not valid JSON: {exc.msg} (column {exc.colno})")
    except ValueError as exc:
        return Record(line, raw, error=str(exc))
    if not isinstance(value, dict):
        return Record(line, raw, error=f"expected a JSON object, got {type(value).__name__}")
    return Record(line, raw, value=value)


def _first_char(path: str) -> str:
    with fs.open_input(path) as f:
        head = f.read(4096)
    text = head.decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n")
    return text[:1]


def _array_records(path: str) -> Iterator[Record]:
    """Elements of a top-level JSON array, each with the line it starts on.

    The file is decoded with `surrogateescape`, so a bad byte survives as a marker and only the
    element holding it is rejected (naming its line)."""
    with fs.open_input(path) as f:
        text = f.read().decode("utf-8", errors="surrogateescape")
    text = text.lstrip(fs.BOM)
    pos = text.index("[") + 1
    line, counted_to = 1, 0

    def skip_ws(p: int) -> int:
        while p < len(text) and text[p] in JSON_WHITESPACE:
            p += 1
        return p

    pos = skip_ws(pos)
    if pos < len(text) and text[pos] == "]":
        return
    while pos < len(text):
        line += text.count("\n", counted_to, pos)
        counted_to = pos
        try:
            value, end = safejson.raw_decode(text, pos)
            raw = text[pos:end]
            bad_byte = _escaped_byte(raw)
            if bad_byte is not None:
                yield Record(line, _printable(raw), error=f"not UTF-8 text (byte 0x{bad_byte:02x})")
            elif isinstance(value, dict):
                yield Record(line, raw, value=value)
            else:
                yield Record(line, raw, error=f"expected a JSON object, got {type(value).__name__}")
        except safejson.JSONValueError as exc:
            end = safejson.end_of_value(text, pos) if text[pos] in "[{" else None
            if end is None:
                yield Record(line, _printable(text[pos:pos + 200]),
                             error=f"{exc}; the rest of the file could not be read")
                return
            yield Record(line, _printable(text[pos:end]), error=str(exc))
        except json.JSONDecodeError as exc:
            # No safe way to find the next element after broken JSON: the rest is one reject.
            bad_byte = _escaped_byte(text[pos:])
            reason = (f"not UTF-8 text (byte 0x{bad_byte:02x})" if bad_byte is not None
                      else f"not valid JSON: {exc.msg} (line {exc.lineno})")
            yield Record(line, _printable(text[pos:]), error=f"{reason}; the rest of the file could not be read")
            return
        pos = skip_ws(end)
        if pos < len(text) and text[pos] == ",":
            pos = skip_ws(pos + 1)
        elif pos < len(text) and text[pos] == "]":
            rest = skip_ws(pos + 1)
            if rest < len(text):
                line += text.count("\n", counted_to, rest)
                yield Record(line, _printable(text[rest:rest + 200]),
                             error="not valid JSON: text after the closing ']' of the array")
            return
        else:
            line += text.count("\n", counted_to, pos)
            yield Record(line, _printable(text[pos:pos + 200]), error="not valid JSON: expected ',' or "
                         "']' between array elements; the rest of the file could not be read")
            return
    # The text ended inside the array: the last element was followed by ',' and nothing.
    # (Every element before was yielded; nothing else was in the file.)


def _escaped_byte(raw: str) -> int | None:
    """The first byte that was not UTF-8 (kept by `surrogateescape` as U+DC80..U+DCFF)."""
    m = _ESCAPED_BYTE.search(raw)
    return None if m is None else ord(m.group()) - 0xDC00


def _printable(raw: str) -> str:
    """Raw text fit for a reject row (valid UTF-8: bad bytes shown as \\xNN)."""
    return raw.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="backslashreplace")


def _parquet_records(path: str) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    filesystem, inner = fs.resolve(path)
    row_number = 0
    try:
        with filesystem.open_input_file(inner) as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=1024):
                for row in batch.to_pylist():
                    row_number += 1
                    yield Record(row_number, json.dumps(row, ensure_ascii=False, default=str), value=row)
    except (pa.ArrowException, OSError, UnicodeDecodeError, ValueError) as exc:
        # A damaged file: the rows read so far stand; what is left is one reject with the reason.
        yield Record(row_number + 1, "", error=f"cannot read Parquet after row {row_number}: "
                     f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; "
                     "the rest of the file could not be read")


def first_char(path: str) -> str:
    """The first character of a text file after a BOM and whitespace ('[' means a JSON array)."""
    return _first_char(path)


def is_blank(raw: bytes) -> bool:
    """A JSON Lines line of JSON whitespace only (a BOM at its start is not content)."""
    if raw.startswith(BOM_BYTES):
        raw = raw[len(BOM_BYTES):]
    return not raw.strip(JSON_WHITESPACE.encode())


def parse_line(path: str, line: int, raw: bytes) -> Record:
    """One JSON Lines record from the raw bytes of its line: a line that is not UTF-8 is an
    error of that line alone (naming the byte and column); a BOM at its start is dropped."""
    try:
        text = fs.decode_line(raw.rstrip(b"\r\n"))
    except UnicodeDecodeError as exc:
        return Record(line, raw.decode("utf-8", errors="backslashreplace"),
                      error=fs.undecodable_reason(raw, exc))
    return parse(line, text)
