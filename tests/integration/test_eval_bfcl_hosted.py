"""`raypipe eval bfcl --backend openai`: a hosted model answers V4 single-turn BFCL through
raypipe's LLM engine, offline, against raypipe's test server (real HTTP, the real openai client).

FC mode: the server answers with OpenAI tool_calls; the result files are BFCL's FC-mode form and
`raypipe score bfcl --decoder openai --underscore-to-dot` re-scores them to the same numbers.
Prompt mode: the server answers with pythonic text. Both resume, and no output holds the key."""

import json
import os
from pathlib import Path

import pytest

from raypipe.eval.bfcl_data import load_bfcl, reference_calls
from raypipe.eval.bfcl_tools import openai_name
from raypipe.templates.pythonic import format_calls
from raypipe.mockllm.responders import last_user_message, tool_call_responder
from raypipe.mockllm.server import MockLLMServer

pytestmark = pytest.mark.integration

V4 = Path(__file__).resolve().parents[1] / "data" / "bfcl" / "v4"
KEY = "sk-bfcl-test-0123456789abcdef"
os.environ["BFCL_TEST_KEY"] = KEY  # module level: the session's Ray workers, started later, inherit it
WRONG = "live_simple_0-0-0"  # answered with a wrong temperature


def items_by_question():
    return {last_user_message({"messages": it.question}): it for it in load_bfcl(V4, "en")}


def fc_answer(seen):
    by_question = items_by_question()

    def answer(body):
        seen.append(body)
        item = by_question[last_user_message(body)]
        if item.kind == "irrelevance":
            return "None of these tools can answer that."
        if item.kind == "relevance":
            return [(body["tools"][0]["function"]["name"], {})]
        calls = [(openai_name(name), args) for name, args in reference_calls(item)]
        if item.id == WRONG:
            calls = [(calls[0][0], {**calls[0][1], "celsius": 30.0})]
        return calls

    return tool_call_responder(answer)


def test_fc_mode_end_to_end_with_resume_rescore_and_manifest(local_ray, tmp_path):
    from raypipe.cli import main

    seen = []
    out = tmp_path / "run"
    with MockLLMServer(responder=fc_answer(seen)) as srv:
        args = ["eval", "bfcl", "--data", str(V4), "--backend", "openai", "--base-url", srv.base_url,
                "--api-key-env", "BFCL_TEST_KEY", "--model", "hosted-test", "--out", str(out),
                "--cache-dir", str(tmp_path / "cache")]
        assert main(args) == 0
        requests = srv.stats.requests
        assert requests == 22  # 11 categories x 2 items
        assert main(args) == 0  # resumed: every item is done, nothing is asked again
        assert srv.stats.requests == requests

    tools = seen[0]["tools"]
    assert all("." not in t["function"]["name"] for b in seen for t in b["tools"])
    assert all(t["function"]["parameters"]["type"] == "object" for t in tools)
    report = json.loads((out / "REPORT.json").read_text())
    assert report["version"] == "v4" and report["decoder"] == "openai" and report["underscore_to_dot"] is True
    accuracy = {c: e["accuracy"] for c, e in report["categories"].items()}
    assert len(accuracy) == 11 and accuracy.pop("live_simple") == 0.5 and set(accuracy.values()) == {1.0}
    assert report["upstream"]["live_ast"]["accuracy"] == pytest.approx(7 / 8)
    results = sorted(p.name for p in (out / "results").iterdir())
    assert results[0] == "BFCL_v4_irrelevance_result.json" and len(results) == 11
    line = json.loads((out / "results" / "BFCL_v4_parallel_result.json").read_text().splitlines()[0])
    assert all(isinstance(v, str) for call in line["result"] for v in call.values())  # {name: "<JSON>"}

    rescored = tmp_path / "rescored" / "REPORT.json"
    assert main(["score", "bfcl", "--data", str(V4), "--results", str(out / "results"), "--decoder", "openai",
                 "--underscore-to-dot", "--out", str(rescored)]) == 0
    again = json.loads(rescored.read_text())
    assert {c: e["correct"] for c, e in again["categories"].items()} == {
        c: e["correct"] for c, e in report["categories"].items()}

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "eval_bfcl" and manifest["model"] == "hosted-test"
    assert manifest["endpoint"] == srv.base_url and manifest["api_key_env"] == "BFCL_TEST_KEY"
    assert manifest["template"]["mode"] == "fc" and manifest["scorer"]["rules"] == {"v4": "upstream"}
    assert any(d["path"].endswith("BFCL_v4_live_relevance.json") for d in manifest["datasets"])
    for path in [*out.rglob("*"), *(tmp_path / "cache").rglob("*")]:
        if path.is_file():
            assert KEY[-12:] not in path.read_bytes().decode("utf-8", "replace"), path


def test_prompt_mode_sends_the_functions_in_the_system_prompt(tmp_path):
    from raypipe.infer.bfcl import EvalBfclConfig, run_eval_bfcl
    from raypipe.infer.hosted import HostedConfig

    by_question = items_by_question()
    systems = []

    def respond(body):
        assert "tools" not in body
        systems.append(body["messages"][0])
        item = by_question[last_user_message(body)]
        if item.kind == "irrelevance":
            return "I cannot answer that with these functions."
        if item.kind == "relevance":
            return f"[{item.functions[0]['name']}()]"
        return format_calls(reference_calls(item))  # dotted names, as the prompt lists them

    template = tmp_path / "prompt.txt"
    template.write_text("Call functions as [f(a=1)]. Functions:\n{functions}\n", encoding="utf-8")
    with MockLLMServer(responder=respond) as srv:
        hosted = HostedConfig(llm={"model": "hosted-test", "base_url": srv.base_url, "api_key_env": "BFCL_TEST_KEY",
                                   "progress_interval_s": 0},
                              mode="prompt", system_prompt_file=str(template))
        cfg = EvalBfclConfig(data=str(V4), out=str(tmp_path / "run"), hosted=hosted,
                             categories=["simple_python", "live_parallel", "irrelevance", "live_relevance"])
        summary = run_eval_bfcl(cfg, log=lambda *_: None)
    assert summary["items"] == 8 and summary["generated"] == 8 and summary["overall"] == 1.0
    assert all(m["role"] == "system" and m["content"].startswith("Call functions as") for m in systems)
    assert any('"name": "smart_home.set_thermostat"' in m["content"] for m in systems)
    report = json.loads((tmp_path / "run" / "REPORT.json").read_text())
    assert report["decoder"] == "pythonic" and report["underscore_to_dot"] is False
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    import hashlib

    assert manifest["system_prompt_sha256"] == hashlib.sha256(template.read_bytes()).hexdigest()


def test_hosted_config_errors_are_one_line(tmp_path, monkeypatch, capsys):
    from raypipe.cli import main

    monkeypatch.delenv("BFCL_NO_KEY", raising=False)
    assert main(["eval", "bfcl", "--data", str(V4), "--backend", "openai", "--out", str(tmp_path / "x")]) == 2
    assert "--model is required" in capsys.readouterr().err
    assert main(["eval", "bfcl", "--data", str(V4), "--backend", "openai", "--model", "m", "--mode", "fc",
                 "--system-prompt-file", "p.txt", "--out", str(tmp_path / "x")]) == 2
    assert "prompt mode only" in capsys.readouterr().err
