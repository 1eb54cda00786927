"""Paths that may be local or any pyarrow filesystem URI (s3://, gs://, hdfs://, file://).

Everything in raypipe.io opens files through here, so a job reads and writes `s3://` on a
cluster exactly as it does local folders on a laptop.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
from typing import Iterator

from raypipe.errors import RaypipeError

GLOB_CHARS = "*?["


def is_uri(path: str) -> bool:
    return "://" in str(path)


def resolve(path: str):
    """(filesystem, path inside it) for a local path or a URI."""
    from pyarrow import fs as pafs

    path = str(path)
    if is_uri(path):
        try:
            return pafs.FileSystem.from_uri(path)
        except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for unknown schemes
            raise RaypipeError(f"{path}: cannot open this filesystem URI ({exc})") from None
    return pafs.LocalFileSystem(), os.path.abspath(path)


def join(base: str, *parts: str) -> str:
    """Join path parts; keeps a URI a URI."""
    if is_uri(base):
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)


def expand(paths: list[str] | str, extensions: tuple[str, ...] = ()) -> list[str]:
    """Files named by paths, globs and folders, as given (URIs stay URIs), sorted, no duplicates.

    A folder means the files in it (recursively) ending in one of `extensions`, minus
    bookkeeping (hidden files, summaries, rejects); a folder with `data/` inside means that.
    Plain files only: dataset folders written by raypipe are read through their commit records
    by `raypipe.io.dataset.expand_inputs`, which every reader of samples uses.
    """
    from pyarrow import fs as pafs

    if isinstance(paths, str):
        paths = [paths]
    out: list[str] = []
    for given in paths:
        filesystem, inner = resolve(given)
        prefix = given[: len(given) - len(inner)] if is_uri(given) and given.endswith(inner) else None
        if any(ch in inner for ch in GLOB_CHARS):
            matches = _glob(filesystem, inner)
        else:
            info = filesystem.get_file_info(inner)
            if info.type == pafs.FileType.NotFound:
                raise RaypipeError(f"{given}: no such file or folder")
            if info.type == pafs.FileType.Directory:
                data_dir = posixpath.join(inner, "data") if is_uri(given) else os.path.join(inner, "data")
                if filesystem.get_file_info(data_dir).type == pafs.FileType.Directory:
                    inner = data_dir
                selector = pafs.FileSelector(inner, recursive=True)
                matches = sorted(
                    i.path for i in filesystem.get_file_info(selector)
                    if i.type == pafs.FileType.File and (not extensions or i.path.endswith(extensions))
                    and not _bookkeeping(i.path[len(inner):])
                )
            else:
                matches = [inner]
        if not matches:
            raise RaypipeError(f"{given}: matches no files")
        for m in matches:
            full = (prefix + m if prefix is not None else _with_scheme(given, m)) if is_uri(given) else m
            if full not in out:
                out.append(full)
    return out


def _bookkeeping(relative: str) -> bool:
    """Files inside a folder that are not data: hidden or underscore files and folders (commit
    records, leases), summaries, rejects of a stage."""
    parts = relative.replace("\\", "/").strip("/").split("/")
    return (any(p.startswith((".", "_")) for p in parts) or parts[-1] == "summary.json"
            or "rejects" in parts[:-1])


def _with_scheme(original: str, inner: str) -> str:
    scheme = original.split("://", 1)[0]
    if scheme == "file":
        return "file://" + inner
    return f"{scheme}://{inner.lstrip('/')}" if scheme in ("s3", "gs", "gcs") else f"{scheme}://{inner}"


def _glob(filesystem, pattern: str) -> list[str]:
    from pyarrow import fs as pafs

    parts = pattern.split("/")
    fixed = []
    for part in parts:
        if any(ch in part for ch in GLOB_CHARS):
            break
        fixed.append(part)
    base = "/".join(fixed) or "/"
    recursive = "**" in pattern or len(fixed) < len(parts) - 1
    try:
        infos = filesystem.get_file_info(pafs.FileSelector(base, recursive=recursive))
    except FileNotFoundError:
        return []
    regex_pattern = pattern.replace("**/", "*")
    return sorted(
        i.path for i in infos
        if i.type == pafs.FileType.File and fnmatch.fnmatch(i.path, regex_pattern)
    )


def open_input(path: str):
    filesystem, inner = resolve(path)
    try:
        return filesystem.open_input_stream(inner)
    except FileNotFoundError:
        raise RaypipeError(f"{path}: no such file") from None


BOM = "\ufeff"


def read_text(path: str) -> str:
    """A whole text file, decoded as UTF-8; a leading byte-order mark is dropped. A bad byte is
    an error naming its line and column."""
    with open_input(path) as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise RaypipeError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at column "
                           f"{column})") from None
    return text[1:] if text.startswith(BOM) else text


def iter_byte_lines(path: str) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw bytes without the line end), streaming. Lines end at b"\n" only
    (as in JSON Lines); a trailing b"\r" is dropped too. Decoding is left to the caller, so one
    bad byte costs one line, not the file."""
    import io

    with open_input(path) as raw:
        for n, line in enumerate(io.BufferedReader(raw, 1 << 20), start=1):
            if line.endswith(b"\n"):
                line = line[:-1]
            if line.endswith(b"\r"):
                line = line[:-1]
            yield n, line


