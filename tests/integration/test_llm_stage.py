"""run_llm_stage / run_llm_program in-process (no Ray): nothing lost, rejects with reasons,
resume after SIGKILL, max_error_rate, schema validation, dry run, secrets never written."""

import glob
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
import pytest

from raypipe.errors import FatalJobError
from raypipe.llm import LLMConfig, RowError, run_llm_program, run_llm_stage
from raypipe.mockllm.responders import fail_when
from raypipe.mockllm.server import FaultConfig, MockLLMServer

pytestmark = pytest.mark.integration

KEY = "sk-test-SECRET-77c1"
os.environ["RAYPIPE_TEST_STAGE_KEY"] = KEY

ROWS = [{"id": f"r{i:03d}", "q": f"question {i}"} for i in range(60)]


def config(srv, tmp_path, **kw) -> LLMConfig:
    base = dict(base_url=srv.base_url, model="mock", api_key_env="RAYPIPE_TEST_STAGE_KEY",
                timeout_s=2.0, backoff_base_s=0.01, max_retries=3, batch_size=16, concurrency=8,
                cache_dir=str(tmp_path / "cache"), progress_interval_s=0, max_reasks=1)
    base.update(kw)
    return LLMConfig(**base)


def build(row):
    return [{"role": "user", "content": row["q"]}]


def parse(row, text):
    number = int(row["q"].split()[-1])
    if number % 10 == 3:
        raise ValueError("answer does not mention the topic")  # parse error after re-asks
    if number % 10 == 4:
        raise RowError("validation error: off target")
    return {"id": row["id"], "answer": text}


def read_dir(path):
    """Committed rows of `out/data` or `out/rejects`, read through the commit records."""
    from raypipe.io.dataset import read_committed

    out, kind = path.rstrip("/").rsplit("/", 1)
    table = read_committed(out, kind)
    return table.to_pylist() if table is not None else []


def test_every_row_ends_in_output_or_rejects_with_its_reason(tmp_path):
    refuse = fail_when(lambda body: body["messages"][0]["content"].endswith(" 5"), 400)
    with MockLLMServer(responder=refuse, faults=FaultConfig(rate_5xx=0.1, seed=3)) as srv:
        out = str(tmp_path / "out")
        summary = run_llm_stage(ROWS, llm=config(srv, tmp_path), build_messages=build, parse=parse,
                                out_dir=out, stage="t", executor="local")
    data, rejects = read_dir(f"{out}/data"), read_dir(f"{out}/rejects")
    assert len(data) + len(rejects) == len(ROWS)
    assert {r["id"] for r in data} | {r["id"] for r in rejects} == {r["id"] for r in ROWS}
    kinds = {r["id"]: r["reason"].split(":")[0] for r in rejects}
    assert kinds == {"r003": "parse error", "r013": "parse error", "r023": "parse error",
                     "r033": "parse error", "r043": "parse error", "r053": "parse error",
                     **{f"r0{d}4": "validation error" for d in range(6)}, "r005": "http error"}
    assert all(r["stage"] == "t" and json.loads(r["raw"])["id"] == r["id"] for r in rejects)
    assert summary["rows_in"] == 60 == summary["completed"] + summary["rejected"]
    assert summary["reject_reasons"] == {"parse error": 6, "validation error": 6, "http error": 1}
    assert summary["pending"] == 0 and summary["duplicates"] == 0
    saved = json.load(open(f"{out}/summary.json"))
    assert saved["completed"] == summary["completed"]


def test_rerun_skips_done_rows_and_never_pays_twice(tmp_path):
    with MockLLMServer() as srv:
        cfg = config(srv, tmp_path)
        out = str(tmp_path / "out")
        run_llm_stage(ROWS[:30], llm=cfg, build_messages=build, parse=parse, out_dir=out, stage="t", executor="local")
        first = srv.stats.requests
        summary = run_llm_stage(ROWS, llm=cfg, build_messages=build, parse=parse, out_dir=out, stage="t", executor="local")
        assert summary["this_run"]["skipped"] == 30
        assert summary["completed"] + summary["rejected"] == 60
        # the 30 new rows cost one request each (+1 re-ask for each 'x3' row)
        assert srv.stats.requests - first == 30 + 3
        assert max(srv.stats.by_key.values()) == 1
    assert len(read_dir(f"{out}/data")) + len(read_dir(f"{out}/rejects")) == 60


CHILD = textwrap.dedent("""
    import sys
    from raypipe.llm import LLMConfig, run_llm_stage
    base_url, out, cache = sys.argv[1:4]
    rows = [{"id": f"r{i:04d}", "q": f"q {i}"} for i in range(400)]
    cfg = LLMConfig(base_url=base_url, model="mock", api_key_env="RAYPIPE_TEST_STAGE_KEY",
                    batch_size=10, concurrency=5, cache_dir=cache, progress_interval_s=0)
    run_llm_stage(rows, llm=cfg, build_messages=lambda r: [{"role": "user", "content": r["q"]}],
                  parse=lambda r, t: {"id": r["id"], "text": t}, out_dir=out, stage="k", executor="local")
""")


