"""ToolFlow and MAGNET end to end against the local OpenAI-compatible server (real HTTP, real
engine) with a scripted teacher; counts add up and a resumed run adds nothing. ToolFlow runs
on local Ray (Ray Data actors); to stay within the test budget its resume and the MAGNET stages
use the engine's in-process executor (same stage class, same store)."""

import json
import os
import re
from pathlib import Path

import pytest

from raypipe.schema import Sample, dpo_pair_schema
from raypipe.synth.magnet import PathConfig
from raypipe.commands.synth_multiturn import MagnetStepConfig, ToolflowStepConfig
from raypipe.io.dataset import read_committed
from raypipe.synth.multiturn_runs import read_outputs, run_magnet, run_magnet_graph, run_toolflow
from raypipe.synth.toolflow import DialogConfig
from raypipe.synth.toolgraph import GraphConfig, build_tool_graph, load_graph, save_graph
from raypipe.synth.toolpool import load_tool_pool
from raypipe.synth.trajectories import CORRUPTIONS
from raypipe.validate import validate_sample

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "multiturn_tools.json"
KEY_ENV = "RAYPIPE_MULTITURN_TEST_KEY"
os.environ[KEY_ENV] = "test-key"  # at collection, before any test starts Ray: workers inherit it


# -- the scripted teacher ------------------------------------------------------------------

def _functions(text: str) -> list[dict]:
    block = text.split("FUNCTIONS:\n", 1)[1]
    return json.JSONDecoder().raw_decode(block)[0]


def _value(name: str, schema: dict):
    if schema.get("enum"):
        return schema["enum"][0]
    t = schema.get("type")
    return {"integer": 3, "number": 12.5, "boolean": True, "array": []}.get(t, f"{name}-value")


def _args(spec: dict, drop: str | None = None) -> dict:
    props = spec.get("parameters", {}).get("properties", {})
    return {p: _value(p, s) for p, s in props.items() if p in spec["parameters"].get("required", []) and p != drop}


PLANNER_REQUESTS = [0]  # the server runs in a thread of this process: a plain counter works


def teacher(body: dict) -> str:
    msgs = body["messages"]
    system, user = msgs[0]["content"], msgs[1]["content"]
    repair = any("That action is invalid" in m["content"] for m in msgs)
    if "dialog planner" in system:
        PLANNER_REQUESTS[0] += 1
        names = [f["name"] for f in _functions(user)]
        return json.dumps({"turns": [{"intent": f"needs {n}", "tools": [n]} for n in names[:2]]
                           + [{"intent": "say thanks", "tools": []}]})
    if system.startswith("You play the user"):
        return "Hi, " + user.rsplit("INTENT OF YOUR NEXT MESSAGE: ", 1)[1]
    if "helpful assistant that can call functions" in system:  # ToolFlow assistant
        specs = {f["name"]: f for f in _functions(user)}
        convo = user.split("CONVERSATION SO FAR:\n", 1)[1]
        last_user = convo.rsplit("[USER] ", 1)[1]
        wanted = re.search(r"needs (\S+)", last_user)
        if "[ASSISTANT CALLS]" in last_user or not wanted or "answer the user now" in convo:
            return json.dumps({"content": "All done, here is what I found."})
        name = wanted.group(1)
        spec = specs[name]
        if name == "book_flight" or (name == "get_weather" and not repair):
            return json.dumps({"tool_calls": [{"name": name, "arguments": {}}]})  # misses required
        return json.dumps({"tool_calls": [{"name": name, "arguments": _args(spec)}]})
    if system.startswith("You simulate a software function"):
        return json.dumps({"result": {"status": "ok"}})
    if "back-translation" in system:
        return "User asks: " + user.rsplit("TASK: ", 1)[1][:80]
    if "forth-translation" in system:
        specs = {f["name"]: f for f in _functions(user)}
        need = user.rsplit("THIS STEP NEEDS: ", 1)[1]
        name = need.split("(", 1)[0]
        if "ask the user for it" in need:
            return json.dumps({"content": "Could you tell me the missing detail?"})
        if name == "solve_quadratic":
            return json.dumps({"tool_calls": [{"name": name, "arguments": {"a": "x"}}]})  # bad type
        return json.dumps({"tool_calls": [{"name": name, "arguments": _args(specs[name])}]})
    if "Answer the user briefly" in system:
        return "Here is the answer."
    if "label software functions" in system:
        spec = json.loads(user.split("FUNCTION:\n", 1)[1])
        return json.dumps({"domain": "math" if spec["name"] == "solve_quadratic" else "travel"})
    if "judge whether two functions" in system:
        return json.dumps({"related": "weather" not in user, "reason": "scripted"})
    if "rate a synthetic conversation" in system:
        return json.dumps({"naturalness": 4, "coherence": 5})
    raise AssertionError(f"unscripted request: {system[:80]}")


# -- fixtures ------------------------------------------------------------------------------

@pytest.fixture
def server():
    from raypipe.mockllm.server import MockLLMServer

    with MockLLMServer(responder=teacher) as srv:
        yield srv


