"""`LLMStage`: the Ray Data actor that runs one batch of rows through an LLM.

Plain data in (config, the two user functions or a program, where to write), client created
on the worker. `await stage(batch)` runs every row of the batch concurrently (the client's
semaphore caps requests in flight), writes the batch's outputs and rejects with a completion
marker, and returns one small summary row for the driver's progress line. Rows whose ids were
finished by an earlier run are skipped. Tests call it directly, without Ray.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable, Callable

from raypipe.errors import FatalJobError
from raypipe.llm.client import Accounting, LLMClient, batch_accounting
from raypipe.llm.config import LLMConfig
from raypipe.llm.errors import RowError
from raypipe.llm.store import StageStore, rejects_schema

BuildMessages = Callable[[dict], list]
Parse = Callable[[dict, str], Any]
Program = Callable[[dict, LLMClient], Awaitable[Any]]

SUMMARY_FIELDS = (
    "rows", "skipped", "completed", "rejected", "rows_out", "requests", "responses",
    "cache_hits", "retries", "throttled", "prompt_tokens", "completion_tokens", "cost_usd",
)


def reject_kind(reason: str) -> str:
    return reason.split(":", 1)[0].strip() or "error"


class LLMStage:
    def __init__(
        self,
        *,
        llm: LLMConfig,
        stage: str,
        out_uri: str,
        build_messages: BuildMessages | None = None,
        parse: Parse | None = None,
        program: Program | None = None,
        output_schema=None,
        done_ids: Any = (),
        limiter_name: str | None = None,
        local_limiter: Any = None,
        source_name: str = "",
    ):
        if (program is None) == (build_messages is None or parse is None):
            raise ValueError("give either build_messages and parse, or program")
        self.llm = llm
        self.stage = stage
        self.store = StageStore(out_uri)
        self.build_messages = build_messages
        self.parse = parse
        self.program = program
        self.output_schema = output_schema
        self.done_ids = frozenset(done_ids)
        self.source_name = source_name
        limiter = local_limiter
        if limiter is None and limiter_name is not None:
            from raypipe.llm.limiter import RayLimiter

            limiter = RayLimiter(limiter_name, llm.requests_per_minute, llm.tokens_per_minute)
        self.client = LLMClient(llm, limiter=limiter)
        llm.api_key()  # a missing key stops the job when the actor starts, not row by row
        import openai  # noqa: F401  (import once at actor start, not inside the first batch)

        self.processed = 0  # rows this worker finished (for max_error_rate)
        self.rejected = 0

    async def __call__(self, batch):
        import pyarrow as pa

        rows = batch.to_pylist() if isinstance(batch, pa.Table) else list(batch)
        if any(not row.get("id") for row in rows):
            raise FatalJobError(f"stage {self.stage!r}: every input row needs an 'id' (the key of resume)")
        todo = [r for r in rows if r["id"] not in self.done_ids]
        acct = Accounting()
        token = batch_accounting.set(acct)  # the row tasks below inherit it
        try:
            results = await asyncio.gather(*(self._row(r) for r in todo))
        finally:
            batch_accounting.reset(token)
        out_rows: list[dict] = []
        out_owner: list[int] = []
        rejects: list[tuple[dict, str]] = []
        for i, (row, (outs, reason)) in enumerate(zip(todo, results)):
            if reason is None:
                out_rows.extend(outs)
                out_owner.extend([i] * len(outs))
            else:
                rejects.append((row, reason))
        data, bad = self._to_table(out_rows, out_owner, todo)
        if bad:  # rows whose outputs do not fit the declared schema are rejected, not dropped
            bad_idx = set(bad)
            keep = [j for j, owner in enumerate(out_owner) if owner not in bad_idx]
            data = self._to_table([out_rows[j] for j in keep], [out_owner[j] for j in keep], todo)[0]
            rejects.extend((todo[i], reason) for i, reason in bad.items())
        reject_table = pa.Table.from_pylist(
            [self._reject_row(row, reason) for row, reason in rejects], schema=rejects_schema()
        )
        counts = {k: v for k, v in acct.snapshot().items() if k != "failures"}
        reasons: dict[str, int] = {}
        for _, reason in rejects:
            reasons[reject_kind(reason)] = reasons.get(reject_kind(reason), 0) + 1
        summary = {
            "rows": len(rows), "skipped": len(rows) - len(todo),
            "completed": len(todo) - len(rejects), "rejected": len(rejects),
            "rows_out": data.num_rows if data is not None else 0, **counts,
        }
        if todo:
            await self.client.flush_cache()  # the answers these rows used are durable first
            self.store.write_batch(
                [r["id"] for r in todo], data, reject_table,
                {**summary, "reasons": reasons},
            )
        self._check_error_rate(len(todo), len(rejects), rejects)
        return pa.Table.from_pylist([{**summary, "reasons": json.dumps(reasons)}])

    async def _row(self, row: dict) -> tuple[list[dict], str | None]:
        """(output rows, None) or ([], reject reason). FatalJobError propagates."""
        try:
            if self.program is not None:
                return _as_rows(await self.program(row, self.client)), None
            return await self._build_and_parse(row), None
        except RowError as exc:
            return [], self.client.scrub(exc.reason)
        except FatalJobError:
            raise
        except Exception as exc:  # a bug in user code: reject (max_error_rate stops a flood)
            return [], self.client.scrub(f"stage error: {type(exc).__name__}: {exc}")

    async def _build_and_parse(self, row: dict) -> list[dict]:
        try:
            messages = self.build_messages(row)
        except (KeyError, ValueError, TypeError) as exc:
            raise RowError(f"build error: {type(exc).__name__}: {exc}") from None
        reason = ""
        for attempt in range(self.llm.max_reasks + 1):
            completion = await self.client.chat(messages)
            try:
                return _as_rows(self.parse(row, completion.text))
            except RowError:
                raise
            except ValueError as exc:
                reason = f"parse error: {exc}"
                if attempt < self.llm.max_reasks:
                    messages = [
                        *messages,
                        {"role": "assistant", "content": completion.text},
                        {"role": "user", "content": f"That answer could not be used: {exc}. "
                                                    "Answer again, correcting this."},
                    ]
        raise RowError(f"{reason} (after {self.llm.max_reasks} re-asks)")

    def _to_table(self, out_rows, owner, todo):
        """(table, {row index: reason}) for rows whose outputs do not fit the schema."""
        import pyarrow as pa

        if not out_rows:
            return None, {}
        try:
            return pa.Table.from_pylist(out_rows, schema=self.output_schema), {}
        except (pa.ArrowException, TypeError, ValueError, KeyError):
            bad: dict[int, str] = {}
            for out, i in zip(out_rows, owner):
                try:
                    pa.Table.from_pylist([out], schema=self.output_schema)
                except (pa.ArrowException, TypeError, ValueError, KeyError) as exc:
                    bad.setdefault(i, f"validation error: output row does not fit the schema: {exc}"[:500])
            if not bad:  # rows fit alone but not together (inferred types differ): one row each
                raise
            return None, bad

    def _reject_row(self, row: dict, reason: str) -> dict:
        return {
            "file": row.get("_file") or self.source_name, "line": row.get("_line"),
            "id": row.get("id"), "stage": self.stage, "reason": reason,
            "raw": json.dumps(row, ensure_ascii=False, sort_keys=True, default=str),
        }

    def _check_error_rate(self, processed: int, rejected: int, rejects) -> None:
        self.processed += processed
        self.rejected += rejected
        if self.processed < self.llm.min_rows_for_error_rate:
            return
        rate = self.rejected / self.processed
        if rate > self.llm.max_error_rate:
            last = rejects[-1][1] if rejects else "n/a"
            raise FatalJobError(
                f"stage {self.stage!r}: {self.rejected} of {self.processed} rows rejected "
                f"({rate:.0%} > max_error_rate {self.llm.max_error_rate:.0%}); last reason: {last}"
            )


def _as_rows(value: Any) -> list[dict]:
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value
    raise TypeError(f"expected a dict or a list of dicts, got {type(value).__name__}")