def decode_line(data: bytes) -> str:
    """One line as text: UTF-8, a byte-order mark at its start dropped (files made by `cat` of
    files with a BOM have one mid-file). Raises UnicodeDecodeError."""
    text = data.decode("utf-8")
    return text[1:] if text.startswith(BOM) else text


def undecodable_reason(data: bytes, exc: UnicodeDecodeError) -> str:
    return f"not UTF-8 text (byte 0x{data[exc.start]:02x} at column {exc.start + 1})"


def iter_lines(path: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line text without newline), streaming; a BOM is dropped and a line
    that is not UTF-8 raises naming its line (callers that can skip a line use iter_byte_lines)."""
    for n, data in iter_byte_lines(path):
        try:
            yield n, decode_line(data)
        except UnicodeDecodeError as exc:
            raise RaypipeError(f"{path}:{n}: {undecodable_reason(data, exc)}") from None


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open_input(path) as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def stat(path: str) -> tuple[int, int]:
    """(size in bytes, modification time in ns; 0 where the filesystem has none)."""
    filesystem, inner = resolve(path)
    info = filesystem.get_file_info(inner)
    return int(info.size or 0), int(info.mtime_ns or 0)


def exists(path: str) -> bool:
    from pyarrow import fs as pafs

    filesystem, inner = resolve(path)
    return filesystem.get_file_info(inner).type != pafs.FileType.NotFound


def make_dirs(path: str) -> None:
    filesystem, inner = resolve(path)
    filesystem.create_dir(inner, recursive=True)


def remove_files(folder: str, prefix: str) -> None:
    """Delete files named `prefix*` in a folder (old shards of a previous run)."""
    from pyarrow import fs as pafs

    filesystem, inner = resolve(folder)
    if filesystem.get_file_info(inner).type != pafs.FileType.Directory:
        return
    for info in filesystem.get_file_info(pafs.FileSelector(inner)):
        if info.type == pafs.FileType.File and posixpath.basename(info.path).startswith(prefix):
            filesystem.delete_file(info.path)


def write_text(path: str, text: str) -> None:
    filesystem, inner = resolve(path)
    filesystem.create_dir(posixpath.dirname(inner) or ".", recursive=True)
    with filesystem.open_output_stream(inner) as f:
        f.write(text.encode("utf-8"))


def count_newlines(path: str, start: int, end: int) -> int:
    """Newline bytes in [start, end) of a file (runs as a Ray task over big files)."""
    filesystem, inner = resolve(path)
    n = 0
    with filesystem.open_input_file(inner) as f:
        f.seek(start)
        left = end - start
        while left > 0:
            chunk = f.read(min(left, 8 << 20))
            if not chunk:
                break
            n += chunk.count(b"\n")
            left -= len(chunk)
    return n


def iter_line_range(path: str, start: int, end: int, first_line: int) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line bytes without the newline) of the lines that start in
    [start, end) of a file. A line starts at offset 0 or right after a newline; a unit that
    starts mid-line leaves that line to the unit before it, which reads past its `end` to
    finish its last line."""
    filesystem, inner = resolve(path)
    with filesystem.open_input_file(inner) as f:
        if start > 0:
            f.seek(start - 1)
            at_line_start = f.read(1) == b"\n"
        else:
            at_line_start = True
        pos, line, buf = start, first_line, b""
        skipping = not at_line_start
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                chunk = f.read(1 << 20)
                if not chunk:
                    if buf and not skipping and pos < end:
                        yield line, buf
                    return
                buf += chunk
                continue
            raw, buf = buf[:nl], buf[nl + 1:]
            if skipping:  # the tail of a line that started before this unit (and is its)
                skipping = False
                line += 1
            else:
                if pos >= end:
                    return
                yield line, raw
                line += 1
            pos += nl + 1