@pytest.fixture(scope="module")
def tool_graph_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tool_graph")
    save_graph(build_tool_graph(load_tool_pool([FIXTURE]), GraphConfig(min_score=0.35, top_k=4)), out)
    return out


def _llm(srv, tmp_path):
    from raypipe.config import load_config
    from raypipe.llm import LLMConfig

    return load_config(LLMConfig, {
        "base_url": srv.base_url, "model": "scripted", "api_key_env": KEY_ENV,
        "cache_dir": str(tmp_path / "cache"), "concurrency": 8, "max_retries": 1,
    })


# -- ToolFlow ------------------------------------------------------------------------------

def test_toolflow_end_to_end_counts_repairs_rejects_and_resume(local_ray, server, tool_graph_dir, tmp_path):
    llm = _llm(server, tmp_path)
    out = tmp_path / "toolflow"
    summary = run_toolflow(ToolflowStepConfig(graph=str(tool_graph_dir), out=str(out), n=12, seed=3,
                                              dialog=DialogConfig(), llm=llm, judge=3, executor="ray"))
    assert summary["attempted"] == 12
    assert summary["produced"] + summary["rejected"] == 12
    assert summary["produced"] > 0 and summary["rejected"] > 0

    produced, rejects = read_outputs(out / "dialogs")
    for row in produced:
        s = Sample.from_row(row)
        assert validate_sample(s) == [], s.id
        assert s.source == "toolflow" and s.meta["plan"] and s.meta["subgraph"]["tools"]
        assert set(s.function_names()) == {t.split("~")[0] for t in s.meta["subgraph"]["tools"]}
        assert [m.role for m in s.messages].count("user") == len(s.meta["plan"])
        assert "book_flight" not in [c.name for c in s.tool_calls()]  # its calls are always invalid
    for r in rejects:
        assert "assistant turn invalid after one repair" in r["reason"]
        assert "required argument missing" in r["reason"]
    repaired = [Sample.from_row(r) for r in produced if "get_weather" in Sample.from_row(r).function_names()]
    assert any(t["repairs"] for s in repaired for t in s.meta["turns"])

    report = json.loads((out / "quality.json").read_text())
    assert report["counts_add_up"] and report["attempted"] == 12
    assert report["produced"] == summary["produced"] and report["rejected"] == summary["rejected"]
    assert report["judge_naturalness"]["mean"] == 4.0 and report["judged"] == 3
    assert report["turns_per_dialog"]["mean"] == 3.0
    assert report["distinct_tool_combinations"] >= 2
    assert (out / "quality.md").read_text().startswith("# ToolFlow quality report")

    before = server.stats.requests
    again = run_toolflow(ToolflowStepConfig(graph=str(tool_graph_dir), out=str(out), n=12, seed=3,
                                            dialog=DialogConfig(), llm=llm, judge=3, executor="local"))
    assert again["produced"] == summary["produced"] and again["rejected"] == summary["rejected"]
    produced2, _ = read_outputs(out / "dialogs")
    raw_ids = read_committed(str(out / "dialogs")).column("id").to_pylist()
    assert len(raw_ids) == len(set(raw_ids)) == summary["produced"]  # no duplicates on disk
    assert server.stats.requests == before  # nothing paid for twice


# -- MAGNET --------------------------------------------------------------------------------

def test_magnet_graph_then_trajectories_and_pairs(server, tool_graph_dir, tmp_path):
    llm = _llm(server, tmp_path)
    g = run_magnet_graph(str(tool_graph_dir), str(tmp_path / "fg"), candidates=3, seed=0, domains=None,
                         llm=llm, executor="local")
    assert g["labelled"] == g["functions"] == 10 and g["approved_edges"] > 0
    graph = load_graph(tmp_path / "fg" / "graph")
    assert graph.labels["solve_quadratic"] == "math"
    magnet_edges = [e for e in graph.edges if e["kind"] == "magnet"]
    assert magnet_edges and all("weather" not in e["src"] + e["dst"] for e in magnet_edges)
    assert all(graph.labels[e["src"]] == graph.labels[e["dst"]] for e in magnet_edges)

    out = tmp_path / "magnet"
    cfg = PathConfig(min_length=2, max_length=3)
    summary = run_magnet(MagnetStepConfig(graph=str(tmp_path / "fg" / "graph"), out=str(out), n=12, seed=1,
                                          path=cfg, llm=llm, corruptions=list(CORRUPTIONS), pairs_per_sample=4,
                                          executor="local"))
    assert summary["produced"] + summary["rejected"] == summary["attempted"] == 12
    assert summary["produced"] > 0 and summary["pairs"] > 0

    produced, _ = read_outputs(out / "trajectories")
    ops = set()
    for row in produced:
        s = Sample.from_row(row)
        assert validate_sample(s) == [], s.id
        ops |= {t["op"] for t in s.meta["fsp"]}
        for a in s.meta["actions"]:
            m = s.messages[a["message"]]
            assert m.role == "assistant"
            assert bool(m.tool_calls) == (a["kind"] == "call")
    assert "ask" in ops  # the split operation made the assistant ask

    pairs = read_committed(str(out / "pairs")).cast(dpo_pair_schema()).to_pylist()
    assert len(pairs) == summary["pairs"] and len({p["id"] for p in pairs}) == len(pairs)
    for p in pairs:
        chosen, rejected = Sample.from_row(p["chosen"]), Sample.from_row(p["rejected"])
        assert rejected.messages[: p["turn"]] == chosen.messages[: p["turn"]]
        assert rejected.messages[p["turn"]] != chosen.messages[p["turn"]]
        assert validate_sample(rejected) == []
    assert {p["corruption"] for p in pairs} >= {"guess_missing_argument", "wrong_argument_value"}
    report = json.loads((out / "quality.json").read_text())
    assert report["counts_add_up"] and sum(report["pairs"].values()) == len(pairs)

    before = server.stats.requests
    again = run_magnet(MagnetStepConfig(graph=str(tmp_path / "fg" / "graph"), out=str(out), n=12, seed=1,
                                        path=cfg, llm=llm, corruptions=list(CORRUPTIONS), pairs_per_sample=4,
                                        executor="local"))
    assert again["pairs"] == summary["pairs"] and again["produced"] == summary["produced"]
    assert read_committed(str(out / "pairs")).num_rows == len(pairs)
    assert server.stats.requests == before


