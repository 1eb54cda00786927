"""LLMClient against the local test server over real HTTP (no Ray): retries, Retry-After,
fatal errors, cache, de-duplication, concurrency cap, rate limit, structured output."""

import asyncio
import json
import os
import socket
import time

import pytest

from raypipe.errors import FatalJobError
from raypipe.llm import LLMClient, LLMConfig, RowError, TransientError
from raypipe.llm.limiter import LocalLimiter
from raypipe.mockllm.responders import fail_when, json_responder, reask_aware
from raypipe.mockllm.server import FaultConfig, MockLLMServer

pytestmark = pytest.mark.integration

KEY = "sk-test-SECRET-4f9a"
os.environ["RAYPIPE_TEST_LLM_KEY"] = KEY  # module level: Ray workers started later inherit it


def config(srv, **kw) -> LLMConfig:
    base = dict(base_url=srv.base_url, model="mock", api_key_env="RAYPIPE_TEST_LLM_KEY",
                timeout_s=2.0, backoff_base_s=0.01, max_retries=4, progress_interval_s=0)
    base.update(kw)
    return LLMConfig(**base)


def ask(client, text="hi", **params):
    return client.chat([{"role": "user", "content": text}], **params)


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize("fault", ["5xx", "429", "drop", "malformed", "timeout"])
def test_retryable_faults_are_retried_until_success(fault):
    faults = FaultConfig(fail_first=2, fail_first_with=fault, retry_after_s=0.01, timeout_sleep_s=5)
    with MockLLMServer(faults=faults) as srv:
        client = LLMClient(config(srv, timeout_s=0.3))
        completion = run(ask(client))
        assert completion.text == "echo: hi" and not completion.cached
        assert srv.stats.requests == 3
        assert client.acct.retries == 2 and client.acct.responses == 1


def test_retry_after_is_honoured():
    with MockLLMServer(faults=FaultConfig(fail_first=1, fail_first_with="429", retry_after_s=0.4)) as srv:
        client = LLMClient(config(srv))
        started = time.monotonic()
        run(ask(client))
        assert time.monotonic() - started >= 0.4
        assert client.acct.throttled == 1


def test_client_error_fails_the_row_at_once():
    with MockLLMServer(responder=fail_when(lambda b: True, 400)) as srv:
        client = LLMClient(config(srv))
        with pytest.raises(RowError, match="http error: HTTP 400"):
            run(ask(client))
        assert srv.stats.requests == 1


def test_retries_exhausted_is_transient_not_a_reject():
    """A 5xx that outlasts the retries says nothing about the row: it stays pending."""
    with MockLLMServer(faults=FaultConfig(rate_5xx=1.0)) as srv:
        client = LLMClient(config(srv, max_retries=2))
        with pytest.raises(TransientError, match="gave up after 3 attempts"):
            run(ask(client))
        assert srv.stats.requests == 3


def test_bad_credentials_stop_the_job_without_leaking_the_key():
    with MockLLMServer(api_key="the-right-key") as srv:
        client = LLMClient(config(srv))
        with pytest.raises(FatalJobError) as err:
            run(ask(client))
        assert "HTTP 401" in str(err.value) and "RAYPIPE_TEST_LLM_KEY" in str(err.value)
        assert KEY not in str(err.value)
        assert srv.stats.requests == 1  # not retried


def test_endpoint_down_stops_the_job():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = LLMConfig(base_url=f"http://127.0.0.1:{port}/v1", api_key_env="RAYPIPE_TEST_LLM_KEY",
                    max_retries=2, backoff_base_s=0.01, endpoint_down_after_s=0.0)
    with pytest.raises(FatalJobError, match="never answered"):
        run(LLMClient(cfg).chat([{"role": "user", "content": "x"}]))


def test_cache_hit_across_clients_and_key_never_cached(tmp_path):
    with MockLLMServer() as srv:
        cfg = config(srv, cache_dir=str(tmp_path / "cache"))
        writer = LLMClient(cfg)

        async def ask_and_close():
            try:
                return await ask(writer)
            finally:
                await writer.close()  # writes the buffered answer (what the engine does)

        first = run(ask_and_close())
        again = LLMClient(cfg)
        second = run(ask(again))
        assert second.cached and second.text == first.text
        assert again.acct.requests == 0 and srv.stats.requests == 1
        run(ask(again, temperature=0.7))  # different sampling params: a different entry
        assert srv.stats.requests == 2
    for d, _, files in os.walk(tmp_path):
        for f in files:
            with open(os.path.join(d, f), "rb") as fh:  # the cache index is binary
                assert KEY.encode() not in fh.read()


def test_identical_requests_in_flight_are_sent_once():
    with MockLLMServer(latency_s=0.2) as srv:
        client = LLMClient(config(srv))

        async def both():
            return await asyncio.gather(ask(client), ask(client), ask(client, "other"))

        a, b, c = run(both())
        assert a.text == b.text and [a.cached, b.cached].count(True) == 1
        assert srv.stats.requests == 2


