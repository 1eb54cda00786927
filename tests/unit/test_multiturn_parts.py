"""Pure pieces of the LLM-driven parts: inputs, prompts' task texts, turn checks, candidate
pairs, the function graph and the quality report."""

import json
from pathlib import Path

import pytest

from raypipe.schema import Message, Sample, ToolCall
from raypipe.synth.agents import action_to_message, transcript, turn_problems
from raypipe.synth.fsp_ops import FspTurn
from raypipe.synth.magnet import PathConfig, make_inputs as magnet_inputs, signature_text, task_text
from raypipe.synth.magnet_graph import candidate_pairs, function_graph, normalise_label
from raypipe.synth.quality import quality_report, report_markdown
from raypipe.synth.toolflow import DialogConfig, make_inputs as toolflow_inputs
from raypipe.synth.toolgraph import GraphConfig, build_tool_graph
from raypipe.synth.toolpool import load_tool_pool

pytestmark = pytest.mark.unit

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "multiturn_tools.json"


@pytest.fixture(scope="module")
def graph():
    return build_tool_graph(load_tool_pool([FIXTURE]), GraphConfig(min_score=0.35, top_k=4))


@pytest.fixture(scope="module")
def fgraph(graph):
    labels = {n: ("math" if n == "solve_quadratic" else "travel") for n in graph.node_ids}
    pairs = candidate_pairs(graph, labels, 3, seed=0)
    judged = [{"id": p["id"], "a": p["a"], "b": p["b"], "approved": True, "reason": ""} for p in pairs]
    return function_graph(graph, labels, judged)


def test_toolflow_inputs_are_deterministic_and_carry_the_subgraph(graph):
    cfg = DialogConfig()
    rows = toolflow_inputs(graph, 5, 11, cfg)
    assert rows == toolflow_inputs(graph, 5, 11, cfg)
    assert [r["id"] for r in rows] == [f"toolflow-11-{i:08d}" for i in range(5)]
    for r in rows:
        sub = json.loads(r["subgraph"])
        names = [graph.spec(t)["name"] for t in sub["tools"]]
        assert 2 <= len(names) == len(set(names)) <= 4 and sub["edges"]
    assert toolflow_inputs(graph, 2, 11, cfg, start=3) == rows[3:5]  # chunks agree


def test_unplanned_turns_are_seeded_free_requests():
    from raypipe.synth.toolflow import unplanned_turns

    cfg = DialogConfig(min_turns=2, max_turns=5, plan=False)
    turns = unplanned_turns("toolflow-0-00000001", ["get_weather", "navigate"], cfg)
    assert turns == unplanned_turns("toolflow-0-00000001", ["get_weather", "navigate"], cfg)
    assert 2 <= len(turns) <= 5 and all(t["tools"] == [] for t in turns)
    assert "get_weather, navigate" in turns[0]["intent"]
    lengths = {len(unplanned_turns(f"id{i}", ["f"], cfg)) for i in range(40)}
    assert lengths == {2, 3, 4, 5}


def test_candidate_pairs_share_a_label_and_are_seeded(graph):
    labels = {n: ("math" if n == "solve_quadratic" else "travel") for n in graph.node_ids}
    pairs = candidate_pairs(graph, labels, 2, seed=0)
    assert pairs == candidate_pairs(graph, labels, 2, seed=0)
    assert all(labels[p["a"]] == labels[p["b"]] and p["a"] < p["b"] for p in pairs)
    assert not any("solve_quadratic" in (p["a"], p["b"]) for p in pairs)  # alone in its label
    assert {("get_weather", "get_weather~2")} & {(p["a"], p["b"]) for p in pairs} == set()
    assert normalise_label(" Travel & Maps ") == "travel maps"


def test_function_graph_keeps_approved_pairs_and_return_edges(graph, fgraph):
    kinds = {e["kind"] for e in fgraph.edges}
    assert kinds == {"magnet", "return_param"}
    assert fgraph.feeders("get_flight_by_airport")[0][0] == "get_airport_symbol_by_city"
    none = function_graph(graph, {}, [{"id": "a||b", "a": "a", "b": "b", "approved": False}])
    assert not [e for e in none.edges if e["kind"] == "magnet"] and none.meta["approved"] == 0


def test_magnet_inputs_walk_magnet_edges_and_add_distractors(fgraph):
    rows = magnet_inputs(fgraph, 20, 0, PathConfig(min_length=2, max_length=3, distractors=2))
    assert rows == magnet_inputs(fgraph, 20, 0, PathConfig(min_length=2, max_length=3, distractors=2))
    for r in rows:
        fsp = [FspTurn.from_dict(d) for d in json.loads(r["fsp"])]
        tools = json.loads(r["tools"])
        fns = [fgraph.spec(t)["name"] for t in tools]
        used = {c for t in fsp for c in t.calls}
        assert tools[: len(used)] == sorted(used, key=tools.index)
        assert len(fns) == len(set(fns)) == len(used) + 2


