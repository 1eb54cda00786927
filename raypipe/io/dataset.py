"""The commit contract: how every dataset raypipe writes becomes visible, and how it is read.

    out/
      data/<gen>-<name>.parquet     output rows of one commit (or .jsonl)
      rejects/<gen>-<name>.parquet  input rows that could not be used, with reasons
      _ids/<gen>-<name>.parquet     input ids the commit settled (resumable stages: resume key)
      _commits/<gen>-<name>.json    the commit record, written last and atomically
      _manifest.json                the current generation and its state (written by finalize)
      _lease.json                   the one writer holding the folder (see raypipe.io.lease)
      summary.json                  the stage's own report, written by finalize

Rules every writer follows (and the reasons):

- A file is part of the dataset only once a commit record names it; every reader reads
  through the records (`open_dataset`). Files without a record (a task that died before its
  record, a retried batch that produced fewer parts) are invisible, and `finalize` deletes them.
- Commit names are deterministic from the input they cover (a file index and shard, the hash of
  a batch's ids), so a retried Ray task or a restarted actor overwrites its own files instead of
  adding copies.
- A run writes into a *generation*. A run that starts over (convert, tokenize, mix) opens a new
  generation and the manifest switches to it only when it is complete; until then readers keep
  reading the previous one, so a failed re-run never destroys the last good output. A resumable
  run (LLM stages) keeps the manifest's generation and adds commits to it.
- Counts come from the records, so `rows_in == rows_out_sources + rejected + pending` holds over
  any number of runs, crashes and retries.

Everything goes through `pyarrow.fs`, so a folder may be local or any filesystem URI (s3://...).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import posixpath
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from raypipe.errors import RaypipeError
from raypipe.io import fs

MANIFEST = "_manifest.json"
COMMITS = "_commits"
IDS = "_ids"
SPEND = "_spend"  # what workers spent on LLM requests (raypipe.llm.spend)
DATA, REJECTS = "data", "rejects"
LAYOUT_VERSION = 1


def new_generation() -> str:
    """Sortable by creation time, unique across concurrent writers."""
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"g{now}{secrets.token_hex(3)}"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# -- writing ---------------------------------------------------------------------------------


@contextlib.contextmanager
def begin_write(out: str, stage: str, inputs: Iterable[str] = (), *, resumable: bool = False,
                fresh: bool = False) -> Iterator["DatasetWriter"]:
    """The driver's side of writing a dataset: refuse an output that is an input, take the
    folder's lease (one writer at a time), choose the generation; the caller commits (here or
    in Ray tasks) and calls `finalize` inside the block. The lease is released on the way out,
    also when the run fails (its commits stay invisible until a later run finalizes them)."""
    from raypipe.io.lease import Lease

    check_not_input(out, inputs)
    make_output_dir(out)
    lease = Lease(out, stage).acquire()
    try:
        writer = DatasetWriter(out, stage, resumable=resumable)
        writer.lease = lease
        yield writer.open(fresh=fresh)
    finally:
        lease.release()


def make_output_dir(out: str) -> None:
    """Create the output folder, or say in one line why it cannot be one (a file, under a file,
    not writable: `raypipe.io.paths.output_problem`, which `raypipe run --check` uses too)."""
    from raypipe.io.paths import output_problem

    problem = output_problem(out, "dir")
    if problem:
        raise RaypipeError(problem)
    try:
        fs.make_dirs(out)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise RaypipeError(f"{out}: cannot be used as an output folder ({reason})") from None


@dataclass
class DatasetWriter:
    """A handle on one dataset folder being written. Plain data: it pickles into Ray tasks and
    actors, where `commit` runs; the driver calls `open`, `records` and `finalize`."""

    out: str
    stage: str
    generation: str = ""
    resumable: bool = False
    lease: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "lease": None}  # the lease (a thread) stays on the driver

    # -- driver ---------------------------------------------------------------------------
    def open(self, *, fresh: bool = False) -> "DatasetWriter":
        """Choose the generation: the manifest's one for a resumable run (unless `fresh`),
        else a new one."""
        manifest = read_manifest(self.out)
        if self.resumable and not fresh and manifest is not None:
            self.generation = manifest["generation"]
        elif self.resumable and not fresh and manifest is None:
            # A first run that never finished has records but no manifest: resume those.
            self.generation = newest_generation(self.out) or new_generation()
        else:
            self.generation = new_generation()
        return self

    def records(self) -> list[dict[str, Any]]:
        return read_records(self.out, self.generation)

    def finalize(self, *, rows_in: int | None, summary: dict[str, Any],
                 extra_manifest: dict[str, Any] | None = None) -> dict[str, Any]:
        """Make this generation the dataset: write the manifest (atomically), the summary,
        then delete older generations and files no record names. Returns the manifest."""
        if self.lease is not None:
            self.lease.check()
        records = self.records()
        totals = sum_records(records)
        pending = None if rows_in is None else rows_in - totals["settled"]
        manifest = {
            "layout": LAYOUT_VERSION, "stage": self.stage, "generation": self.generation,
            "finalized_at": _now(), "rows_in": rows_in, "rows_out": totals["rows"],
            "rejected": totals["rejected"], "settled": totals["settled"], "pending": pending,
            "complete": pending in (None, 0),
            "records": sorted(r["name"] for r in records),
            "files": {DATA: sorted(r[DATA] for r in records if r.get(DATA)),
                      REJECTS: sorted(r[REJECTS] for r in records if r.get(REJECTS))},
            **(extra_manifest or {}),
        }
        write_atomic(fs.join(self.out, MANIFEST), json.dumps(manifest, indent=1, ensure_ascii=False))
        fs.write_text(fs.join(self.out, "summary.json"),
                      json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n")
        sweep(self.out, self.generation, {p for r in records for p in _files_of(r)})
        return manifest

    def retract_rejects(self, keep_reason_prefix: str = "duplicate id") -> int:
        """Un-settle the rejected rows of this generation (`--retry-rejects`): each commit
        with rejects is rewritten without them (new files, then the record, atomically), so
        those rows are pending again. Rejects whose reason starts with `keep_reason_prefix`
        stay. Returns how many rows were retracted; idempotent after a crash."""
        import pyarrow.parquet as pq

        retracted = 0
        for record in self.records():
            if not record.get(REJECTS) or not record.get(IDS):
                continue
            filesystem, inner = fs.resolve(fs.join(self.out, record[REJECTS]))
            rejects = pq.read_table(inner, filesystem=filesystem)
            keep_mask = [r.startswith(keep_reason_prefix) for r in rejects.column("reason").to_pylist()]
            retry_ids = {i for i, keep in zip(rejects.column("id").to_pylist(), keep_mask) if not keep}
            if not retry_ids:
                continue
            filesystem, inner = fs.resolve(fs.join(self.out, record[IDS]))
            ids = [i for i in pq.read_table(inner, filesystem=filesystem).column("id").to_pylist()
                   if i not in retry_ids]
            kept = rejects.filter(keep_mask)
            retracted += rejects.num_rows - kept.num_rows
            reasons = {}
            for reason in kept.column("reason").to_pylist():
                kind = reason.split(":", 1)[0].strip()
                reasons[kind] = reasons.get(kind, 0) + 1
            counts = {k: v for k, v in record.items() if k not in (
                "name", "generation", DATA, REJECTS, IDS, "rows", "rejected", "settled", "written_at")}
            counts["reasons"] = reasons
            # A new name for the rewritten files: the old ones stay valid until the new record.
            suffix = f"{record['name']}~{secrets.token_hex(3)}"
            rel_ids = self.file_path(IDS, suffix)
            import pyarrow as pa

            _write_parquet(pa.table({"id": pa.array(ids, pa.string())}), fs.join(self.out, rel_ids))
            rel_rej = None
            if kept.num_rows:
                rel_rej = self.file_path(REJECTS, suffix)
                _write_parquet(kept, fs.join(self.out, rel_rej))
            new = {**record, REJECTS: rel_rej, IDS: rel_ids, "rejected": kept.num_rows,
                   "settled": len(ids), "written_at": _now(), **counts}
            write_atomic(fs.join(self.out, COMMITS, f"{self.generation}-{record['name']}.json"),
                         json.dumps(new, ensure_ascii=False, default=str))
        return retracted

    # -- workers ----------------------------------------------------------------------------
    def file_path(self, kind: str, name: str, ext: str = ".parquet") -> str:
        return f"{kind}/{self.generation}-{name}{ext}"

    def commit(self, name: str, *, data=None, rejects=None, ids: list[str] | None = None,
               counts: dict[str, Any] | None = None,
               written: dict[str, tuple[str, int]] | None = None) -> dict[str, Any]:
        """Write one commit: its files first, then its record (the moment it becomes part of
        the dataset). `data`/`rejects` are Arrow tables (None or empty: no file); `written`
        names files the caller already wrote at `file_path(kind, name)` (streaming shard
        writers) as {kind: (relative path, rows)}; `ids` are the input ids this commit settles
        (the resume key). Idempotent: committing the same name again overwrites it."""
        import pyarrow as pa

        if not self.generation:
            raise RuntimeError("DatasetWriter.commit before open()")
        record: dict[str, Any] = {"name": name, "generation": self.generation, DATA: None,
                                  REJECTS: None, IDS: None, "rows": 0, "rejected": 0,
                                  "settled": 0, "written_at": _now()}
        tallies = {DATA: "rows", REJECTS: "rejected"}
        for kind, (rel, rows) in (written or {}).items():
            record[kind], record[tallies[kind]] = rel, rows
        for kind, table in ((DATA, data), (REJECTS, rejects)):
            if table is not None and table.num_rows:
                rel = self.file_path(kind, name)
                _write_parquet(table, fs.join(self.out, rel))
                record[kind], record[tallies[kind]] = rel, table.num_rows
        if ids is not None:
            rel = self.file_path(IDS, name)
            _write_parquet(pa.table({"id": pa.array(ids, pa.string())}), fs.join(self.out, rel))
            record[IDS], record["settled"] = rel, len(ids)
        else:
            record["settled"] = record["rows"] + record["rejected"]
        record.update(counts or {})
        write_atomic(fs.join(self.out, COMMITS, f"{self.generation}-{name}.json"),
                     json.dumps(record, ensure_ascii=False, default=str))
        return record


def _write_parquet(table, path: str) -> None:
    import pyarrow.parquet as pq

    filesystem, inner = fs.resolve(path)
    filesystem.create_dir(posixpath.dirname(inner), recursive=True)
    pq.write_table(table, inner, filesystem=filesystem, compression="zstd")


def write_atomic(path: str, text: str) -> None:
    """Readers see the old content or the new one, never half: a rename on local disks, one
    PUT on object stores (which publish an object only when its upload completes)."""
    from pyarrow import fs as pafs

    filesystem, inner = fs.resolve(path)
    filesystem.create_dir(posixpath.dirname(inner), recursive=True)
    body = text.encode("utf-8")
    if isinstance(filesystem, pafs.LocalFileSystem):
        import os

        tmp = f"{inner}.tmp-{secrets.token_hex(4)}"
        with open(tmp, "wb") as f:
            f.write(body)
        os.replace(tmp, inner)
        return
    with filesystem.open_output_stream(inner) as f:
        f.write(body)


def check_not_input(out: str, inputs: Iterable[str]) -> None:
    """Refuse, before anything is written, an output folder that is (or holds, or lies
    inside) one of the inputs: the run would delete or re-read what it reads."""
    target = _norm(out)
    for given in inputs or ():
        path = _norm(_before_glob(str(given)))
        if path == target or path.startswith(target + "/") or target.startswith(path + "/"):
            raise RaypipeError(
                f"{out}: the output is one of the inputs ({given}); write to another folder")


def _before_glob(path: str) -> str:
    cut = min((path.find(c) for c in fs.GLOB_CHARS if c in path), default=-1)
    return path if cut < 0 else path[:cut].rsplit("/", 1)[0]


def _norm(path: str) -> str:
    if fs.is_uri(path):
        return path.rstrip("/")
    import os

    return os.path.realpath(os.path.abspath(path)).rstrip("/")


# -- reading ---------------------------------------------------------------------------------


def read_manifest(out: str) -> dict[str, Any] | None:
    path = fs.join(out, MANIFEST)
    if not fs.exists(path):
        return None
    try:
        return json.loads(fs.read_text(path))
    except ValueError:
        raise RaypipeError(f"{path}: damaged manifest (not JSON); re-run the step that writes {out}") from None


def list_names(out: str, sub: str) -> list[str]:
    """Names of the files in `out/sub` (empty when the folder does not exist)."""
    from pyarrow import fs as pafs

    filesystem, inner = fs.resolve(fs.join(out, sub))
    if filesystem.get_file_info(inner).type != pafs.FileType.Directory:
        return []
    return sorted(posixpath.basename(i.path) for i in filesystem.get_file_info(pafs.FileSelector(inner))
                  if i.type == pafs.FileType.File)


def newest_generation(out: str) -> str | None:
    gens = {n.split("-", 1)[0] for n in list_names(out, COMMITS) if n.endswith(".json")}
    return max(gens) if gens else None


def read_records(out: str, generation: str, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The commit records of one generation (all of them, or those named), read in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    prefix = f"{generation}-"
    files = [n for n in list_names(out, COMMITS) if n.startswith(prefix) and n.endswith(".json")]
    if names is not None:
        wanted = {f"{prefix}{n}.json" for n in names}
        files = [n for n in files if n in wanted]

    def load(name: str) -> dict[str, Any]:
        return json.loads(fs.read_text(fs.join(out, COMMITS, name)))

    if len(files) < 8:
        return [load(n) for n in files]
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(load, files))


def sum_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over commit records: rows, rejected, settled, and every other numeric count;
    `reasons` dicts are added up key by key."""
    totals: dict[str, Any] = {"rows": 0, "rejected": 0, "settled": 0, "reasons": {}}
    for r in records:
        for k, v in r.items():
            if k == "reasons" and isinstance(v, dict):
                for kind, n in v.items():
                    totals["reasons"][kind] = totals["reasons"].get(kind, 0) + n
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                totals[k] = totals.get(k, 0) + v
    return totals


