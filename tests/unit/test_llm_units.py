"""Pure parts of the LLM engine: rate schedule, config, JSON parsing (the cache: test_llm_cache.py)."""

import json

import pytest

from raypipe.config import ConfigError, load_config
from raypipe.llm import LLMConfig, parse_json_answer
from raypipe.llm.client import classify
from raypipe.llm.limiter import RateSchedule

pytestmark = pytest.mark.unit


def test_rate_schedule_spaces_requests_at_the_rate():
    s = RateSchedule(requests_per_minute=600, tokens_per_minute=None)
    waits = [s.reserve(10, now=100.0) for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_rate_schedule_tokens_and_usage_correction():
    s = RateSchedule(requests_per_minute=None, tokens_per_minute=6000)  # 100 tokens/s
    assert s.reserve(200, now=0.0) == 0.0
    assert s.reserve(200, now=0.0) == pytest.approx(2.0)  # the first 200 tokens drain first
    s.done(-300)  # usage: the two requests cost 300 tokens less than booked
    assert s.reserve(1, now=0.0) == pytest.approx(1.0)


def test_rate_schedule_throttle_pauses_and_slows_then_recovers():
    s = RateSchedule(requests_per_minute=600, tokens_per_minute=None)
    s.reserve(1, now=0.0)
    s.throttle(retry_after_s=2.0, now=0.0)
    assert s.reserve(1, now=0.0) == pytest.approx(2.0)
    assert s.scale == pytest.approx(0.9)
    gap = s.reserve(1, now=0.0) - 2.0
    assert gap == pytest.approx(1 / (10 * 0.9))
    s.throttle(retry_after_s=0.1, now=0.5)  # the same hiccup: paused again, not slowed again
    assert s.scale == pytest.approx(0.9)
    s.throttle(retry_after_s=0.1, now=2.5)
    assert s.scale == pytest.approx(0.81)
    for _ in range(100):
        s.done(0)
    assert s.scale == 1.0


def test_llm_config_embeds_in_step_configs_and_rejects_bad_values():
    cfg = load_config(LLMConfig, {"model": "gpt-4o-mini", "concurrency": 8, "prices": {"x": {"prompt": 1, "completion": 2}}})
    assert cfg.concurrency == 8 and cfg.prices["x"].completion == 2.0
    with pytest.raises(ConfigError) as err:
        load_config(LLMConfig, {"api_key": "sk-no", "concurrency": 0}, where="job: llm")
    text = str(err.value)
    assert "job: llm.api_key: unknown key" in text


def test_llm_config_rejects_bad_numbers_and_computes_cost():
    with pytest.raises(ValueError, match="concurrency"):
        LLMConfig(concurrency=0)
    cfg = LLMConfig(model="gpt-4o-mini")
    assert cfg.cost_usd(1_000_000, 1_000_000) == pytest.approx(0.75)


def test_api_key_comes_from_the_named_env_var_only(monkeypatch):
    from raypipe.errors import FatalJobError

    monkeypatch.delenv("RAYPIPE_UNIT_KEY", raising=False)
    cfg = LLMConfig(api_key_env="RAYPIPE_UNIT_KEY")
    with pytest.raises(FatalJobError, match="RAYPIPE_UNIT_KEY is not set"):
        cfg.api_key()
    monkeypatch.setenv("RAYPIPE_UNIT_KEY", "sk-123")
    assert cfg.api_key() == "sk-123"


@pytest.mark.parametrize(
    "text,expected",
    [('{"a": 1}', {"a": 1}), ('```json\n{"a": 1}\n```', {"a": 1}), ('Sure: {"a": [1]} done', {"a": [1]})],
)
def test_parse_json_answer(text, expected):
    assert parse_json_answer(text) == expected


def test_parse_json_answer_error_is_value_error():
    with pytest.raises(ValueError):
        parse_json_answer("no json here")


def test_classify_statuses():
    import httpx2 as httpx  # the HTTP library this openai build uses
    import openai

    def status_error(code, headers=None):
        req = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
        resp = httpx.Response(code, headers=headers or {}, request=req)
        return openai.APIStatusError("x", response=resp, body=None)

    assert classify(status_error(401))[0] == "fatal"
    assert classify(status_error(403))[0] == "fatal"
    assert classify(status_error(400))[0] == "client"
    assert classify(status_error(404))[0] == "client"
    assert classify(status_error(429, {"retry-after": "1.5"})) == ("retry", 429, 1.5)
    assert classify(status_error(408))[0] == "retry"
    assert classify(status_error(502))[0] == "retry"
    assert classify(json.JSONDecodeError("x", "d", 0))[0] == "retry"


def test_record_totals_and_the_progress_line():
    from raypipe.io.dataset import sum_records
    from raypipe.llm.executor import Progress

    records = [
        {"rows": 1, "rejected": 1, "settled": 2, "completed": 1, "reasons": {"parse error": 1}},
        {"rows": 2, "rejected": 0, "settled": 1, "completed": 1, "reasons": {}},
    ]
    totals = sum_records(records)
    assert (totals["completed"], totals["rejected"], totals["settled"], totals["rows"]) == (2, 1, 3, 3)
    assert totals["reasons"] == {"parse error": 1}
    lines = []
    progress = Progress("x", LLMConfig(progress_interval_s=0.0001), lines.append)
    progress.add({"rows": 2, "completed": 1, "rejected": 1, "requests": 3, "prompt_tokens": 10,
                  "completion_tokens": 5, "cost_usd": 0.5})
    import time

    time.sleep(0.001)
    progress.add({"rows": 1, "completed": 1, "requests": 1, "skipped": 1, "pending": 1})
    assert lines and "rows 3 done (1 rejected, 1 pending, 1 resumed)" in lines[-1] and "$0.5000" in lines[-1]
    assert "req/s" in lines[-1] and "tok/s" in lines[-1]


def test_the_error_rate_rule_is_job_wide_and_names_the_top_reasons():
    import json as _json

    from raypipe.errors import FatalJobError
    from raypipe.llm.executor import Progress

    progress = Progress("x", LLMConfig(progress_interval_s=0, min_rows_for_error_rate=10, max_error_rate=0.5), print)
    progress.add({"rows": 8, "completed": 5, "rejected": 3, "reasons": _json.dumps({"parse error": 3})})
    with pytest.raises(FatalJobError, match=r"8 of 14 rows rejected .*parse error x8.*last: http error: HTTP 422"):
        progress.add({"rows": 6, "completed": 1, "rejected": 5, "last_reason": "http error: HTTP 422",
                       "reasons": _json.dumps({"parse error": 5})})


def test_cli_bench_rejects_unknown_scenario(capsys):
    from raypipe.cli import main

    assert main(["bench", "synth", "--only", "nope"]) == 2
    assert "unknown scenario(s) ['nope']" in capsys.readouterr().err


def test_bench_runs_every_scenario_at_its_size_and_a_broken_one_keeps_the_others(monkeypatch):
    """`raypipe bench synth` hands each scenario its size (a local `scale` variable once hid the
    scale scenario: a 16-minute run died at the end and printed nothing), and a scenario that
    fails is reported as an error beside the others' figures."""
    import ray

    from raypipe.llm import bench

    calls = {}

    def stub(name, result):
        def run(*args, **kwargs):
            calls[name] = args
            if isinstance(result, Exception):
                raise result
            return result
        return run

    monkeypatch.setattr(ray, "init", lambda *a, **k: None)
    monkeypatch.setattr(ray, "shutdown", lambda *a, **k: None)
    monkeypatch.setattr(bench, "latency_bound", stub("latency_bound", RuntimeError("server died")))
    monkeypatch.setattr(bench, "scale", stub("scale", {"req_s_ratio_large_vs_small": 1.0,
                                                         "driver_rss_ratio_large_vs_small": 1.1,
                                                         "noop_rerun_share_of_first_run": 0.01}))
    out = bench.run_all(quick=True, only=("latency_bound", "scale"))
    assert calls["scale"][1:] == (2500, 25000)
    assert out["scale_req_s_ratio_100k_vs_10k"] == 1.0
    assert out["scenarios"]["latency_bound"] == {"error": "RuntimeError: server died"}
    assert out["latency_bound_ratio"] is None
