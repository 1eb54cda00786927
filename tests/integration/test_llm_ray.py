"""The engine on local Ray: actors run batches concurrently, the named limiter actor holds the
whole job to its rate, and a fatal error stops the job with one clear message."""

import os
import sys

from ray import cloudpickle
import pytest

from raypipe.errors import FatalJobError
from raypipe.llm import LLMConfig, run_llm_stage
from raypipe.mockllm.server import MockLLMServer

pytestmark = pytest.mark.integration

os.environ["RAYPIPE_TEST_RAY_KEY"] = "sk-test-ray-0000"  # set before the session's ray.init
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/


def config(srv, **kw):
    base = dict(base_url=srv.base_url, model="mock", api_key_env="RAYPIPE_TEST_RAY_KEY",
                timeout_s=5.0, backoff_base_s=0.01, progress_interval_s=0)
    base.update(kw)
    return LLMConfig(**base)


def build(row):
    return [{"role": "user", "content": row["q"]}]


def parse(row, text):
    return {"id": row["id"], "answer": text}


def test_actors_keep_many_requests_in_flight_and_the_limiter_holds_the_job_rate(local_ray, tmp_path):
    rows = [{"id": f"r{i}", "q": f"q {i}"} for i in range(120)]
    ds = local_ray.data.from_items(rows, override_num_blocks=4)
    # Unlimited, 2 actors x 16 in flight at 0.3 s would make ~100 req/s and burst 32 at once;
    # the server allows 50 req/s with a burst of 25, and so is the job configured.
    with MockLLMServer(latency_s=0.3, rpm=3000, burst_s=0.5) as srv:
        cfg = config(srv, requests_per_minute=3000, concurrency=16, num_actors=2, batch_size=15)
        summary = run_llm_stage(ds, llm=cfg, build_messages=build, parse=parse,
                                out_dir=str(tmp_path / "a"), stage="c")
        stats = srv.stats
    assert summary["completed"] == 120 and stats.ok == 120
    assert stats.status.get(429, 0) == 0  # both actors kept to one shared budget
    assert stats.ok_rate() <= 50 * 1.1
    assert stats.max_in_flight >= 10  # requests of a batch overlap (50 req/s x 0.3 s = 15)


def test_bad_credentials_stop_the_job_with_one_clear_message(local_ray, tmp_path):
    rows = [{"id": f"r{i}", "q": f"q {i}"} for i in range(10)]
    with MockLLMServer(api_key="another-key") as srv:
        with pytest.raises(FatalJobError) as err:
            run_llm_stage(local_ray.data.from_items(rows), llm=config(srv, num_actors=1),
                          build_messages=build, parse=parse, out_dir=str(tmp_path / "o"), stage="a")
    message = str(err.value)
    assert "refused the credentials (HTTP 401)" in message and "RAYPIPE_TEST_RAY_KEY" in message
    assert "Traceback" not in message and "sk-test-ray-0000" not in message