def _files_of(record: dict[str, Any]) -> list[str]:
    return [record[k] for k in (DATA, REJECTS, IDS) if record.get(k)]


_CONTRACT_NAME = re.compile(r"^g\d{8}T\d{6}[0-9a-f]{6}-")


def sweep(out: str, generation: str, keep: set[str]) -> int:
    """Delete what is not part of `generation`: older generations' files and records, files
    of this generation that no record names (a dead task's leftovers), temporary files, and
    shards of the layout before the commit contract (`part-*`). Files of other names are a
    user's own and stay. Only the lease holder calls this, after its workers have stopped."""
    filesystem, _ = fs.resolve(out)
    removed = 0
    for sub in (DATA, REJECTS, IDS, COMMITS, SPEND):
        for name in list_names(out, sub):
            rel = f"{sub}/{name}"
            if name.startswith("part-") and sub in (DATA, REJECTS):
                stale = True
            elif not _CONTRACT_NAME.match(name):
                continue
            else:
                stale = (".tmp-" in name or not name.startswith(f"{generation}-")
                         or (sub not in (COMMITS, SPEND) and rel not in keep))
            if stale:
                filesystem.delete_file(fs.resolve(fs.join(out, rel))[1])
                removed += 1
    return removed


@dataclass
class DatasetView:
    """What a reader sees in a folder: its committed files, and whether it is complete."""

    path: str
    data: list[str] = field(default_factory=list)  # full paths, in commit-name order
    rejects: list[str] = field(default_factory=list)
    complete: bool = True
    managed: bool = True  # written under the commit contract (False: a plain folder of files)
    manifest: dict[str, Any] | None = None
    why_incomplete: str = ""

    def require_complete(self) -> "DatasetView":
        if not self.complete:
            raise RaypipeError(f"{self.path}: incomplete dataset ({self.why_incomplete}); re-run the "
                               "step that writes it (it resumes), or pass --allow-incomplete")
        return self