def test_sigkill_mid_run_then_rerun_gives_every_row_exactly_once(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    out, cache = str(tmp_path / "out"), str(tmp_path / "cache")
    with MockLLMServer(latency_s=0.02) as srv:
        proc = subprocess.Popen([sys.executable, str(script), srv.base_url, out, cache],
                                env={**os.environ}, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(glob.glob(f"{out}/_commits/*.json")) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done_before = len(glob.glob(f"{out}/_commits/*.json"))
        assert 8 <= done_before < 40, "the child must die mid-run"
        rows = [{"id": f"r{i:04d}", "q": f"q {i}"} for i in range(400)]
        cfg = LLMConfig(base_url=srv.base_url, model="mock", api_key_env="RAYPIPE_TEST_STAGE_KEY",
                        batch_size=10, concurrency=5, cache_dir=cache, progress_interval_s=0)
        summary = run_llm_stage(rows, llm=cfg, build_messages=lambda r: [{"role": "user", "content": r["q"]}],
                                parse=lambda r, t: {"id": r["id"], "text": t}, out_dir=out, stage="k",
                                executor="local")
        ids = [r["id"] for r in read_dir(f"{out}/data")]
        assert sorted(ids) == [r["id"] for r in rows]  # all there, none twice
        assert summary["completed"] == 400 and summary["pending"] == 0
        # Answers received before the kill come from the cache, which is flushed with every
        # commit (one segment per flush, not one object per answer): paid twice are at most the
        # answers of the uncommitted batch (10) and those in flight (5).
        assert srv.stats.ok <= 400 + 10 + 5
        assert max(srv.stats.ok_by_key.values()) <= 2
        # spend is counted on disk before a request goes out: a kill cannot hide requests
        assert summary["requests"] >= srv.stats.requests


def test_max_error_rate_stops_the_job_with_one_message(tmp_path):
    with MockLLMServer(responder=fail_when(lambda b: True, 422)) as srv:
        cfg = config(srv, tmp_path, min_rows_for_error_rate=16, max_error_rate=0.5)
        with pytest.raises(FatalJobError, match=r"rows rejected .* max_error_rate.*HTTP 422"):
            run_llm_stage(ROWS, llm=cfg, build_messages=build, parse=parse,
                          out_dir=str(tmp_path / "out"), stage="t", executor="local")


def test_outputs_that_do_not_fit_the_schema_are_rejected_not_dropped(tmp_path):
    schema = pa.schema([("id", pa.string()), ("n", pa.int64())])

    def parse_n(row, text):
        n = int(row["id"][1:])
        return {"id": row["id"], "n": "many" if n == 7 else n}

    with MockLLMServer() as srv:
        summary = run_llm_stage(ROWS[:20], llm=config(srv, tmp_path), build_messages=build, parse=parse_n,
                                out_dir=str(tmp_path / "out"), stage="t", output_schema=schema,
                                executor="local")
    rejects = read_dir(str(tmp_path / "out" / "rejects"))
    assert [r["id"] for r in rejects] == ["r007"] and rejects[0]["reason"].startswith("validation error")
    assert summary["completed"] == 19 and summary["rows_out"] == 19


def test_program_makes_several_calls_through_the_same_plumbing(tmp_path):
    async def program(row, client):
        first = await client.chat([{"role": "user", "content": row["q"]}])
        second = await client.chat([{"role": "user", "content": first.text}])
        return [{"id": row["id"], "turn": 1, "text": first.text},
                {"id": row["id"], "turn": 2, "text": second.text}]

    with MockLLMServer() as srv:
        summary = run_llm_program(ROWS[:10], llm=config(srv, tmp_path), program=program,
                                  out_dir=str(tmp_path / "out"), stage="p", executor="local")
        assert srv.stats.requests == 20
    assert summary["rows_out"] == 20 and summary["requests"] == 20
    assert read_dir(str(tmp_path / "out" / "data"))[1]["text"] == "echo: echo: question 0"


def test_dry_run_renders_and_projects_without_calling(tmp_path, capsys):
    with MockLLMServer() as srv:
        cfg = config(srv, tmp_path, model="gpt-4o-mini", max_tokens=100)
        report = run_llm_stage(ROWS, llm=cfg, build_messages=build, parse=parse,
                               out_dir=str(tmp_path / "out"), stage="t", dry_run=True)
        assert srv.stats.requests == 0
    assert report["requests"] == 60
    assert report["estimated_prompt_tokens"] == sum(len(r["q"]) // 4 for r in ROWS)
    assert report["projected_cost_usd"] == pytest.approx(
        (report["estimated_prompt_tokens"] * 0.15 + 6000 * 0.60) / 1e6)
    assert "nothing was sent" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out")


def test_api_key_never_in_outputs_cache_logs_or_errors(tmp_path, capsys):
    def leaky(body):  # an endpoint that echoes credentials back in an error
        raise __import__("raypipe.mockllm.server", fromlist=["x"]).ResponderError(400, f"bad key {KEY}")

    logs = []
    with MockLLMServer() as srv:
        run_llm_stage(ROWS[:10], llm=config(srv, tmp_path), build_messages=build, parse=parse,
                      out_dir=str(tmp_path / "ok"), stage="t", executor="local", log=logs.append)
    with MockLLMServer(responder=leaky) as srv:
        with pytest.raises(FatalJobError) as err:
            run_llm_stage(ROWS, llm=config(srv, tmp_path, min_rows_for_error_rate=1),
                          build_messages=build, parse=parse, out_dir=str(tmp_path / "bad"),
                          stage="t", executor="local", log=logs.append)
    captured = capsys.readouterr()
    texts = [str(err.value), captured.out, captured.err, *logs]
    for d, _, files in os.walk(tmp_path):
        for f in files:
            texts.append(open(os.path.join(d, f), "rb").read().decode("utf-8", "replace"))
    assert len(texts) > 10
    assert all(KEY not in t for t in texts)
    assert any("bad key ***" in t for t in texts)  # the reject kept the reason, scrubbed