def test_concurrency_cap_is_the_number_in_flight():
    with MockLLMServer(latency_s=0.1) as srv:
        client = LLMClient(config(srv, concurrency=8))

        async def many():
            return await asyncio.gather(*(ask(client, f"q{i}") for i in range(40)))

        started = time.monotonic()
        run(many())
        took = time.monotonic() - started
        assert srv.stats.max_in_flight == 8
        assert 0.45 <= took < 2.0  # 5 waves of 0.1 s, not 40 sequential requests


def test_local_limiter_keeps_the_rate_and_avoids_429s():
    with MockLLMServer(rpm=1200, burst_s=1.0) as srv:  # 20 req/s, 20 of burst: 30 at once fail
        cfg = config(srv, requests_per_minute=1200)
        client = LLMClient(cfg, limiter=LocalLimiter(cfg.requests_per_minute, None))

        async def many():
            return await asyncio.gather(*(ask(client, f"q{i}") for i in range(30)))

        started = time.monotonic()
        run(many())
        took = time.monotonic() - started
        assert took >= 29 / 20 * 0.95
        assert srv.stats.status.get(429, 0) == 0


def test_429s_from_a_stricter_server_slow_everybody_down():
    with MockLLMServer(rpm=600, burst_s=0.5) as srv:  # 10 req/s; the client thinks 20
        cfg = config(srv, requests_per_minute=1200, max_retries=10, backoff_base_s=0.1)
        limiter = LocalLimiter(cfg.requests_per_minute, None)
        client = LLMClient(cfg, limiter=limiter)

        async def many():
            return await asyncio.gather(*(ask(client, f"q{i}") for i in range(20)))

        run(many())
        assert srv.stats.ok == 20
        assert limiter.schedule.throttled >= 1
        assert limiter.schedule.lowest_scale < 1.0  # adaptive back-off kicked in


def test_chat_json_reasks_with_the_error_and_bounds_attempts():
    good = json_responder(lambda body: {"reason": "ok"})
    with MockLLMServer(responder=reask_aware(lambda body: "not json", good)) as srv:
        client = LLMClient(config(srv, max_reasks=2))
        assert run(client.chat_json([{"role": "user", "content": "q"}])) == {"reason": "ok"}
        assert srv.stats.requests == 2
    with MockLLMServer(responder=lambda body: '{"reason": ""}') as srv:
        client = LLMClient(config(srv, max_reasks=2))

        def validate(obj):
            if not obj["reason"]:
                raise ValueError("reason is empty")

        with pytest.raises(RowError, match="validation error: reason is empty"):
            run(client.chat_json([{"role": "user", "content": "q"}], validate=validate))
        assert srv.stats.requests == 3  # first ask + 2 re-asks


def test_reask_feeds_the_error_back():
    seen = []

    def responder(body):
        seen.append(body["messages"])
        return "{}" if len(seen) > 1 else "oops"

    with MockLLMServer(responder=responder) as srv:
        run(LLMClient(config(srv)).chat_json([{"role": "user", "content": "q"}]))
    assert seen[1][1] == {"role": "assistant", "content": "oops"}
    assert "not valid JSON" in seen[1][2]["content"]


def test_client_refuses_to_be_pickled():
    import pickle

    with pytest.raises(TypeError, match="LLMConfig"):
        pickle.dumps(LLMClient(LLMConfig()))


def test_server_process_mode_and_stats_over_http():
    with MockLLMServer(process=True, latency_s=0.01) as srv:
        run(LLMClient(config(srv)).chat([{"role": "user", "content": "p"}]))
        stats = srv.stats
        assert stats.requests == 1 and stats.ok == 1 and json.dumps(stats.to_json())


def test_function_calling_answers_come_back_as_tool_calls_and_are_cached(tmp_path):
    """`tools=` reaches the endpoint, the answer's tool_calls come back in the OpenAI wire
    shape (string arguments), and a cache hit returns the same calls without a request."""
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    seen = []

    def responder(body):
        seen.append(body.get("tools"))
        return {"content": None, "tool_calls": [{"name": "get_weather", "arguments": {"city": "Taipei"}}]}

    with MockLLMServer(responder=responder) as srv:
        client = LLMClient(config(srv, cache_dir=str(tmp_path / "cache")))
        first = run(ask(client, "weather?", tools=tools))
        again = run(ask(client, "weather?", tools=tools))
        assert seen == [tools] and srv.stats.requests == 1
    for completion in (first, again):
        assert completion.finish_reason == "tool_calls" and completion.text == ""
        (call,) = completion.tool_calls
        assert call["type"] == "function" and call["id"]
        assert call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == {"city": "Taipei"}
    assert again.cached and not first.cached
    assert first.message() == {"role": "assistant", "content": None, "tool_calls": first.tool_calls}
