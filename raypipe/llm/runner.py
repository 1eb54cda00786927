"""`run_llm_stage` / `run_llm_program`: run an LLM stage over a dataset, resumably.

The driver side: read the completion markers of earlier runs, delete their orphans, create the
job-wide rate limiter, run `LLMStage` actors over the rows not yet done (Ray Data with an actor
pool, or in-process without Ray), print a live progress line, and write `summary.json` whose
counts come from the markers (so they add up across runs: rows_in = completed + rejected).
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import asdict
from typing import Any, Literal

from raypipe.errors import FatalJobError, RaypipeError
from raypipe.llm.config import LLMConfig
from raypipe.llm.stage import SUMMARY_FIELDS, LLMStage
from raypipe.llm.store import StageStore

Executor = Literal["auto", "ray", "local"]


def run_llm_stage(inputs, *, llm: LLMConfig, build_messages, parse, out_dir: str, stage: str,
                  output_schema=None, dry_run: bool = False, executor: Executor = "auto",
                  tokenizer=None, source_name: str = "", log=None) -> dict:
    """One request per row (plus re-asks): `build_messages(row) -> messages`,
    `parse(row, completion_text) -> dict | list[dict]` (raise ValueError to re-ask with the
    error, RowError to reject). Returns the summary also written to `out_dir/summary.json`."""
    if dry_run:
        from raypipe.llm.dryrun import dry_run_report

        return dry_run_report(inputs, llm=llm, build_messages=build_messages, stage=stage,
                              tokenizer=tokenizer, log=log)
    return _run(inputs, llm=llm, out_dir=out_dir, stage=stage, output_schema=output_schema,
                executor=executor, source_name=source_name, log=log,
                stage_kwargs={"build_messages": build_messages, "parse": parse})


def run_llm_program(inputs, *, llm: LLMConfig, program, out_dir: str, stage: str,
                    output_schema=None, executor: Executor = "auto", source_name: str = "",
                    log=None) -> dict:
    """`program(row, client) -> dict | list[dict]` makes any number of calls through `client`
    (same cache, limiter, retries, accounting, resume and rejects as `run_llm_stage`)."""
    return _run(inputs, llm=llm, out_dir=out_dir, stage=stage, output_schema=output_schema,
                executor=executor, source_name=source_name, log=log,
                stage_kwargs={"program": program})


def _run(inputs, *, llm, out_dir, stage, output_schema, executor, source_name, log, stage_kwargs):
    log = log or _print
    started = time.monotonic()
    store = StageStore(out_dir)
    markers = store.read_markers()
    removed = store.remove_orphans(markers)
    done_ids = [i for m in markers for i in m["ids"]]
    if markers:
        log(f"[{stage}] resuming: {len(done_ids)} rows done by earlier runs"
            + (f", {removed} unfinished files removed" if removed else ""))
    use_ray = _use_ray(inputs, executor)
    common = dict(llm=llm, stage=stage, out_uri=out_dir, output_schema=output_schema,
                  done_ids=done_ids, source_name=source_name, **stage_kwargs)
    progress = Progress(stage, llm, log)
    try:
        if use_ray:
            rows_in = _run_ray(inputs, llm, common, progress)
        else:
            rows_in = _run_local(inputs, llm, common, progress)
    except Exception as exc:
        fatal = _find_fatal(exc)
        if fatal is not None:
            raise FatalJobError(fatal) from None
        raise
    progress.final()
    summary = summarize(store.read_markers(), rows_in, stage, llm)
    summary["this_run"] = progress.totals()
    summary["elapsed_s"] = round(time.monotonic() - started, 3)
    store.write_summary(summary)
    return summary


def _use_ray(inputs, executor: Executor) -> bool:
    if executor != "auto":
        return executor == "ray"
    if isinstance(inputs, (list, tuple)):
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            return False
        import ray

        return ray.is_initialized()
    return True


def _run_ray(inputs, llm: LLMConfig, common: dict, progress: "Progress") -> int:
    import ray
    import ray.data

    from raypipe.llm.limiter import get_or_create_limiter, limiter_name_for

    ds = ray.data.from_items(list(inputs)) if isinstance(inputs, (list, tuple)) else inputs
    if isinstance(inputs, (list, tuple)):
        _check_ids(inputs, common["stage"])
    limiter = None
    if llm.requests_per_minute or llm.tokens_per_minute:
        name = limiter_name_for(llm)  # shared by every job with this endpoint, model and key
        limiter = get_or_create_limiter(name, llm.requests_per_minute, llm.tokens_per_minute)
        ray.get(limiter.state.remote())  # exists (on the head node) before any worker leases
        common = {**common, "limiter_name": name}
    # Start every actor before the first batch goes out, so that throughput (and the rate
    # limiter's budget) is not spent on a half-started pool. Restored after this stage.
    context = ray.data.DataContext.get_current()
    saved_wait = context.wait_for_min_actors_s
    context.wait_for_min_actors_s = 600
    out = ds.map_batches(
        LLMStage,
        fn_constructor_kwargs=common,
        batch_size=llm.batch_size,
        batch_format="pyarrow",
        num_cpus=llm.actor_num_cpus,
        # two calls per actor: a second batch starts while the first one's stragglers finish
        compute=ray.data.ActorPoolStrategy(size=llm.num_actors, max_concurrent_calls_per_actor=2),
    )
    rows_in = 0
    try:
        for batch in out.iter_batches(batch_size=None, batch_format="pyarrow"):
            for summary in batch.to_pylist():
                rows_in += summary["rows"]
                progress.add(summary)
    finally:
        context.wait_for_min_actors_s = saved_wait
    del limiter  # detached: it outlives the job, and exits once idle (limiter.IDLE_EXIT_S)
    return rows_in


def _run_local(inputs, llm: LLMConfig, common: dict, progress: "Progress") -> int:
    """Without Ray: the same stage class in this process, a few batches at a time."""
    from raypipe.llm.limiter import LocalLimiter

    if not isinstance(inputs, (list, tuple)):
        inputs = [dict(row) for row in inputs.iter_rows()]
    _check_ids(inputs, common["stage"])
    if llm.requests_per_minute or llm.tokens_per_minute:
        common = {**common, "local_limiter": LocalLimiter(llm.requests_per_minute, llm.tokens_per_minute)}
    batches = [inputs[i : i + llm.batch_size] for i in range(0, len(inputs), llm.batch_size)]

    async def main() -> None:
        worker = LLMStage(**common)
        gate = asyncio.Semaphore(2)

        async def one(batch):
            async with gate:
                table = await worker(batch)
            for summary in table.to_pylist():
                progress.add(summary)

        try:
            await asyncio.gather(*(one(b) for b in batches))
        finally:
            await worker.client.close()

    asyncio.run(main())
    return len(inputs)


def _check_ids(rows, stage: str) -> None:
    seen: set = set()
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not row.get("id"):
            raise RaypipeError(f"stage {stage!r}: input row {i} has no 'id'")
        if row["id"] in seen:
            raise RaypipeError(f"stage {stage!r}: input row {i} repeats id {row['id']!r} (ids must be unique)")
        seen.add(row["id"])


def _find_fatal(exc: BaseException) -> str | None:
    """The FatalJobError message inside whatever Ray wrapped it in. Ray chains task errors
    through `cause`/`__cause__` and sometimes only keeps the original as text."""
    todo, seen = [exc], set()
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, FatalJobError):
            return str(e)
        todo += [c for c in (getattr(e, "cause", None), e.__cause__, e.__context__)
                 if isinstance(c, BaseException)]
    marker = "FatalJobError: "
    text = str(exc)
    if marker in text:
        return text.split(marker, 1)[1].splitlines()[0].strip()
    return None


def summarize(markers: list[dict], rows_in: int, stage: str, llm: LLMConfig) -> dict:
    """Counts over every run so far, from the completion markers."""
    totals = {k: 0 for k in SUMMARY_FIELDS if k not in ("rows", "skipped")}
    reasons: dict[str, int] = {}
    done: set = set()
    duplicates = 0
    for m in markers:
        for k in totals:
            totals[k] += m.get(k, 0)
        for kind, n in (m.get("reasons") or {}).items():
            reasons[kind] = reasons.get(kind, 0) + n
        for i in m["ids"]:
            duplicates += i in done
            done.add(i)
    totals["cost_usd"] = round(totals["cost_usd"], 6)
    return {
        "stage": stage, "model": llm.model, "rows_in": rows_in, **totals,
        "pending": rows_in - len(done), "duplicate_ids": duplicates,
        "reject_reasons": reasons, "price_per_mtok": asdict(llm.price()),
    }


class Progress:
    """The live progress line: rows done, req/s, tokens/s, errors, cost so far."""

    def __init__(self, stage: str, llm: LLMConfig, log):
        self.stage, self.llm, self.log = stage, llm, log
        self.t0 = time.monotonic()
        self.last_print = self.t0
        self.sums = {k: 0 for k in SUMMARY_FIELDS}

    def add(self, summary: dict) -> None:
        for k in self.sums:
            self.sums[k] += summary.get(k, 0)
        now = time.monotonic()
        if self.llm.progress_interval_s and now - self.last_print >= self.llm.progress_interval_s:
            self.last_print = now
            self.log(self.line())

    def line(self) -> str:
        s, dt = self.sums, max(time.monotonic() - self.t0, 1e-9)
        tokens = s["prompt_tokens"] + s["completion_tokens"]
        return (
            f"[{self.stage}] rows {s['completed'] + s['rejected']} done "
            f"({s['rejected']} rejected, {s['skipped']} resumed) | {s['requests'] / dt:.1f} req/s "
            f"| {tokens / dt:.0f} tok/s | {s['cache_hits']} cache hits | {s['retries']} retries "
            f"| ${s['cost_usd']:.4f}"
        )

    def final(self) -> None:
        if self.llm.progress_interval_s:
            self.log(self.line())

    def totals(self) -> dict:
        out = {k: v for k, v in self.sums.items()}
        out["cost_usd"] = round(out["cost_usd"], 6)
        return out


def _print(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