def is_managed(path: str) -> bool:
    return fs.exists(fs.join(path, MANIFEST)) or fs.exists(fs.join(path, COMMITS))


def open_dataset(path: str) -> DatasetView:
    """The committed view of a dataset folder written by raypipe."""
    manifest = read_manifest(path)
    if manifest is not None:
        gen = manifest["generation"]
        known = set(manifest.get("records", []))
        extra_names = [n[len(gen) + 1:-5] for n in list_names(path, COMMITS)
                       if n.startswith(f"{gen}-") and n.endswith(".json") and n[len(gen) + 1:-5] not in known]
        extra = read_records(path, gen, extra_names) if extra_names else []
        data = list(manifest["files"][DATA]) + [r[DATA] for r in extra if r.get(DATA)]
        rejects = list(manifest["files"][REJECTS]) + [r[REJECTS] for r in extra if r.get(REJECTS)]
        complete = bool(manifest.get("complete")) and not extra
        why = "" if complete else (
            f"{len(extra)} commits of a later run that did not finish" if extra
            else f"{manifest.get('pending')} input rows still pending")
    else:
        gen = newest_generation(path)
        records = read_records(path, gen) if gen else []
        data = [r[DATA] for r in records if r.get(DATA)]
        rejects = [r[REJECTS] for r in records if r.get(REJECTS)]
        complete, why = False, "its first run has not finished"
    return DatasetView(path=path, data=sorted(fs.join(path, p) for p in data),
                       rejects=sorted(fs.join(path, p) for p in rejects), complete=complete,
                       manifest=manifest, why_incomplete=why)


