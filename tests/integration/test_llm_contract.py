"""The engine's promises on one machine: duplicates, nothing silently dropped, rejects retried on
demand, one writer per output, an output that is an input refused, an endpoint that never
answered stopping the job with one line, big JSON Lines inputs read in parallel ranges."""

import json
import os
import socket
import threading

import pytest

from raypipe.cli import main
from raypipe.errors import RaypipeError
from raypipe.io.dataset import read_committed
from raypipe.llm import LLMConfig, run_llm_program, run_llm_stage
from raypipe.llm.errors import RowError
from raypipe.mockllm.server import MockLLMServer

pytestmark = pytest.mark.integration

KEY_ENV = "RAYPIPE_CONTRACT_TEST_KEY"
os.environ[KEY_ENV] = "sk-contract-test-0123456789"


def config(srv, tmp_path, **kw) -> LLMConfig:
    base = dict(base_url=srv.base_url, model="mock", api_key_env=KEY_ENV, concurrency=8, batch_size=8,
                cache_dir=str(tmp_path / "cache"), progress_interval_s=0, max_error_rate=1.0)
    return LLMConfig(**{**base, **kw})


def echo(row, text):
    return {"id": row["id"], "answer": text}


def ask(row):
    return [{"role": "user", "content": row["q"]}]


def test_duplicate_ids_are_taken_once_and_the_copies_rejected(tmp_path):
    rows = [{"id": f"r{i}", "q": f"q{i}"} for i in range(5)] + [{"id": "r1", "q": "q1"}, {"id": "r3", "q": "q3"}]
    with MockLLMServer() as srv:
        summary = run_llm_stage(rows, llm=config(srv, tmp_path), build_messages=ask, parse=echo,
                                out_dir=str(tmp_path / "out"), stage="t", executor="local")
        again = run_llm_stage(rows, llm=config(srv, tmp_path), build_messages=ask, parse=echo,
                              out_dir=str(tmp_path / "out"), stage="t", executor="local")
        assert srv.stats.requests == 5  # each id asked once, and the re-run asks nothing
    for s in (summary, again):
        assert (s["rows_in"], s["completed"], s["rejected"], s["duplicates"], s["pending"]) == (7, 5, 2, 2, 0)
    rejects = read_committed(str(tmp_path / "out"), "rejects").to_pylist()
    assert sorted(r["id"] for r in rejects) == ["r1", "r3"]
    assert all(r["reason"].startswith("duplicate id") for r in rejects)
    assert sorted(read_committed(str(tmp_path / "out")).column("id").to_pylist()) == [f"r{i}" for i in range(5)]


def test_a_program_that_returns_nothing_rejects_its_row_with_a_reason(tmp_path):
    async def program(row, client):
        return [] if row["id"] == "r1" else {"id": row["id"]}

    rows = [{"id": f"r{i}"} for i in range(3)]
    with MockLLMServer() as srv:
        s = run_llm_program(rows, llm=config(srv, tmp_path), program=program, out_dir=str(tmp_path / "o"),
                            stage="t", executor="local")
    assert (s["completed"], s["rejected"]) == (2, 1)
    (reject,) = read_committed(str(tmp_path / "o"), "rejects").to_pylist()
    assert reject["id"] == "r1" and reject["reason"].startswith("no output")


def test_retry_rejects_tries_rejected_rows_again_and_they_move_to_the_output(tmp_path):
    good = {"mode": False}

    def parse(row, text):
        if row["id"] == "r2" and not good["mode"]:
            raise RowError("validation error: not yet")
        return echo(row, text)

    rows = [{"id": f"r{i}", "q": f"q{i}"} for i in range(4)]
    out = str(tmp_path / "out")
    with MockLLMServer() as srv:
        first = run_llm_stage(rows, llm=config(srv, tmp_path), build_messages=ask, parse=parse, out_dir=out,
                              stage="t", executor="local")
        assert (first["completed"], first["rejected"]) == (3, 1)
        plain = run_llm_stage(rows, llm=config(srv, tmp_path), build_messages=ask, parse=parse, out_dir=out,
                              stage="t", executor="local")
        assert plain["rejected"] == 1  # without --retry-rejects a reject stays settled
        good["mode"] = True
        again = run_llm_stage(rows, llm=config(srv, tmp_path), build_messages=ask, parse=parse, out_dir=out,
                              stage="t", executor="local", retry_rejects=True)
    assert (again["completed"], again["rejected"], again["pending"]) == (4, 0, 0)
    assert read_committed(out, "rejects") is None
    assert sorted(read_committed(out).column("id").to_pylist()) == [f"r{i}" for i in range(4)]


