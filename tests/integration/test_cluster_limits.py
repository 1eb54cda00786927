"""Rate limits shared by a team, on a real two-node Ray cluster (tests/cluster.py): jobs are
`raypipe run` of a `synth_reasoning` job, submitted with `ray job submit`, against the test
server in its own process, which enforces the key's limit itself and counts every request.

- Two jobs submitted at once with the same endpoint, model and key and a 600-rpm limit
  together send at most 1.0x the limit, with at most 1% 429s.
- kill -9 of the worker node's raylet mid-run: the limiter (on the head node) lives on, and no
  row is rejected for a limiter failure.
"""

import json
import subprocess
import time
from pathlib import Path

import pytest

from raypipe.data import SAMPLES_JSONL
from raypipe.io.dataset import DATA, REJECTS, read_committed
from raypipe.llm.limiter import LATE_SLOT_S, NAMESPACE, limiter_name
from raypipe.mockllm.responders import reasoning_responder
from raypipe.mockllm.server import TAG_HEADER, MockLLMServer

pytestmark = pytest.mark.integration

KEY_ENV = "RAYPIPE_TEST_TEAM_KEY"
KEY = "sk-test-team-5c5c5c5c5c5c"
MODEL = "mock-model"


def write_inputs(path: Path, tag: str, n: int) -> None:
    """n canonical samples with one tool-call turn each, distinct per job and row (so every
    row is one request: nothing is shared through the cache or in-flight de-duplication)."""
    base = []
    for line in SAMPLES_JSONL.read_text(encoding="utf-8").splitlines():
        sample = json.loads(line)
        if sum(1 for m in sample["messages"] if m["role"] == "assistant" and m.get("tool_calls")) == 1:
            base.append(sample)
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            sample = json.loads(json.dumps(base[i % len(base)]))
            sample["id"] = f"{tag}-{i}"
            user = next(m for m in sample["messages"] if m["role"] == "user")
            user["content"] += f" (job {tag}, request {i})"
            f.write(json.dumps(sample, ensure_ascii=False) + "\n")


def write_job(tmp: Path, tag: str, rows: int, base_url: str, rpm: int, **llm) -> tuple[Path, Path]:
    inputs, out, job = tmp / f"in-{tag}.jsonl", tmp / f"out-{tag}", tmp / f"job-{tag}.yaml"
    write_inputs(inputs, tag, rows)
    settings = {"base_url": base_url, "model": MODEL, "api_key_env": KEY_ENV,
                "requests_per_minute": rpm, "concurrency": 16, "num_actors": 1, "batch_size": 16,
                "max_retries": 8, "backoff_base_s": 0.2, "timeout_s": 30, "progress_interval_s": 5,
                "extra_headers": {TAG_HEADER: tag}, **llm}
    job.write_text(json.dumps({"name": f"team-limit-{tag}", "steps": [
        {"synth_reasoning": {"inputs": [str(inputs)], "out": str(out), "llm": settings}}]}))
    return job, out


def test_two_jobs_under_one_key_together_keep_the_key_limit(ray_cluster, tmp_path):
    rows, rpm = 240, 600  # alone, a job needs 24 s at 10 req/s; together 48 s
    with MockLLMServer(responder=reasoning_responder, latency_s=0.05, rpm=rpm, burst_s=1.0,
                       model_name=MODEL, process=True) as srv:
        jobs = {tag: write_job(tmp_path, tag, rows, srv.base_url, rpm) for tag in ("a", "b")}
        cluster = ray_cluster(worker_nodes=1, head_cpus=2, worker_cpus=2, env={KEY_ENV: KEY})
        running = [cluster.submit("raypipe", "run", str(job)) for job, _ in jobs.values()]
        logs = [job.wait(timeout=480) for job in running]
        stats = srv.stats
    arrivals = sorted((t, tag, status) for t, tag, status in stats.arrivals if tag in jobs)
    first = {tag: min(t for t, g, _ in arrivals if g == tag) for tag in jobs}
    last = {tag: max(t for t, g, _ in arrivals if g == tag) for tag in jobs}
    start, end = max(first.values()), min(last.values())
    both = [a for a in arrivals if start <= a[0] <= end]
    figures = {
        "overlap_s": round(end - start, 1), "requests_in_overlap": len(both),
        "rpm_in_overlap": round((len(both) - 1) / max(end - start, 1e-9) * 60, 1),
        "rpm_whole_run": round((len(arrivals) - 1) / (arrivals[-1][0] - arrivals[0][0]) * 60, 1),
        "share_429": round(sum(s == 429 for _, _, s in arrivals) / len(arrivals), 4),
        "requests": len(arrivals), "ok": stats.ok,
    }
    print("team-shared limit:", json.dumps(figures))  # the figures docs/llm.md quotes
    assert end - start >= 10, f"the two jobs hardly overlapped: {figures}"
    for tag in jobs:  # both jobs were really sending in the window
        assert sum(g == tag for _, g, _ in both) >= 0.25 * len(both), figures
    # At most 1.0x the key's limit: the limiter's slots are 1/rate apart, so n slots span
    # (n-1)/rate. A request leaves at its slot or up to LATE_SLOT_S later (a worker woken
    # late), plus its transit, so a window cut at two arbitrary arrivals can also hold the few
    # requests whose slots lay just before it: rate x (LATE_SLOT_S + 0.05 s), that is all.
    edge = 1 + (LATE_SLOT_S + 0.05) * rpm / 60
    assert len(both) <= (end - start) * rpm / 60 + edge, figures
    assert len(arrivals) <= (arrivals[-1][0] - arrivals[0][0]) * rpm / 60 + edge, figures
    assert figures["share_429"] <= 0.01, figures
    assert stats.ok == 2 * rows  # every row answered once
    for text in logs:
        assert "team-limit" in text and "finished" in text
    for _, out in jobs.values():
        assert read_committed(str(out), DATA, allow_incomplete=False).num_rows == rows


