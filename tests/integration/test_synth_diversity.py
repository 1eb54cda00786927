"""Generative stages differ dialog by dialog: 200 ToolFlow dialogs over the 25-tool sample pool
are >= 95% distinct, and a re-run into a fresh folder reproduces every one from the cache.

The teacher is a pure function of the whole request (as a cache sees a model): identical
requests get identical answers. Without a per-dialog persona in the prompts and a per-dialog
seed in the request parameters, two dialogs that sample the same tools would send identical
requests and come out identical (and their content ids would collide)."""

import hashlib
import json
import os

import pytest

from raypipe.commands.synth_multiturn import ToolflowStepConfig
from raypipe.data import TOOLS_JSON
from raypipe.io.dataset import read_committed
from raypipe.schema import Sample
from raypipe.synth.multiturn_runs import run_toolflow
from raypipe.synth.toolflow import DialogConfig
from raypipe.synth.toolgraph import GraphConfig, build_tool_graph, save_graph
from raypipe.synth.toolpool import load_tool_pool
from raypipe.mockllm.server import MockLLMServer

pytestmark = pytest.mark.integration

KEY_ENV = "RAYPIPE_DIVERSITY_TEST_KEY"
os.environ[KEY_ENV] = "test-key"


SAMPLING = set()  # (temperature, has a seed) of every request the server saw


def teacher(body: dict) -> str:
    SAMPLING.add((body.get("temperature"), isinstance(body.get("seed"), int)))
    msgs = body["messages"]
    system, user = msgs[0]["content"], msgs[-1]["content"]
    variant = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8]
    if "dialog planner" in system:
        specs = json.JSONDecoder().raw_decode(user.split("FUNCTIONS:\n", 1)[1])[0]
        return json.dumps({"turns": [{"intent": f"use {specs[0]['name']} ({variant})", "tools": [specs[0]["name"]]},
                                     {"intent": "say thanks", "tools": []}]})
    if system.startswith("You play the user"):
        return f"Hello, about {user.rsplit('INTENT OF YOUR NEXT MESSAGE: ', 1)[1]} [{variant}]"
    if "helpful assistant that can call functions" in system:
        return json.dumps({"content": f"Happy to help [{variant}]."})
    raise AssertionError(f"unscripted request: {system[:60]}")


def test_two_hundred_dialogs_are_distinct_and_reproducible_from_the_cache(tmp_path):
    graph_dir = tmp_path / "graph"
    save_graph(build_tool_graph(load_tool_pool([str(TOOLS_JSON)]), GraphConfig()), graph_dir)
    with MockLLMServer(responder=teacher) as srv:
        llm = {"base_url": srv.base_url, "model": "scripted", "api_key_env": KEY_ENV,
               "cache_dir": str(tmp_path / "cache"), "concurrency": 32, "progress_interval_s": 0}

        def run(out: str):
            cfg = ToolflowStepConfig(graph=str(graph_dir), out=out, n=200, seed=7, llm=llm,
                                     dialog=DialogConfig(min_turns=2, max_turns=2), executor="local")
            summary = run_toolflow(cfg)
            assert summary["produced"] == 200
            return [Sample.from_row(r) for r in read_committed(f"{out}/dialogs").to_pylist()]

        first = run(str(tmp_path / "a"))
        requests = srv.stats.requests
        again = run(str(tmp_path / "b"))  # a fresh folder: only the cache is shared
        assert srv.stats.requests == requests  # every request answered from the cache
    texts = {json.dumps([m.content for m in s.messages]) for s in first}
    assert len(texts) / len(first) >= 0.95
    assert len({s.id for s in first}) == len(first)  # content ids: copies would collide
    assert sorted(s.id for s in again) == sorted(s.id for s in first)
    assert all(s.meta["persona"] and s.meta["dialog_id"].startswith("toolflow-7-") for s in first)
    assert SAMPLING == {(0.8, True)}  # generative default: sampled, with the dialog's seed