def test_two_runs_on_one_output_the_second_is_refused_while_the_first_writes(tmp_path):
    started, release = threading.Event(), threading.Event()

    def parse(row, text):
        started.set()
        release.wait(30)
        return echo(row, text)

    rows = [{"id": f"r{i}", "q": f"q{i}"} for i in range(3)]
    out = str(tmp_path / "out")
    with MockLLMServer() as srv:
        first = threading.Thread(target=run_llm_stage, args=(rows,), kwargs=dict(
            llm=config(srv, tmp_path), build_messages=ask, parse=parse, out_dir=out, stage="t",
            executor="local"))
        first.start()
        assert started.wait(30)
        try:
            with pytest.raises(RaypipeError, match="another run is writing this folder"):
                run_llm_stage(rows, llm=config(srv, tmp_path), build_messages=ask, parse=echo, out_dir=out,
                              stage="t", executor="local")
        finally:
            release.set()
            first.join()
        assert srv.stats.requests == 3  # the refused run sent nothing
    assert sorted(read_committed(out).column("id").to_pylist()) == ["r0", "r1", "r2"]


def test_a_stage_whose_output_is_its_input_is_refused_and_the_input_kept(tmp_path, capsys):
    from raypipe.data import SAMPLES_JSONL
    from raypipe.io import iter_samples

    ds = str(tmp_path / "ds")
    assert main(["convert", str(SAMPLES_JSONL), "--from", "canonical", "--out", ds]) == 0
    before = len(list(iter_samples(ds)))
    capsys.readouterr()
    assert main(["synth", "reasoning", ds, "--out", ds, "--api-key-env", KEY_ENV]) == 2
    assert main(["convert", ds, "--from", "canonical", "--out", ds]) == 2
    err = capsys.readouterr().err
    assert err.count("raypipe: error:") == 2 and "the output is one of the inputs" in err
    assert len(list(iter_samples(ds))) == before


def test_an_endpoint_that_never_answered_stops_the_job_with_exit_2(tmp_path, capsys):
    from raypipe.data import SAMPLES_JSONL

    with socket.socket() as s:  # a closed port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(["synth", "reasoning", str(SAMPLES_JSONL), "--out", str(tmp_path / "o"),
                 "--base-url", f"http://127.0.0.1:{port}/v1", "--api-key-env", KEY_ENV,
                 "--max-retries", "1", "--num-actors", "1"])
    err = capsys.readouterr().err
    # the stop rule fires at endpoint_down_after_s (60 s) at the latest; rows are never rejected
    assert code == 2 and "never answered" in err and err.count("raypipe: error:") == 1
    assert read_committed(str(tmp_path / "o"), "rejects") is None


def test_big_json_lines_inputs_are_read_in_ranges_with_their_line_numbers(local_ray, tmp_path, monkeypatch):
    from raypipe.data import SAMPLES_JSONL
    from raypipe.io import readers

    lines = SAMPLES_JSONL.read_text(encoding="utf-8").splitlines()
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(readers, "RANGE_BYTES", 4096)  # many ranges from a small file
    units = readers.line_ranges([str(path)])
    assert len(units) > 5
    ids = sorted(r["id"] for r in readers.read_samples([str(path)]).take_all())
    assert ids == sorted(json.loads(l).get("id") or readers.Sample.from_dict(json.loads(l)).id for l in lines)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(lines[:30] + ["{not json"] + lines[30:]) + "\n", encoding="utf-8")
    with pytest.raises(Exception, match=r"broken.jsonl:31:"):
        readers.read_samples([str(broken)]).take_all()
