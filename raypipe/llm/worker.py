"""`StageWorker`: the Ray Data actor (or in-process object) that runs a stage's rows.

Rows flow through continuously: every row of every batch the worker holds runs at once, and the
client's semaphore keeps `concurrency` requests in flight across all of them, so a row waiting
out a 30-second back-off holds one request slot, not the batch's. Finished rows are committed
every `commit_interval_s` and when the batch ends, as parts `<batch key>-<k>` of the commit
contract (`raypipe.io.dataset`): the batch key is a hash of the batch's ids, so when Ray retries
a batch (its actor died) the retry finds the parts already committed, skips their rows, and
overwrites any part file the dead attempt left without a record.

Each row ends as one of: output rows (settled), a reject with its reason (settled), or pending
(a transient failure: not committed, a re-run retries it). Nothing is dropped: a program that
returns nothing is a reject.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

from raypipe.errors import FatalJobError
from raypipe.io.dataset import DatasetWriter, list_names, read_records
from raypipe.llm.client import Accounting, LLMClient, batch_accounting
from raypipe.llm.errors import RowError, TransientError
from raypipe.llm.stage import LLMStage

STATE = "_state"  # set by the triage step: "new" | "done" | "duplicate#<k>" (k-th extra copy)
SUMMARY_FIELDS = ("rows", "skipped", "duplicates", "completed", "rejected", "pending", "rows_out",
                  "requests", "responses", "cache_hits", "retries", "throttled", "prompt_tokens",
                  "completion_tokens", "cost_usd")


def batch_key(ids: list[str]) -> str:
    return "k" + hashlib.sha256("\0".join(ids).encode("utf-8")).hexdigest()[:24]


def reject_kind(reason: str) -> str:
    return reason.split(":", 1)[0].strip() or "error"


class StageWorker:
    def __init__(self, stage: LLMStage, writer: DatasetWriter, *, commit_interval_s: float = 30.0,
                 limiters: dict[str, str] | None = None, source_name: str = ""):
        from raypipe.llm.spend import SpendLog

        self.stage, self.writer = stage, writer
        self.commit_interval_s = commit_interval_s
        self.source_name = source_name
        self.schema = stage.output_schema()
        configs = stage.llms()
        if stage.uses_llm():
            for cfg in configs.values():
                cfg.api_key()  # a missing key stops the job when the worker starts
        self.spend = SpendLog(writer.out, writer.generation, stage.name,
                              block=max((c.concurrency for c in configs.values()), default=1))
        self.clients = {}
        for name, cfg in configs.items():
            limiter = None
            if limiters and limiters.get(name):
                from raypipe.llm.limiter import RayLimiter

                limiter = RayLimiter(limiters[name], cfg.requests_per_minute, cfg.tokens_per_minute)
            elif cfg.requests_per_minute or cfg.tokens_per_minute:
                from raypipe.llm.limiter import LocalLimiter

                limiter = LocalLimiter(cfg.requests_per_minute, cfg.tokens_per_minute)
            self.clients[name] = LLMClient(cfg, limiter=limiter, on_send=self._before_send)
        stage.clients = self.clients
        self._spend_lock = asyncio.Lock()
        self._in_flight_rows = 0

    # -- spend: counted on disk before a request goes out --------------------------------------
    def _totals(self) -> dict[str, Any]:
        totals: dict[str, Any] = {}
        for client in self.clients.values():
            for k, v in client.acct.snapshot().items():
                if k != "failures":
                    totals[k] = totals.get(k, 0) + v
        return totals

    async def _before_send(self) -> None:
        requests = sum(c.acct.requests for c in self.clients.values())
        if self.spend.needs_booking(requests):
            async with self._spend_lock:
                if self.spend.needs_booking(requests):
                    await asyncio.to_thread(self.spend.book, self._totals(), 1)

    # -- one batch -------------------------------------------------------------------------------
    async def __call__(self, batch):
        import pyarrow as pa

        rows = batch.to_pylist() if isinstance(batch, pa.Table) else list(batch)
        columns = batch.column_names if isinstance(batch, pa.Table) else (list(rows[0]) if rows else [])
        missing = [c for c in self.stage.reads if c not in columns]
        if missing:
            raise FatalJobError(f"stage {self.stage.name!r} needs input column(s) {missing}; the input "
                                f"has {sorted(c for c in columns if c != STATE)}")
        todo, dups, skipped = [], [], 0
        for row in rows:
            state = row.pop(STATE, None) or "new"
            if state == "done":
                skipped += 1
            elif state.startswith("duplicate#"):
                dups.append({**row, "_settles": f"dup:{row['id']}#{state.split('#', 1)[1]}"})
            else:
                todo.append(row)
        acct = Accounting()
        summary: dict[str, Any] = {k: 0 for k in SUMMARY_FIELDS}
        summary.update(rows=len(rows), skipped=skipped)
        reasons: dict[str, int] = {}
        if todo or dups:
            key = batch_key([r["id"] for r in todo] + [r["_settles"] for r in dups])
            settled, part = self._already_committed(key)
            todo = [r for r in todo if r["id"] not in settled]
            dups = [r for r in dups if r["_settles"] not in settled]
            summary["skipped"] += len(settled)
            token = batch_accounting.set(acct)
            try:
                await self._run_rows(key, part, todo, dups, summary, reasons)
            finally:
                batch_accounting.reset(token)
        for k, v in acct.snapshot().items():
            if k in summary:
                summary[k] = v
        return pa.Table.from_pylist([{**summary, "reasons": json.dumps(reasons),
                                      "last_reason": summary.get("last_reason", "")}])

    def _already_committed(self, key: str) -> tuple[set[str], int]:
        """Input ids settled by earlier attempts at this batch, and the next part number."""
        prefix = f"{self.writer.generation}-{key}-"
        names = [n for n in list_names(self.writer.out, "_commits") if n.startswith(prefix)]
        if not names:
            return set(), 0
        import pyarrow.parquet as pq

        from raypipe.io import fs

        records = read_records(self.writer.out, self.writer.generation, [n[len(self.writer.generation) + 1:-5]
                                                                          for n in names])
        settled: set[str] = set()
        for r in records:
            if r.get("_ids"):
                filesystem, inner = fs.resolve(fs.join(self.writer.out, r["_ids"]))
                settled.update(pq.read_table(inner, filesystem=filesystem).column("id").to_pylist())
        return settled, len(names)

    async def _run_rows(self, key: str, part: int, todo: list[dict], dups: list[dict],
                        summary: dict, reasons: dict) -> None:
        done: list[tuple[dict, list[dict] | None, str | None]] = [
            (r, None, "duplicate id: an earlier row of this input has the same id") for r in dups]
        order = {id(r): i for i, r in enumerate(todo)}  # commits keep the input order
        tasks = {asyncio.ensure_future(self._row(r)): r for r in todo}
        last_commit = time.monotonic()
        try:
            while tasks:
                finished, _ = await asyncio.wait(tasks, timeout=self.commit_interval_s,
                                                 return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    row = tasks.pop(task)
                    outs, reason, transient = task.result()
                    if transient is not None:
                        summary["pending"] += 1
                        kind = f"pending: {reject_kind(transient)}"
                        reasons[kind] = reasons.get(kind, 0) + 1
                        summary["last_reason"] = f"pending: {transient}"[:300]
                    else:
                        done.append((row, outs, reason))
                if done and tasks and time.monotonic() - last_commit >= self.commit_interval_s:
                    done.sort(key=lambda d: order.get(id(d[0]), -1))
                    await self._commit(key, part, done, summary, reasons)
                    part, done, last_commit = part + 1, [], time.monotonic()
            if done:
                done.sort(key=lambda d: order.get(id(d[0]), -1))
                await self._commit(key, part, done, summary, reasons)
        finally:
            for task in tasks:
                task.cancel()

    async def _row(self, row: dict) -> tuple[list[dict] | None, str | None, str | None]:
        """(outputs, None, None), (None, reject reason, None) or (None, None, transient reason).
        FatalJobError propagates and stops the job."""
        client = self.clients.get("default")
        try:
            value = await self.stage.program(row, client)
            outs = _as_rows(value)
            if not outs:
                return None, "no output: the stage returned nothing for this row", None
            return outs, None, None
        except RowError as exc:
            return None, self._scrub(exc.reason), None
        except TransientError as exc:
            return None, None, self._scrub(exc.reason)
        except FatalJobError:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if type(exc).__module__.startswith("ray"):  # an actor or node failure: not the row's fault
                return None, None, f"ray error: {type(exc).__name__}"
            # A bug in the stage: reject (max_error_rate stops a flood of them).
            return None, self._scrub(f"stage error: {type(exc).__name__}: {exc}"), None

    def _scrub(self, text: str) -> str:
        for client in self.clients.values():
            text = client.scrub(text)
        return text

    async def _commit(self, key: str, part: int, done: list, summary: dict, reasons: dict) -> None:
        import pyarrow as pa

        from raypipe.io.writers import make_reject, rejects_schema

        outputs, owners, rejects = [], [], []
        for row, outs, reason in done:
            if reason is None:
                outputs.extend(outs)
                owners.extend([row["id"]] * len(outs))
            else:
                rejects.append((row, reason))
        data, misfits = _to_table(outputs, owners, self.schema)
        if misfits:  # outputs that do not fit the declared schema reject their input row
            keep = [j for j, owner in enumerate(owners) if owner not in misfits]
            data, _ = _to_table([outputs[j] for j in keep], [owners[j] for j in keep], self.schema)
            rejects += [(row, misfits[row["id"]]) for row, _, reason in done
                        if reason is None and row["id"] in misfits]
        here: dict[str, int] = {}
        reject_rows = []
        for row, reason in rejects:
            here[reject_kind(reason)] = here.get(reject_kind(reason), 0) + 1
            raw = {k: v for k, v in row.items() if k != "_settles"}
            reject_rows.append(make_reject(row.get("_file") or self.source_name, row.get("_line"), reason,
                                           json.dumps(raw, ensure_ascii=False, sort_keys=True, default=str),
                                           self.stage.name, row.get("id")))
        duplicates = sum(1 for row, _ in rejects if "_settles" in row)
        for client in self.clients.values():
            if client.cache is not None:  # the answers a committed row used are durable first
                await asyncio.to_thread(client.cache.flush)
        in_flight = sum(c.in_flight for c in self.clients.values())
        async with self._spend_lock:
            await asyncio.to_thread(self.spend.book, self._totals(), in_flight)
        await asyncio.to_thread(
            self.writer.commit, f"{key}-{part:03d}", data=data,
            rejects=pa.Table.from_pylist(reject_rows, schema=rejects_schema()) if reject_rows else None,
            ids=[row.get("_settles", row["id"]) for row, _, _ in done],
            counts={"completed": len(done) - len(rejects), "duplicates": duplicates, "reasons": here})
        for kind, n in here.items():
            reasons[kind] = reasons.get(kind, 0) + n
        if rejects:
            summary["last_reason"] = rejects[-1][1][:300]
        summary["completed"] += len(done) - len(rejects)
        summary["rejected"] += len(rejects)
        summary["duplicates"] += duplicates
        summary["rows_out"] += data.num_rows if data is not None else 0

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()


def _as_rows(value: Any) -> list[dict]:
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value
    raise TypeError(f"a stage returns a dict or a list of dicts, got {type(value).__name__}")


def _to_table(out_rows: list[dict], owners: list[str], schema):
    """(table or None, {input id: reason} for inputs whose outputs do not fit the schema)."""
    import pyarrow as pa

    if not out_rows:
        return None, {}
    try:
        return pa.Table.from_pylist(out_rows, schema=schema), {}
    except (pa.ArrowException, TypeError, ValueError, KeyError):
        bad: dict[str, str] = {}
        for out, owner in zip(out_rows, owners):
            try:
                pa.Table.from_pylist([out], schema=schema)
            except (pa.ArrowException, TypeError, ValueError, KeyError) as exc:
                bad.setdefault(owner, f"validation error: output row does not fit the schema: {exc}"[:500])
        if not bad:
            raise
        return None, bad