def _limiter_state(cluster, name: str) -> dict:
    """The limiter actor's state, asked from a job on the cluster (as a user would)."""
    code = ("import json, ray; ray.init(); a = ray.get_actor(%r, namespace=%r); "
            "s = ray.get(a.state.remote()); "
            "s['head'] = [n['NodeID'] for n in ray.nodes() if 'node:__internal_head__' in n['Resources']]; "
            "print('STATE=' + json.dumps(s))") % (name, NAMESPACE)
    text = cluster.run_job("python", "-c", code, timeout=240)
    return json.loads(text.rsplit("STATE=", 1)[1].splitlines()[0])  # (the entrypoint is echoed too)


def test_a_lost_worker_node_loses_no_row_commits_none_twice_and_the_limiter_lives_on(ray_cluster, tmp_path):
    rows, rpm = 300, 1200  # 15 s of sending at 20 req/s
    with MockLLMServer(responder=reasoning_responder, latency_s=0.05, rpm=rpm, burst_s=1.0,
                       model_name=MODEL, process=True) as srv:
        job, out = write_job(tmp_path, "k", rows, srv.base_url, rpm, num_actors=2, actor_num_cpus=1.0)
        # Head: 1 CPU, so the second actor (1 CPU each) must run on the worker node.
        cluster = ray_cluster(worker_nodes=1, head_cpus=1, worker_cpus=2, env={KEY_ENV: KEY})
        first = cluster.submit("raypipe", "run", str(job))
        deadline = time.monotonic() + 300
        while srv.stats.ok < 60:  # mid-run
            assert first.proc.poll() is None, first.log_path.read_text()[-4000:]
            assert time.monotonic() < deadline, "the job never started sending"
            time.sleep(0.5)
        cluster.kill_raylet(cluster.workers[0])
        # The lost actor's replacement needs a CPU that no live node has: Ray Data may wait for
        # it for ever. Then the job is stopped and re-run with one 0-CPU actor, which fits the head
        # and leaves the read tasks their CPU (the re-run completes what the first run left).
        deadline = time.monotonic() + 60  # the whole job is 15 s of sending
        while first.running() and time.monotonic() < deadline:
            time.sleep(1)
        if first.running():
            first.stop()
        logs = first.wait(timeout=60, succeed=False)
        if first.proc.returncode != 0 or "finished" not in logs:
            write_job(tmp_path, "k", rows, srv.base_url, rpm, num_actors=1, actor_num_cpus=0.0)
            logs += cluster.run_job("raypipe", "run", str(job), timeout=400)
        state = _limiter_state(cluster, limiter_name(srv.base_url, MODEL, KEY))
        stats = srv.stats
    assert state["node_id"] in state["head"]  # placed on the head node: lives on
    assert state["leases"] >= 1
    table = read_committed(str(out), REJECTS)
    rejects = table.to_pylist() if table is not None else []
    reasons = [r["reason"] for r in rejects]
    assert not [r for r in reasons if "Actor" in r or "limiter" in r.lower()], reasons[:5]
    assert "ActorDiedError" not in logs
    assert stats.status.get(429, 0) <= 0.02 * stats.requests
    done = read_committed(str(out), DATA, allow_incomplete=False).to_pylist()
    parents = [r["lineage"][-1]["parent_id"] for r in done]  # outputs name their input row
    assert len(parents) == len(set(parents)), "a row was committed twice"
    assert set(parents) | {r["id"] for r in rejects} == {f"k-{i}" for i in range(rows)}  # none lost
    # Paid twice at most: what the lost actor had answered but not yet committed (one batch of
    # 16, plus 16 in flight). Everything committed is skipped by the re-run.
    assert stats.ok <= rows + 16 + 16, f"{stats.ok} answers paid for {rows} rows"


def test_the_cluster_helper_kills_only_its_own_processes(ray_cluster):
    cluster = ray_cluster(worker_nodes=1)
    pid = cluster.raylet_pid(cluster.workers[0])
    assert str(cluster.workers[0].node_manager_port) in Path(f"/proc/{pid}/cmdline").read_text(errors="ignore")
    cluster.kill_raylet(cluster.workers[0])
    time.sleep(0.5)
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    assert state in ("", "Z")  # gone (or a zombie awaiting its parent)
    cluster.stop()
    assert not cluster.leftover_pids()