# -- the CLI -------------------------------------------------------------------------------

def test_cli_graph_build_magnet_graph_and_both_synth_commands(server, tmp_path, capsys):
    from raypipe.cli import main

    llm = ["--base-url", server.base_url, "--model", "scripted", "--api-key-env", KEY_ENV,
           "--executor", "local"]
    assert main(["graph", "build", "--tools", str(FIXTURE), "--out", str(tmp_path / "tg"),
                 "--min-score", "0.35"]) == 0
    assert main(["synth", "toolflow", "--graph", str(tmp_path / "tg"), "--out", str(tmp_path / "tf"),
                 "--n", "3", "--relatedness", "1.0", *llm]) == 0
    assert main(["graph", "magnet", "--tool-graph", str(tmp_path / "tg"), "--out", str(tmp_path / "fg"),
                 "--domains", "travel", "math", *llm]) == 0
    assert main(["synth", "magnet", "--graph", str(tmp_path / "fg" / "graph"), "--out", str(tmp_path / "mg"),
                 "--n", "3", *llm]) == 0
    planner_calls, requests = PLANNER_REQUESTS[0], server.stats.requests
    assert main(["synth", "toolflow", "--graph", str(tmp_path / "tg"), "--out", str(tmp_path / "tf2"),
                 "--n", "3", "--no-plan", "--seed", "9", *llm]) == 0
    capsys.readouterr()
    for run in ("tf", "mg", "tf2"):
        report = json.loads((tmp_path / run / "quality.json").read_text())
        assert report["attempted"] == 3 and report["counts_add_up"]
    unplanned, _ = read_outputs(tmp_path / "tf2" / "dialogs")
    assert unplanned and all(Sample.from_row(r).meta["plan"] is None for r in unplanned)
    assert PLANNER_REQUESTS[0] == planner_calls and server.stats.requests > requests
    assert main(["synth", "toolflow", "--graph", str(tmp_path / "nope"), "--out", str(tmp_path / "x"),
                 "--n", "1", *llm]) == 2
    assert "not a tool graph" in capsys.readouterr().err


def test_job_file_chains_graph_magnet_and_toolflow_steps(local_ray, server, tmp_path):
    import yaml

    from raypipe.jobs import run_job

    llm = {"base_url": server.base_url, "model": "scripted", "api_key_env": KEY_ENV}
    job = {
        "name": "multiturn-test",
        "steps": [
            {"toolpool_graph": {"tools": [str(FIXTURE)], "out": str(tmp_path / "tg"),
                                "graph": {"min_score": 0.35, "top_k": 4}}},
            {"toolflow_synth": {"graph": str(tmp_path / "tg"), "out": str(tmp_path / "tf"), "n": 2,
                                "dialog": {"sampling": {"relatedness": 1.0}}, "llm": llm, "executor": "local"}},
            {"magnet_graph": {"tool_graph": str(tmp_path / "tg"), "out": str(tmp_path / "fg"),
                              "llm": llm, "executor": "local"}},
            {"magnet_synth": {"graph": str(tmp_path / "fg" / "graph"), "out": str(tmp_path / "mg"), "n": 2,
                              "path": {"ops": {"p_split": 1.0}}, "corruptions": ["guess_missing_argument"],
                              "pairs_per_sample": 1, "llm": llm, "executor": "local"}},
        ],
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    ctx = run_job(path)
    results = list(ctx.results.values())
    assert results[0]["nodes"] == 10 and (tmp_path / "tg" / "graph.png").exists()
    assert results[1]["produced"] + results[1]["rejected"] == 2
    assert results[2]["labelled"] == 10
    assert results[3]["produced"] == 2 and results[3]["pairs"] == 2  # every path asks once
