"""The shared limiter on real (local) Ray: a detached actor in the "raypipe" namespace on the
head node, named by a hash, leased in blocks; killed mid-run it is re-created by the workers
and no row is rejected; idle, it exits. (Two jobs under one key: tests/integration/
test_cluster_limits.py, on a two-node cluster.)"""

import hashlib
import json
import os
import sys
import threading
import time

import pytest
from ray import cloudpickle

from raypipe.llm import LLMConfig, run_llm_stage
from raypipe.llm.limiter import NAMESPACE, START_PAUSE_S, get_or_create_limiter, limiter_name
from raypipe.mockllm.server import MockLLMServer

pytestmark = pytest.mark.integration

KEY = "sk-test-limiter-7a7a7a7a"
os.environ["RAYPIPE_TEST_LIMITER_KEY"] = KEY  # before the session's ray.init: workers inherit it
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/


def build(row):
    return [{"role": "user", "content": row["q"]}]


def parse(row, text):
    return {"id": row["id"], "answer": text}


def test_killed_limiter_is_recreated_and_no_row_is_rejected(local_ray, tmp_path):
    ray = local_ray
    rows = [{"id": f"r{i}", "q": f"q {i}"} for i in range(200)]
    with MockLLMServer(latency_s=0.05, rpm=1200, burst_s=1.0, process=True) as srv:
        cfg = LLMConfig(base_url=srv.base_url, model="mock", api_key_env="RAYPIPE_TEST_LIMITER_KEY",
                        requests_per_minute=1200, concurrency=16, num_actors=2, batch_size=20,
                        timeout_s=5.0, backoff_base_s=0.05, progress_interval_s=0)
        name = limiter_name(srv.base_url, "mock", KEY)
        killed = []

        def kill_when_running():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    actor = ray.get_actor(name, namespace=NAMESPACE)
                    if ray.get(actor.state.remote())["slots"] >= 40:  # mid-run
                        ray.kill(actor, no_restart=True)
                        killed.append(time.monotonic())
                        return
                except ValueError:
                    pass
                time.sleep(0.1)

        killer = threading.Thread(target=kill_when_running, daemon=True)
        killer.start()
        summary = run_llm_stage(ray.data.from_items(rows, override_num_blocks=4), llm=cfg,
                                build_messages=build, parse=parse, out_dir=str(tmp_path / "out"),
                                stage="t")
        killer.join(timeout=5)
        stats = srv.stats
        state = ray.get(ray.get_actor(name, namespace=NAMESPACE).state.remote())  # re-created
    assert killed, "the limiter was never seen running"
    assert summary["completed"] == 200 and summary["rejected"] == 0
    assert stats.ok == 200
    # Slots leased before the kill may overlap the new limiter's first ones: on a quiet machine
    # that costs <= 4 refusals (2%); on a loaded one (workers late to return their leases) it was
    # seen up to 50. With no shared limiter, 32 requests in flight at 50 ms against a 20 req/s
    # key would draw hundreds.
    assert stats.status.get(429, 0) <= 60
    assert state["leases"] >= 1 and state["slots"] >= 1
    head = [n["NodeID"] for n in ray.nodes() if "node:__internal_head__" in n["Resources"]]
    assert state["node_id"] in head


def test_the_actor_is_detached_named_by_a_hash_and_leases_in_blocks(local_ray, tmp_path):
    ray = local_ray
    rows = [{"id": f"r{i}", "q": f"q {i}"} for i in range(120)]
    with MockLLMServer(latency_s=0.05, rpm=3000, burst_s=1.0, process=True) as srv:
        cfg = LLMConfig(base_url=srv.base_url, model="mock", api_key_env="RAYPIPE_TEST_LIMITER_KEY",
                        requests_per_minute=3000, concurrency=32, num_actors=2, batch_size=30,
                        timeout_s=5.0, progress_interval_s=0)
        summary = run_llm_stage(ray.data.from_items(rows, override_num_blocks=4), llm=cfg,
                                build_messages=build, parse=parse, out_dir=str(tmp_path / "out"),
                                stage="t")
        stats = srv.stats
    assert summary["completed"] == 120 and stats.status.get(429, 0) == 0
    name = limiter_name(srv.base_url, "mock", KEY)
    actor = ray.get_actor(name, namespace=NAMESPACE)  # still there: detached, outlives the run
    state = ray.get(actor.state.remote())
    assert state["slots"] >= 120 and state["leases"] <= state["slots"] / 3  # blocks, not 2 calls/request
    info = ray._private.state.actors(actor._actor_id.hex())  # the GCS actor table
    assert info["IsDetached"] and info["State"] == "ALIVE"
    with pytest.raises(ValueError):
        ray.get_actor(name)  # not in the job's own namespace: in the fixed one
    text = json.dumps(state) + name
    for secret in (KEY, hashlib.sha256(KEY.encode()).hexdigest()[:16]):
        assert secret not in text


def test_an_idle_limiter_exits_and_is_created_again_on_demand(local_ray):
    ray = local_ray
    name = limiter_name("http://127.0.0.1:9/v1", "idle-test", KEY)
    actor = get_or_create_limiter(name, 600, None, idle_exit_s=1.0)
    assert ray.get(actor.state.remote())["requests_per_minute"] == 600
    deadline = time.monotonic() + 30
    while True:
        try:
            ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            break  # gone
        assert time.monotonic() < deadline, "the idle limiter did not exit"
        time.sleep(0.3)
    again = get_or_create_limiter(name, 600, None, idle_exit_s=60.0)
    slots = ray.get(again.lease.remote("c", 3, 1, 600, None))  # wall-clock send times
    assert [b - a for a, b in zip(slots, slots[1:])] == pytest.approx([0.1, 0.1], abs=1e-6)
    assert 0 < slots[0] - time.time() <= START_PAUSE_S  # a new actor starts after a pause
    ray.kill(again, no_restart=True)