def test_task_text_follows_the_node_operation(graph):
    specs = {graph.spec(n)["name"]: graph.spec(n) for n in graph.node_ids if "~" not in n}
    names = {n: graph.spec(n)["name"] for n in graph.node_ids}
    ask = task_text(FspTurn((), "ask", ("get_distance", "from_loc")), specs, names)
    assert "get_distance(?, to_loc: string)" in ask and "does NOT" in ask
    merged_ask = task_text(FspTurn((), "ask", ("get_distance", "from_loc")), specs, names,
                           follow=FspTurn(("get_weather", "get_distance"), "answer", ("get_distance", "from_loc")))
    assert "two things" in merged_ask and "get_weather(" in merged_ask and "get_distance(?," in merged_ask
    ins = task_text(FspTurn(("get_airport_symbol_by_city", "get_flight_by_airport"), "insert",
                            feeds="name->airport_symbol"), specs, names)
    assert "airport_symbol" in ins and "Do not mention" in ins
    merge = task_text(FspTurn(("get_distance", "set_navigation"), "merge"), specs, names)
    assert "get_distance(" in merge and "set_navigation(" in merge
    assert signature_text(specs["get_distance"], "to_loc").startswith("get_distance(from_loc: string, ?)")


def test_action_to_message_and_turn_problems(graph):
    fns = [graph.spec("get_distance")]
    history = [Message("user", "how far?")]
    msg = action_to_message({"tool_calls": [{"name": "get_distance", "arguments": {"from_loc": "A"}}]}, "t0")
    assert msg.tool_calls[0].id == "t0_0"
    assert turn_problems(fns, history, msg) == ["messages[1].tool_calls[0].arguments.to_loc: required argument missing"]
    bad = action_to_message({"tool_calls": [{"name": "nope", "arguments": "x=1"}]}, "t0")
    assert any("undeclared function" in p for p in turn_problems(fns, history, bad))
    empty = action_to_message({"content": ""}, "t0")
    assert turn_problems(fns, history, empty) == ["messages[1]: assistant turn has neither calls nor text"]
    ok = action_to_message({"content": "Where from?"}, "t0")
    assert turn_problems(fns, history, ok) == []
    assert turn_problems(fns, history, ok, lambda m: ["must call"]) == ["must call"]
    assert "[ASSISTANT] Where from?" in transcript([*history, ok])


def test_quality_report_measures_and_counts():
    def dialog(first, calls):
        msgs = [Message("user", first)]
        for i, name in enumerate(calls):
            msgs += [Message("assistant", tool_calls=[ToolCall(name, {}, f"c{i}")]),
                     Message("tool", "{}", name=name, tool_call_id=f"c{i}"), Message("user", "and?")]
        msgs.append(Message("assistant", "done"))
        return Sample(functions=[{"name": n} for n in set(calls)], messages=msgs,
                      meta={"turns": [{"planned": calls, "called": calls, "repairs": 1}]})

    samples = [dialog("Hi", ["a", "b"]), dialog("hi ", ["b", "a"]), dialog("Hello", ["c"])]
    rejects = [{"id": "x", "reason": "turn 1 step 0: assistant turn invalid after one repair: 'f'"},
               {"id": "y", "reason": "turn 2 step 1: assistant turn invalid after one repair: 'g'"}]
    r = quality_report(samples, rejects, attempted=5, judge_scores=[{"naturalness": 3, "coherence": 5}])
    assert r["counts_add_up"] and r["rejected_share"] == 0.4
    assert r["reject_reasons"] == {"turn N step N: assistant turn invalid after one repair: '…'": 2}
    assert r["distinct_tool_combinations"] == 2 and r["distinct_first_user_turns"] == 2
    assert r["tools_per_dialog"] == {"mean": 1.667, "min": 1, "max": 2}
    assert r["turns_per_dialog"]["max"] == 3 and r["plan_followed_share"] == 1.0 and r["repairs"] == 3
    assert r["judge_coherence"]["mean"] == 5.0
    assert not quality_report(samples, [], attempted=5)["counts_add_up"]
    assert "| rejected_share | 0.4 |" in report_markdown(r, "X")


def test_degree_buckets_do_not_overlap():
    from raypipe.synth.graphstats import _bucket

    assert [_bucket(d) for d in (0, 1, 2, 3, 4, 7, 8, 15, 16)] == [
        "0", "1", "2", "3", "4-7", "4-7", "8-15", "8-15", "16-31"]