def expand_inputs(paths: list[str] | str, extensions: tuple[str, ...] = (), *,
                  allow_incomplete: bool = False) -> list[str]:
    """Input files named by paths, globs and folders. A dataset folder written by raypipe
    means its committed data files (files without a commit record are invisible), and an
    incomplete one is refused unless `allow_incomplete`; a plain folder holding such datasets
    means theirs plus its other files; a glob keeps, inside a dataset, only committed files."""
    out: list[str] = []

    def view_of(root: str) -> DatasetView:
        view = open_dataset(root)
        return view if allow_incomplete else view.require_complete()

    for given in [paths] if isinstance(paths, str) else paths:
        given = str(given)
        if not any(c in given for c in fs.GLOB_CHARS) and is_managed(given):
            files = [p for p in view_of(given).data if not extensions or p.endswith(extensions)]
        else:
            roots = _managed_roots(given)
            inside = lambda f: next((r for r in roots if f.startswith(r.rstrip("/") + "/")), None)  # noqa: E731
            committed = {r: set(view_of(r).data) for r in roots}
            try:
                listed = fs.expand(given, extensions)
            except RaypipeError:
                if not roots or any(c in given for c in fs.GLOB_CHARS):
                    raise
                listed = []  # only datasets in there, maybe empty ones: not an error
            files = [f for f in listed if inside(f) is None or f in committed[inside(f)]]
            if not any(c in given for c in fs.GLOB_CHARS):  # a folder: its datasets' files too
                files += [p for r in roots for p in sorted(committed[r])
                          if (not extensions or p.endswith(extensions)) and p not in files]
        out.extend(f for f in files if f not in out)
    return out


