"""`run_stage`: the one executor of every LLM stage (`raypipe.llm.stage.LLMStage`).

Driver side, in order: take the output folder (commit contract: refuse an output that is an
input, one writer at a time, resume the generation), optionally retract the rejects to retry
them, then stream the input through Ray Data: read -> triage (done / new / duplicate, against
the ids the output's commits settled) -> `StageWorker` actors -> one small summary row per
batch back to the driver, which prints the progress line and stops the job when the error rate
is too high. At the end the manifest and `summary.json` are written from the commit records and
the workers' spend files, so the counts add up over every run:

    rows_in == completed + rejected + pending        (rejected includes duplicate ids)

A run that ends with pending rows (transient failures) raises `PendingRowsError` after writing
its summary: the job stops there, and re-running the same command does only those rows.
The driver holds nothing per row: ids travel inside Ray Data, counts arrive per batch.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict
from typing import Any, Literal

from raypipe.errors import FatalJobError, RaypipeError
from raypipe.llm.stage import LLMStage
from raypipe.llm.worker import SUMMARY_FIELDS, StageWorker

Executor = Literal["auto", "ray", "local"]


class PendingRowsError(RaypipeError):
    """The stage finished with rows left pending by transient failures; `summary` has it all."""

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary


def run_stage(stage: LLMStage, *, out: str, executor: Executor = "auto", dry_run: bool = False,
              retry_rejects: bool = False, allow_incomplete: bool = False, log=None,
              commit_interval_s: float = 30.0, source_name: str = "") -> dict[str, Any]:
    """Run `stage` over its source into `out` (resumable); returns the summary it also writes."""
    from raypipe.io.dataset import begin_write, settled_ids_files

    log = log or _print
    llm = stage.llm()
    if dry_run:
        return _dry_run(stage, llm, log, allow_incomplete)
    use_ray = _use_ray(executor)
    started = time.monotonic()
    fingerprint = stage.source_fingerprint()
    finished = _finished_summary(out, fingerprint) if not retry_rejects else None
    if finished is not None:
        log(f"[{stage.name}] up to date: {out} ({finished['rows_in']} rows, all settled) over the "
            "same inputs; nothing to do")
        return {**finished, "up_to_date": True}
    with begin_write(out, stage.name, stage.inputs(), resumable=True) as writer:
        if retry_rejects:
            retried = writer.retract_rejects()
            log(f"[{stage.name}] --retry-rejects: {retried} rejected rows will be tried again")
        ids_files = settled_ids_files(out, writer.generation)
        if ids_files:
            log(f"[{stage.name}] resuming: {len(ids_files)} commits of earlier runs in {out}")
        progress = Progress(stage.name, llm, log)
        worker_kwargs = {"stage": stage, "writer": writer, "commit_interval_s": commit_interval_s,
                         "source_name": source_name}
        try:
            if use_ray:
                _run_ray(stage, llm, worker_kwargs, ids_files, progress, allow_incomplete)
            else:
                _run_local(stage, worker_kwargs, ids_files, progress, allow_incomplete)
        except Exception as exc:
            fatal = find_fatal(exc)
            if fatal is not None:
                raise FatalJobError(fatal) from None
            raise
        progress.final()
        summary = _summary(stage, llm, writer, progress, started)
        writer.finalize(rows_in=summary["rows_in"], summary=summary,
                        extra_manifest={"source_fingerprint": fingerprint})
    this_run = progress.sums
    if summary["pending"] and this_run["requests"] and not this_run["responses"] and stage.uses_llm():
        endpoints = ", ".join(sorted({c.base_url for c in stage.llms().values()})) or llm.base_url
        raise FatalJobError(
            f"{endpoints} never answered: {this_run['requests']} requests failed "
            f"({progress.last_pending or 'see the log'}); check llm.base_url and that the endpoint is "
            f"up (the {summary['pending']} rows are pending: re-run the same command once it is)")
    if summary["pending"]:
        kinds = ", ".join(f"{k.removeprefix('pending: ')} x{n}" for k, n in progress.pending_reasons().items())
        raise PendingRowsError(
            f"stage {stage.name!r}: {summary['pending']} of {summary['rows_in']} rows are pending after "
            f"transient failures ({kinds or 'see the log'}); re-run the same command to do them "
            f"(finished rows are kept: {out})", summary)
    return summary


def _finished_summary(out: str, fingerprint: str | None) -> dict[str, Any] | None:
    """The summary of a complete run over the same source, if `out` holds one."""
    from raypipe.io import fs
    from raypipe.io.dataset import open_dataset, read_manifest

    if fingerprint is None or not fs.exists(out):
        return None
    manifest = read_manifest(out)
    if (manifest is None or manifest.get("source_fingerprint") != fingerprint
            or not open_dataset(out).complete):
        return None
    return json.loads(fs.read_text(fs.join(out, "summary.json")))


def _summary(stage: LLMStage, llm, writer, progress: "Progress", started: float) -> dict[str, Any]:
    from raypipe.io.dataset import sum_records
    from raypipe.llm.spend import read_spend

    totals = sum_records(writer.records())
    spend = read_spend(writer.out, writer.generation)
    rows_in = progress.sums["rows"]
    return {
        "stage": stage.name, "model": llm.model, "rows_in": rows_in,
        "completed": totals.get("completed", 0), "rejected": totals["rejected"],
        "duplicates": totals.get("duplicates", 0), "pending": rows_in - totals["settled"],
        "rows_out": totals["rows"], "reject_reasons": totals["reasons"], **spend,
        "price_per_mtok": asdict(llm.price()), "this_run": progress.totals(),
        "elapsed_s": round(time.monotonic() - started, 3), **stage.summary_extra(),
    }


def _use_ray(executor: Executor) -> bool:
    if executor != "auto":
        return executor == "ray"
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        return False
    import ray

    return ray.is_initialized()


def _limiters(llms: dict) -> tuple[dict[str, str], list]:
    """Find or create the shared rate limiter of every rate-limited endpoint (one per endpoint,
    model and API key, for every job on the cluster); workers find it by name."""
    import ray

    from raypipe.llm.limiter import get_or_create_limiter, limiter_name_for

    names, handles = {}, []
    for key, cfg in llms.items():
        if cfg.requests_per_minute or cfg.tokens_per_minute:
            name = limiter_name_for(cfg)  # shared by every job with this endpoint, model and key
            handle = get_or_create_limiter(name, cfg.requests_per_minute, cfg.tokens_per_minute)
            ray.get(handle.state.remote())  # exists (on the head node) before any worker leases
            names[key] = name
            handles.append(handle)
    return names, handles


def _run_ray(stage, llm, worker_kwargs: dict, ids_files: list[str], progress: "Progress",
             allow_incomplete: bool) -> None:
    import ray
    import ray.data
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from raypipe.llm.triage import Triage, load_done

    ds = stage.source(use_ray=True, allow_incomplete=allow_incomplete)
    if isinstance(ds, (list, tuple)):
        ds = ray.data.from_items(list(ds))
    done = ray.remote(num_cpus=0)(load_done).remote(ids_files) if ids_files else None
    # Triage keeps the ids seen so far: on the driver's node (the head under `ray job submit`),
    # which a job does not outlive, so losing a worker node never loses that state.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    ds = ds.map_batches(Triage, fn_constructor_kwargs={"done": done}, batch_format="pyarrow",
                        compute=ray.data.ActorPoolStrategy(size=1), num_cpus=0, scheduling_strategy=here)
    limiters, handles = _limiters(stage.llms()) if stage.uses_llm() else ({}, [])
    # Enough batches per actor that its request window stays full while one batch finishes.
    calls = max(2, -(-2 * llm.concurrency // llm.batch_size) + 1)
    context = ray.data.DataContext.get_current()
    saved_wait = context.wait_for_min_actors_s
    context.wait_for_min_actors_s = 600  # start the whole pool before the first batch goes out
    try:
        out = ds.map_batches(
            StageWorker, fn_constructor_kwargs={**worker_kwargs, "limiters": limiters},
            batch_size=llm.batch_size, batch_format="pyarrow", **stage.actor_options(),
            compute=ray.data.ActorPoolStrategy(size=llm.num_actors, max_concurrent_calls_per_actor=calls),
        )
        for batch in out.iter_batches(batch_size=None, batch_format="pyarrow"):
            for summary in batch.to_pylist():
                progress.add(summary)
    finally:
        context.wait_for_min_actors_s = saved_wait
        del handles  # detached: they outlive the job and exit once idle (limiter.IDLE_EXIT_S)


def _run_local(stage, worker_kwargs: dict, ids_files: list[str], progress: "Progress",
               allow_incomplete: bool) -> None:
    """Without Ray: the same triage and worker in this process, a few batches at a time."""
    import pyarrow as pa

    from raypipe.llm.triage import Triage, load_done

    rows = stage.source(use_ray=False, allow_incomplete=allow_incomplete)
    if not isinstance(rows, (list, tuple)):
        rows = [dict(r) for r in rows.iter_rows()]
    llm = stage.llm()
    triage = Triage(load_done(ids_files) if ids_files else None)
    batches = []
    for i in range(0, len(rows), llm.batch_size):
        chunk = [dict(r) for r in rows[i: i + llm.batch_size]]
        if any(not r.get("id") for r in chunk):
            raise RaypipeError(f"stage {stage.name!r}: every input row needs an 'id' (the key of resume)")
        batches.append(triage(pa.Table.from_pylist(chunk)))

    async def main() -> None:
        worker = StageWorker(**worker_kwargs)
        gate = asyncio.Semaphore(2)

        async def one(batch) -> None:
            async with gate:
                table = await worker(batch)
            for summary in table.to_pylist():
                progress.add(summary)

        try:
            await asyncio.gather(*(one(b) for b in batches))
        finally:
            await worker.close()

    asyncio.run(main())


def _dry_run(stage: LLMStage, llm, log, allow_incomplete: bool) -> dict[str, Any]:
    from raypipe.llm.dryrun import dry_run_report

    rows = stage.source(use_ray=_use_ray("auto"), allow_incomplete=allow_incomplete)
    rows = rows if isinstance(rows, (list, tuple)) else rows.iter_rows()
    from raypipe.llm.errors import RowError

    def explode():
        for row in rows:
            try:
                yield from ({"messages": m} for m in stage.requests(dict(row)))
            except (RowError, KeyError, ValueError, TypeError):
                yield {"messages": None}  # counted as a build error: this row cannot be asked

    def build(request):
        if request["messages"] is None:
            raise ValueError("the row cannot be asked")
        return request["messages"]

    report = dry_run_report(explode(), llm=llm, stage=stage.name, build_messages=build, log=log)
    report["note"] = "first attempts only; re-asks after a rejected answer come on top"
    return report


def find_fatal(exc: BaseException) -> str | None:
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


class Progress:
    """The live progress line (rows done, req/s, tokens/s, retries, cost so far) and the
    job-wide error-rate rule, from the per-batch summaries."""

    def __init__(self, stage: str, llm, log):
        self.stage, self.llm, self.log = stage, llm, log
        self.t0 = time.monotonic()
        self.last_print = self.t0
        self.sums = {k: 0 for k in SUMMARY_FIELDS}
        self.reasons: dict[str, int] = {}
        self.last_reason = ""
        self.last_pending = ""

    def add(self, summary: dict) -> None:
        for k in self.sums:
            self.sums[k] += summary.get(k, 0)
        for kind, n in json.loads(summary.get("reasons") or "{}").items():
            self.reasons[kind] = self.reasons.get(kind, 0) + n
        if summary.get("last_reason") and not summary["last_reason"].startswith("pending"):
            self.last_reason = summary["last_reason"]
        elif summary.get("last_reason"):
            self.last_pending = summary["last_reason"].removeprefix("pending: ")
        self._check_error_rate()
        now = time.monotonic()
        if self.llm.progress_interval_s and now - self.last_print >= self.llm.progress_interval_s:
            self.last_print = now
            self.log(self.line())

    def _check_error_rate(self) -> None:
        rejected = self.sums["rejected"] - self.sums["duplicates"]
        processed = self.sums["completed"] + rejected
        if processed < self.llm.min_rows_for_error_rate or not processed:
            return
        rate = rejected / processed
        if rate > self.llm.max_error_rate:
            top = sorted(((n, k) for k, n in self.reasons.items() if not k.startswith("pending")), reverse=True)[:3]
            raise FatalJobError(
                f"stage {self.stage!r}: {rejected} of {processed} rows rejected ({rate:.0%} > "
                f"max_error_rate {self.llm.max_error_rate:.0%}); top reasons: "
                + ", ".join(f"{k} x{n}" for n, k in top) + f"; last: {self.last_reason}")

    def pending_reasons(self) -> dict[str, int]:
        return {k: n for k, n in self.reasons.items() if k.startswith("pending")}

    def line(self) -> str:
        s, dt = self.sums, max(time.monotonic() - self.t0, 1e-9)
        tokens = s["prompt_tokens"] + s["completion_tokens"]
        return (
            f"[{self.stage}] rows {s['completed'] + s['rejected']} done ({s['rejected']} rejected, "
            f"{s['pending']} pending, {s['skipped']} resumed) | {s['requests'] / dt:.1f} req/s "
            f"| {tokens / dt:.0f} tok/s | {s['cache_hits']} cache hits | {s['retries']} retries "
            f"| ${s['cost_usd']:.4f}"
        )

    def final(self) -> None:
        if self.llm.progress_interval_s:
            self.log(self.line())

    def totals(self) -> dict:
        out = dict(self.sums)
        out["cost_usd"] = round(out["cost_usd"], 6)
        return out


def _print(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
