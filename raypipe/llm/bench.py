"""`raypipe bench synth`: the engine against the local test server, side by side with the
alternatives, in one run. Rates are measured by the server (first request received to last
answer sent), so Ray's start-up time counts for nobody; wall times are reported too.

Scenarios (see docs/llm.md): latency-bound, ray.data.llm's HTTP processor, bare asyncio,
rate-limited, faults, and SIGKILL + resume.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from raypipe.llm.config import LLMConfig
from raypipe.llm.stage import LLMStage
from raypipe.mockllm.server import FaultConfig, MockLLMServer

KEY_ENV = "RAYPIPE_BENCH_KEY"


def build_messages(row):
    return [{"role": "user", "content": row["q"]}]


def parse(row, text):
    return {"id": row["id"], "answer": text}


def make_rows(n: int, prefix: str) -> list[dict]:
    return [{"id": f"{prefix}{i:06d}", "q": f"{prefix} question number {i}"} for i in range(n)]


def llm_config(srv, **kw) -> LLMConfig:
    base = dict(base_url=srv.base_url, model="mock", api_key_env=KEY_ENV, max_tokens=32,
                concurrency=64, num_actors=2, batch_size=64, timeout_s=30.0,
                backoff_base_s=0.05, progress_interval_s=0)
    base.update(kw)
    return LLMConfig(**base)


def run_stage(rows, cfg, out_dir):
    import ray

    from raypipe.llm import run_llm_stage

    blocks = max(2, -(-len(rows) // cfg.batch_size))  # one batch per block: no ragged tails
    ds = ray.data.from_items(rows, override_num_blocks=blocks)
    return run_llm_stage(ds, llm=cfg, build_messages=build_messages, parse=parse,
                         out_dir=out_dir, stage="bench", log=lambda m: None)


def output_ids(out_dir: str) -> tuple[list[str], list[str]]:
    """Ids as every reader sees them: through the commit records."""
    from raypipe.io.dataset import read_committed

    def ids(kind):
        table = read_committed(out_dir, kind)
        return table.column("id").to_pylist() if table is not None else []

    return ids("data"), ids("rejects")


def lost_and_duplicated(rows, out_dir):
    data, rejects = output_ids(out_dir)
    seen = data + rejects
    return {
        "lost": len({r["id"] for r in rows} - set(seen)),
        "duplicated": len(seen) - len(set(seen)),
        "rejected": len(rejects),
    }


# -- scenarios ---------------------------------------------------------------------------------
def latency_bound(work: str, n: int, latency: float, in_flight: int, actors: int) -> dict:
    with MockLLMServer(latency_s=latency, process=True) as srv:
        cfg = llm_config(srv, concurrency=in_flight // actors, num_actors=actors,
                         batch_size=in_flight // actors)
        started = time.monotonic()
        summary = run_stage(make_rows(n, "lat"), cfg, f"{work}/latency")
        wall = time.monotonic() - started
        stats = srv.stats
    # The same workload from a bare asyncio loop: what this machine's CPU allows at all.
    with MockLLMServer(latency_s=latency, process=True) as srv:
        asyncio.run(_bare_asyncio(srv.base_url, n, in_flight))
        bare = srv.stats
    ideal = in_flight / latency
    return {"requests": stats.requests, "req_s": round(stats.ok_rate(), 2), "ideal_req_s": ideal,
            "ratio": round(stats.ok_rate() / ideal, 3),
            "steady_ratio": round(stats.steady_rate() / ideal, 3),
            "bare_asyncio_req_s": round(bare.ok_rate(), 2),
            "bare_asyncio_ratio": round(bare.ok_rate() / ideal, 3),
            "wall_s": round(wall, 1), "completed": summary["completed"],
            "max_in_flight": stats.max_in_flight}


def ray_http_processor(n: int, latency: float, actors: int, batch_size: int,
                       tasks_per_actor: int | None = None) -> dict:
    """ray.data.llm's HTTP processor. Inside a batch it awaits one request after another, so its
    concurrency is actors x batches in flight per actor; `tasks_per_actor` sets Ray Data's
    max_tasks_in_flight_per_actor (the processor offers no knob of its own for it)."""
    import ray
    from ray.data.llm import HttpRequestProcessorConfig, build_processor

    context = ray.data.DataContext.get_current()
    saved = context.max_tasks_in_flight_per_actor
    if tasks_per_actor is not None:
        context.max_tasks_in_flight_per_actor = tasks_per_actor
    try:
        with MockLLMServer(latency_s=latency, process=True) as srv:
            config = HttpRequestProcessorConfig(
                url=srv.base_url + "/chat/completions",
                headers={"Authorization": f"Bearer {os.environ[KEY_ENV]}"},
                batch_size=batch_size, concurrency=actors,
            )
            processor = build_processor(
                config,
                preprocess=lambda row: {"payload": {"model": "mock", "max_tokens": 32,
                                                    "messages": build_messages(row)}},
                postprocess=lambda row: {"answer": str(row["http_response"])},
            )
            started = time.monotonic()
            blocks = max(1, n // batch_size)
            out = processor(ray.data.from_items(make_rows(n, "ray"), override_num_blocks=blocks)).take_all()
            wall = time.monotonic() - started
            stats = srv.stats
    finally:
        context.max_tasks_in_flight_per_actor = saved
    return {"actors": actors, "batch_size": batch_size, "tasks_per_actor": tasks_per_actor,
            "requests": stats.requests, "req_s": round(stats.ok_rate(), 3), "wall_s": round(wall, 1),
            "completed": len(out), "max_in_flight": stats.max_in_flight}


def ray_http_processor_best(n: int, latency: float) -> dict:
    """The baseline at its best: a sweep over actors x batch size x tasks in flight per actor;
    the fastest configuration is the one compared."""
    sweep = []
    for actors, batch_size, tasks in ((2, 16, None), (2, 1, 16), (4, 1, 16), (8, 1, 16), (8, 1, 32),
                                      (16, 1, 16)):
        sweep.append(ray_http_processor(n, latency, actors, batch_size, tasks))
    best = max(sweep, key=lambda r: r["req_s"])
    return {**best, "sweep": sweep}


async def _bare_asyncio(base_url: str, n: int, in_flight: int) -> None:
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key=os.environ[KEY_ENV], max_retries=0)
    gate = asyncio.Semaphore(in_flight)

    async def one(row):
        async with gate:
            response = await client.chat.completions.create(
                model="mock", messages=build_messages(row), max_tokens=32, temperature=0.0)
            return response.choices[0].message.content

    await asyncio.gather(*(one(r) for r in make_rows(n, "bare")))
    await client.close()


def client_cpu(work: str, n: int, in_flight: int, actors: int) -> dict:
    with MockLLMServer(process=True) as srv:
        asyncio.run(_bare_asyncio(srv.base_url, n, in_flight))
        bare = srv.stats.ok_rate()
    with MockLLMServer(process=True) as srv:
        cfg = llm_config(srv, concurrency=in_flight // actors, num_actors=actors, batch_size=256)
        run_stage(make_rows(n, "cpu"), cfg, f"{work}/cpu")
        ours = srv.stats.ok_rate()
    return {"requests": n, "raypipe_req_s": round(ours, 1), "bare_asyncio_req_s": round(bare, 1),
            "ratio": round(ours / bare, 3)}


def rate_limited(work: str, n: int, rpm: float) -> dict:
    with MockLLMServer(rpm=rpm, burst_s=1.0, process=True) as srv:
        cfg = llm_config(srv, requests_per_minute=rpm, concurrency=32, batch_size=32)
        summary = run_stage(make_rows(n, "rl"), cfg, f"{work}/rate")
        stats = srv.stats
    limit = rpm / 60.0
    return {"requests": stats.requests, "req_s": round(stats.ok_rate(), 3), "limit_req_s": limit,
            "ratio": round(stats.ok_rate() / limit, 3),
            "steady_ratio": round(stats.steady_rate() / limit, 3),
            "share_429": round(stats.status.get(429, 0) / max(stats.requests, 1), 4),
            "completed": summary["completed"]}


def faults(work: str, n: int) -> dict:
    rows = make_rows(n, "flt")
    fault = FaultConfig(rate_5xx=0.04, rate_timeout=0.03, rate_drop=0.03, timeout_sleep_s=5, seed=7)
    with MockLLMServer(latency_s=0.05, faults=fault, process=True) as srv:
        cfg = llm_config(srv, timeout_s=1.0, max_retries=6, concurrency=32, batch_size=32)
        summary = run_stage(rows, cfg, f"{work}/faults")
        stats = srv.stats
    failed = stats.requests - stats.ok
    return {"requests": stats.requests, "failed_requests": failed,
            "failed_share": round(failed / max(stats.requests, 1), 3),
            "req_s": round(stats.ok_rate(), 2), **lost_and_duplicated(rows, f"{work}/faults"),
            "completed": summary["completed"]}


CHILD = """
import sys, ray
sys.path.insert(0, {here!r})
from raypipe.llm.bench import llm_config_from, make_rows, run_stage
ray.init(address={address!r}, log_to_driver=False)
run_stage(make_rows({n}, "res"), llm_config_from({cfg!r}), {out!r})
"""


def llm_config_from(d: dict) -> LLMConfig:
    return LLMConfig(**d)


def resume(work: str, n: int, latency: float) -> dict:
    import dataclasses

    import ray

    out = f"{work}/resume"
    rows = make_rows(n, "res")
    with MockLLMServer(latency_s=latency, process=True) as srv:
        cfg = llm_config(srv, concurrency=32, batch_size=32, cache_dir=f"{work}/resume-cache")
        script = CHILD.format(here=os.getcwd(), address=ray.get_runtime_context().gcs_address,
                              n=n, cfg=dataclasses.asdict(cfg), out=out)
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        killed_at = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and child.poll() is None:
            done = 0
            for record in glob.glob(f"{out}/_commits/*.json"):  # complete: renamed into place
                with open(record, encoding="utf-8") as f:
                    done += json.load(f)["settled"]
            if done >= n // 2:
                os.killpg(child.pid, signal.SIGKILL)  # the driver and everything it started
                killed_at = done
                break
            time.sleep(0.05)
        child.wait()
        before = srv.stats.requests
        time.sleep(1.0)  # let Ray notice the dead driver and reap its actors
        summary = run_stage(rows, cfg, out)
        stats = srv.stats
    return {"rows": n, "killed_after_rows": killed_at, "requests_first_run": before,
            "requests_total": stats.requests,
            "requests_per_row": round(stats.requests / n, 4),
            **lost_and_duplicated(rows, out), "completed": summary["completed"]}


class ParquetEcho(LLMStage):
    """The bench's job: one request per row of a Parquet file (a real file source, so a
    finished run is recognised by its inputs)."""

    name = "bench"

    def __init__(self, path: str, llm: LLMConfig):
        super().__init__(config=None)
        self.path, self._llm = path, llm

    def llm(self) -> LLMConfig:
        return self._llm

    def inputs(self) -> list[str]:
        return [self.path]

    def output_schema(self):
        import pyarrow as pa

        return pa.schema([("id", pa.string()), ("answer", pa.string())])

    def source(self, *, use_ray: bool = True, allow_incomplete: bool = False):
        import ray.data

        return ray.data.read_parquet(self.path)

    def prompt(self, row):
        return build_messages(row)

    def parse(self, row, completion):
        return parse(row, completion.text)


SCALE_CHILD = """
import json, resource, sys, time, ray
sys.path.insert(0, {here!r})
from raypipe.llm import run_stage
from raypipe.llm.bench import ParquetEcho, llm_config_from
ray.init(address={address!r}, log_to_driver=False)
ray.data.DataContext.get_current().enable_progress_bars = False
started = time.monotonic()
summary = run_stage(ParquetEcho({path!r}, llm_config_from({cfg!r})), out={out!r}, log=lambda m: None)
print(json.dumps({{"wall_s": time.monotonic() - started, "completed": summary["completed"],
                  "up_to_date": summary.get("up_to_date", False),
                  "driver_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def _driver(work: str, rows_file: str, cfg: LLMConfig, out: str) -> dict:
    """One job as its own driver process (as `ray job submit` runs it): wall time, peak RSS."""
    import dataclasses

    import ray

    script = SCALE_CHILD.format(here=os.getcwd(), address=ray.get_runtime_context().gcs_address,
                                path=rows_file, cfg=dataclasses.asdict(cfg), out=out)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench driver failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def scale(work: str, small: int, large: int) -> dict:
    """The same job at two sizes against a near-zero-latency server: req/s should not drop with
    size, driver memory should not grow with it, and a re-run of the finished job is a no-op."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out: dict = {}
    for n in (small, large):
        rows_file = f"{work}/scale-{n}.parquet"
        pq.write_table(pa.Table.from_pylist(make_rows(n, f"s{n}-")), rows_file)
        with MockLLMServer(process=True) as srv:
            cfg = llm_config(srv, concurrency=64, num_actors=2, batch_size=256)
            first = _driver(work, rows_file, cfg, f"{work}/scale-out-{n}")
            stats = srv.stats
            again = _driver(work, rows_file, cfg, f"{work}/scale-out-{n}")
            extra = srv.stats.requests - stats.requests
        out[str(n)] = {"rows": n, "req_s": round(stats.ok_rate(), 1), "wall_s": round(first["wall_s"], 1),
                       "completed": first["completed"], "driver_peak_rss_mib": round(first["driver_peak_rss_mib"], 1),
                       "rerun_wall_s": round(again["wall_s"], 2), "rerun_up_to_date": again["up_to_date"],
                       "rerun_requests": extra}
    s, big = out[str(small)], out[str(large)]
    out["req_s_ratio_large_vs_small"] = round(big["req_s"] / s["req_s"], 3)
    out["driver_rss_ratio_large_vs_small"] = round(big["driver_peak_rss_mib"] / s["driver_peak_rss_mib"], 3)
    out["noop_rerun_share_of_first_run"] = round(big["rerun_wall_s"] / big["wall_s"], 4)
    return out


SCENARIOS = ("latency_bound", "ray_http_processor", "client_cpu", "rate_limited", "faults", "resume", "scale")


def run_all(quick: bool = False, only: tuple[str, ...] = SCENARIOS) -> dict:
    import ray

    os.environ.setdefault(KEY_ENV, "sk-bench-not-a-real-key")
    size = 0.25 if quick else 1.0  # not `scale`: that is the scenario function below
    started = time.monotonic()
    for attempt in range(3):  # a busy shared machine sometimes misses Ray's start-up deadline
        try:
            ray.init(num_cpus=2, include_dashboard=False, object_store_memory=300 * 1024 * 1024,
                     log_to_driver=False)
            break
        except Exception:
            ray.shutdown()
            if attempt == 2:
                raise
    work = tempfile.mkdtemp(prefix="raypipe-bench-synth-")
    runs = {
        "latency_bound": lambda: latency_bound(work, int(2000 * size), latency=1.0, in_flight=128, actors=2),
        "ray_http_processor": lambda: ray_http_processor_best(int(256 * max(size, 0.5)), latency=0.5),
        "client_cpu": lambda: client_cpu(work, int(4000 * size), in_flight=128, actors=2),
        "rate_limited": lambda: rate_limited(work, int(300 * size), rpm=600),
        "faults": lambda: faults(work, int(1000 * size)),
        "resume": lambda: resume(work, int(2000 * size), latency=0.2),
        "scale": lambda: scale(work, int(10_000 * size), int(100_000 * size)),
    }
    results: dict[str, dict] = {}
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        for name in SCENARIOS:
            if name in only:
                try:
                    results[name] = runs[name]()
                except Exception as exc:  # one broken scenario must not lose the others' figures
                    results[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    return report(results, quick, time.monotonic() - started)


def report(r: dict[str, dict], quick: bool, elapsed: float) -> dict:
    def get(name, key):
        return r.get(name, {}).get(key)

    lat, ray_http = get("latency_bound", "req_s"), get("ray_http_processor", "req_s")
    sc = r.get("scale", {})
    return {
        "latency_bound_ratio": get("latency_bound", "ratio"),
        "latency_bound_bare_asyncio_ratio": get("latency_bound", "bare_asyncio_ratio"),
        "vs_ray_http_processor": round(lat / ray_http, 2) if lat and ray_http else None,
        "vs_bare_asyncio": get("client_cpu", "ratio"),
        "rate_limited_ratio": get("rate_limited", "ratio"),
        "rate_limited_429_share": get("rate_limited", "share_429"),
        "faults_lost": get("faults", "lost"),
        "faults_duplicated": get("faults", "duplicated"),
        "faults_rejected": get("faults", "rejected"),
        "resume_lost": get("resume", "lost"),
        "resume_duplicated": get("resume", "duplicated"),
        "resume_requests_per_row": get("resume", "requests_per_row"),
        "scale_req_s_ratio_100k_vs_10k": sc.get("req_s_ratio_large_vs_small"),
        "scale_driver_rss_ratio_100k_vs_10k": sc.get("driver_rss_ratio_large_vs_small"),
        "noop_rerun_share_of_first_run": sc.get("noop_rerun_share_of_first_run"),
        "req_s": {
            "latency_bound": lat, "latency_bound_bare_asyncio": get("latency_bound", "bare_asyncio_req_s"),
            "ray_http_processor": ray_http,
            "client_cpu_raypipe": get("client_cpu", "raypipe_req_s"),
            "client_cpu_bare_asyncio": get("client_cpu", "bare_asyncio_req_s"),
            "rate_limited": get("rate_limited", "req_s"), "faults": get("faults", "req_s"),
        },
        "scenarios": r,
        "notes": [
            "rates are measured by the test server: (answers - 1) / (last answer - first request);"
            " steady_ratio: over the central 80% of answers",
            "latency_bound_bare_asyncio_ratio: the same workload from one bare asyncio loop, i.e."
            " what this machine's CPU allows at all at the moment of the run",
            "ray_http_processor: the best of a sweep over actors (2-16), batch size (1, 16) and Ray Data's"
            " max_tasks_in_flight_per_actor (default, 16, 32); inside a batch it awaits one request after"
            " another, so small batches and many in flight serve it best (the sweep is in scenarios)",
            "latency_bound and ray_http_processor use different request counts; both figures are req/s",
            "client_cpu: raypipe with the request cache off, same concurrency, zero-latency server",
            f"test server runs in its own process; machine: {os.cpu_count()} cores"
            f" (load average {os.getloadavg()[0]:.1f} at the end); quick={quick}",
        ],
        "elapsed_s": round(elapsed, 1),
    }


def main_json(out_file: str | None, quick: bool) -> dict:
    result = run_all(quick=quick)
    text = json.dumps(result, indent=2)
    print(text)
    if out_file:
        with open(out_file, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return result


if __name__ == "__main__":
    main_json(sys.argv[1] if len(sys.argv) > 1 else None, quick="--quick" in sys.argv)