def _managed_roots(given: str) -> list[str]:
    """Dataset folders written by raypipe at or under `given` (a folder or a glob's base)."""
    from pyarrow import fs as pafs

    base = given
    cut = min((given.find(c) for c in fs.GLOB_CHARS if c in given), default=-1)
    if cut >= 0:
        base = given[:cut].rsplit("/", 1)[0] or "/"
        base = base[: base.rfind("/data")] if base.endswith("/data") else base
    filesystem, inner = fs.resolve(base)
    if filesystem.get_file_info(inner).type != pafs.FileType.Directory:
        return []
    prefix = base[: len(base) - len(inner)] if fs.is_uri(base) and base.endswith(inner) else ""
    roots = set()
    for info in filesystem.get_file_info(pafs.FileSelector(inner, recursive=True)):
        name = posixpath.basename(info.path)
        if name == MANIFEST or (name == COMMITS and info.type == pafs.FileType.Directory):
            roots.add(prefix + posixpath.dirname(info.path))
    return sorted(roots)


def settled_ids_files(path: str, generation: str) -> list[str]:
    """The `_ids` files of a generation's commits (the resume key of a resumable stage)."""
    return [fs.join(path, r[IDS]) for r in read_records(path, generation) if r.get(IDS)]


def read_committed(path: str, kind: str = DATA, *, allow_incomplete: bool = True):
    """The committed rows of one kind (data or rejects) as one Arrow table (None if there are
    none), in commit-name order. For reports and tests; stages read through Ray Data."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    view = open_dataset(path)
    if not allow_incomplete:
        view.require_complete()
    tables = []
    for p in (view.data if kind == DATA else view.rejects):
        filesystem, inner = fs.resolve(p)
        if p.endswith(".parquet"):
            tables.append(pq.read_table(inner, filesystem=filesystem))
        else:
            import pyarrow.json as pj

            with filesystem.open_input_stream(inner) as f:
                tables.append(pj.read_json(f))
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="default")
