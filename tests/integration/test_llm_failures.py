"""Transient failures leave rows pending, never rejected; a re-run completes them. An actor
killed mid-batch leaves no duplicate and no orphan visible to any reader."""

import os
import time

import pytest

from raypipe.errors import FatalJobError
from raypipe.io.dataset import open_dataset, read_committed
from raypipe.llm import LLMConfig, PendingRowsError, run_llm_stage
from raypipe.mockllm.server import FaultConfig, MockLLMServer

pytestmark = pytest.mark.integration

KEY_ENV = "RAYPIPE_FAILURES_TEST_KEY"
os.environ[KEY_ENV] = "sk-failures-test"  # before any test starts Ray: workers inherit it

ROWS = [{"id": f"r{i:04d}", "q": f"question {i}"} for i in range(300)]


def build(row):
    return [{"role": "user", "content": row["q"]}]


def parse(row, text):
    return {"id": row["id"], "answer": text}


def config(srv, tmp_path, **kw) -> LLMConfig:
    base = dict(base_url=srv.base_url, model="mock", api_key_env=KEY_ENV, concurrency=8, batch_size=16,
                cache_dir=str(tmp_path / "cache"), progress_interval_s=0, timeout_s=2.0)
    return LLMConfig(**{**base, **kw})


def run(srv, tmp_path, **kw):
    return run_llm_stage(ROWS, llm=config(srv, tmp_path, **kw), build_messages=build, parse=parse,
                         out_dir=str(tmp_path / "out"), stage="t", executor="local")


def every_row_once(out: str) -> None:
    ids = read_committed(out).column("id").to_pylist()
    assert sorted(ids) == [r["id"] for r in ROWS]  # none lost, none twice
    assert read_committed(out, "rejects") is None


def test_an_outage_longer_than_the_retries_leaves_rows_pending_not_rejected(tmp_path):
    faults = FaultConfig(outage_after_s=0.5, outage_s=6.0)
    with MockLLMServer(latency_s=0.02, faults=faults) as srv:
        with pytest.raises(PendingRowsError, match="pending after transient failures") as err:
            run(srv, tmp_path, max_retries=2, backoff_base_s=0.2, backoff_max_s=0.5)
        first = err.value.summary
        assert first["pending"] > 0 and first["rejected"] == 0
        assert first["rows_in"] == first["completed"] + first["pending"]
        assert not open_dataset(str(tmp_path / "out")).complete  # readers refuse it as it is
        time.sleep(max(0.0, srv.stats.first_request_t + 6.6 - time.time()))
        again = run(srv, tmp_path)
    assert again["completed"] == len(ROWS) and again["rejected"] == 0 and again["pending"] == 0
    every_row_once(str(tmp_path / "out"))


def test_a_sixty_second_outage_stops_the_job_and_a_rerun_completes_every_row(tmp_path):
    """The endpoint goes down for 60 s mid-run: the stop rule ends the job with one message
    (no row rejected, the finished ones kept); after the outage the same run resumes."""
    faults = FaultConfig(outage_after_s=1.0, outage_s=60.0)
    with MockLLMServer(latency_s=0.05, faults=faults) as srv:
        with pytest.raises(FatalJobError, match="is down: no successful answer"):
            run(srv, tmp_path, endpoint_down_after_s=15.0, max_retries=3, backoff_base_s=1.0,
                backoff_max_s=4.0)
        committed = read_committed(str(tmp_path / "out"))
        assert committed is not None and 0 < committed.num_rows < len(ROWS)
        assert read_committed(str(tmp_path / "out"), "rejects") is None
        time.sleep(max(0.0, srv.stats.first_request_t + 61.5 - time.time()))
        again = run(srv, tmp_path)
        sent = srv.stats.ok
    assert again["completed"] == len(ROWS) and again["rejected"] == 0 and again["pending"] == 0
    assert sent == len(ROWS)  # every answer received once: finished rows were not asked again
    every_row_once(str(tmp_path / "out"))


def test_an_actor_killed_mid_batch_leaves_no_duplicate_and_no_orphan(local_ray, tmp_path):
    """Ray restarts the dead actor and runs its batch again: the retry finds the parts that
    batch already committed, skips their rows and overwrites anything left half-written."""
    marker = tmp_path / "killed-once"
    flag = str(marker)

    async def program(row, client):  # self-contained: Ray workers cannot import this module
        import os as _os
        import signal as _signal

        answer = await client.chat([{"role": "user", "content": row["q"]}])
        if row["id"] == "r0150" and not _os.path.exists(flag):
            open(flag, "w").close()  # half the batch is answered and partly committed by now
            _os.kill(_os.getpid(), _signal.SIGKILL)  # the actor dies mid-batch
        return {"id": row["id"], "answer": answer.text}

    out = str(tmp_path / "out")
    with MockLLMServer(latency_s=0.05) as srv:
        from raypipe.llm import run_llm_program

        summary = run_llm_program(ROWS, llm=config(srv, tmp_path, num_actors=1, batch_size=100),
                                  program=program, out_dir=out, stage="t", executor="ray",
                                  commit_interval_s=0.2)
        answered = srv.stats.ok_by_key
    assert marker.exists()
    assert summary["completed"] == len(ROWS) and summary["pending"] == 0 and summary["rejected"] == 0
    every_row_once(out)
    view = open_dataset(out)
    on_disk = {p.name for p in (tmp_path / "out" / "data").iterdir()}
    assert on_disk == {os.path.basename(p) for p in view.data}  # nothing unreferenced left
    assert max(answered.values()) <= 2  # a row asked twice at most: the one in flight at the kill
    parts: dict[str, int] = {}
    for name in os.listdir(tmp_path / "out" / "_commits"):
        key = name.split("-")[1]
        parts[key] = parts.get(key, 0) + 1
    assert max(parts.values()) >= 2  # the killed batch: parts before the kill, then the retry's
