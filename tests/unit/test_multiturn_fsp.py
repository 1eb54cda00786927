import random
from pathlib import Path

import pytest

from raypipe.schema import Message, Sample, ToolCall, dpo_pair_schema
from raypipe.synth.fsp_ops import (
    FspTurn, OpsConfig, apply_random_ops, fsp_functions, insert_prerequisite, merge_turns,
    random_walk_fsp, split_turn,
)
from raypipe.synth.toolgraph import GraphConfig, build_tool_graph
from raypipe.synth.toolpool import load_tool_pool
from raypipe.synth.trajectories import CORRUPTIONS, corrupt, guess_value, make_pairs
from raypipe.validate import validate_sample

pytestmark = pytest.mark.unit

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "multiturn_tools.json"


@pytest.fixture(scope="module")
def graph():
    return build_tool_graph(load_tool_pool([FIXTURE]), GraphConfig(min_score=0.35, top_k=4))


def T(*calls, **kw):
    return FspTurn(tuple(calls), **kw)


# -- node operations -----------------------------------------------------------------------

def test_insert_prerequisite_prepends_the_feeding_call():
    fsp = [T("get_weather"), T("get_flight_by_airport")]
    out = insert_prerequisite(fsp, 1, "get_airport_symbol_by_city", "name->airport_symbol")
    assert out[1] == T("get_airport_symbol_by_city", "get_flight_by_airport", op="insert",
                       feeds="name->airport_symbol")
    assert out[0] == fsp[0] and fsp[1] == T("get_flight_by_airport")  # input untouched
    with pytest.raises(ValueError, match="already calls"):
        insert_prerequisite(out, 1, "get_airport_symbol_by_city", "x->y")
    with pytest.raises(ValueError, match="makes no call"):
        insert_prerequisite([T(op="ask")], 0, "f", "x->y")


def test_merge_turns_joins_two_turns_into_one():
    fsp = [T("get_distance"), T("set_navigation"), T("get_weather")]
    out = merge_turns(fsp, 0)
    assert out == [T("get_distance", "set_navigation", op="merge"), T("get_weather")]
    with pytest.raises(ValueError, match="no next turn"):
        merge_turns(fsp, 2)
    with pytest.raises(ValueError, match="same function"):
        merge_turns([T("f"), T("f")], 0)
    with pytest.raises(ValueError, match="cannot be merged"):
        merge_turns([T(op="ask"), T("f", op="answer")], 0)


def test_split_turn_makes_an_ask_and_an_answer_turn(graph):
    spec = graph.spec("get_distance")
    out = split_turn([T("get_distance")], 0, "get_distance", "from_loc", spec)
    assert out == [T(op="ask", missing=("get_distance", "from_loc")),
                   T("get_distance", op="answer", missing=("get_distance", "from_loc"))]
    with pytest.raises(ValueError, match="not a required argument"):
        split_turn([T("get_weather")], 0, "get_weather", "unit", graph.spec("get_weather"))
    with pytest.raises(ValueError, match="already split"):
        split_turn(out, 1, "get_distance", "to_loc", spec)
    with pytest.raises(ValueError, match="does not call"):
        split_turn([T("get_weather")], 0, "get_distance", "to_loc", spec)


def test_fsp_turn_dict_roundtrip():
    t = T("a", "b", op="answer", missing=("b", "x"), feeds="name->x")
    assert FspTurn.from_dict(t.to_dict()) == t


def test_random_walk_fsp_follows_edges_without_revisits(graph):
    for seed in range(20):
        fsp = random_walk_fsp(graph, random.Random(seed), 4)
        names = [t.calls[0] for t in fsp]
        assert len(set(names)) == len(names) and 1 <= len(fsp) <= 4
        for a, b in zip(names, names[1:]):
            # each step is adjacent to some function already on the path
            assert any(b in graph.neighbours(x) for x in names[: names.index(b)])
    assert random_walk_fsp(graph, random.Random(3), 4) == random_walk_fsp(graph, random.Random(3), 4)


def test_apply_random_ops_produces_every_operation_and_valid_paths(graph):
    seen = set()
    for seed in range(60):
        rng = random.Random(seed)
        fsp = apply_random_ops(random_walk_fsp(graph, rng, 4), graph, rng,
                               OpsConfig(p_insert=0.5, p_merge=0.4, p_split=0.5))
        for h, t in enumerate(fsp):
            seen.add(t.op)
            if t.op == "ask":
                assert not t.calls and fsp[h + 1].op == "answer" and fsp[h + 1].missing == t.missing
            if t.op == "insert":
                assert t.calls[0] in [s for s, _, _ in graph.feeders(t.calls[1])]
        names = [graph.spec(n)["name"] for n in fsp_functions(fsp)]
        assert len(names) == len(set(names))  # never get_weather and get_weather~2 together
    assert {"walk", "insert", "merge", "ask", "answer"} <= seen


def test_walk_and_insert_never_pair_same_name_variants():
    from raypipe.synth.toolgraph import ToolGraph

    spec = lambda name: {"name": name, "parameters": {"properties": {"x": {}}, "required": ["x"]}}  # noqa: E731
    g = ToolGraph(["a", "a~2", "b"], [spec("a"), spec("a"), spec("b")], [
        {"src": "a", "dst": "b", "kind": "magnet", "score": 1.0, "via": ""},
        {"src": "b", "dst": "a~2", "kind": "magnet", "score": 1.0, "via": ""},
        {"src": "a~2", "dst": "b", "kind": "return_param", "score": 0.9, "via": "name->x"},
    ])
    for seed in range(20):
        path = [t.calls[0] for t in random_walk_fsp(g, random.Random(seed), 3, ("magnet",))]
        assert len(path) == 2 and {g.spec(n)["name"] for n in path} == {"a", "b"}
        fsp = apply_random_ops([T("a"), T("b")], g, random.Random(seed), OpsConfig(1.0, 0, 0))
        assert "a~2" not in fsp_functions(fsp)  # a~2 feeds b, but "a" is already in the dialog


def test_apply_random_ops_with_zero_probabilities_is_identity(graph):
    fsp = random_walk_fsp(graph, random.Random(0), 3)
    assert apply_random_ops(fsp, graph, random.Random(0), OpsConfig(0, 0, 0)) == fsp


# -- trajectory corruptions ----------------------------------------------------------------

def _positive(graph) -> Sample:
    """A positive MAGNET-like trajectory: ask for a missing argument, then a prerequisite chain."""
    fns = [graph.spec(n) for n in ("get_distance", "get_weather", "get_airport_symbol_by_city",
                                   "get_flight_by_airport")]
    msgs = [
        Message("user", "How far is Agra?"),
        Message("assistant", "Where are you starting from?"),
        Message("user", "From Delhi."),
        Message("assistant", tool_calls=[ToolCall("get_distance", {"from_loc": "Delhi", "to_loc": "Agra"}, "c1")]),
        Message("tool", '{"distance": 233}', name="get_distance", tool_call_id="c1"),
        Message("assistant", "It is 233 km."),
        Message("user", "Which flights land in Mumbai?"),
        Message("assistant", tool_calls=[ToolCall("get_airport_symbol_by_city", {"city": "Mumbai"}, "c2")]),
        Message("tool", '"BOM"', name="get_airport_symbol_by_city", tool_call_id="c2"),
        Message("assistant", tool_calls=[ToolCall("get_flight_by_airport", {"airport_symbol": "BOM"}, "c3")]),
        Message("tool", '["AI 101"]', name="get_flight_by_airport", tool_call_id="c3"),
        Message("assistant", "AI 101 lands in Mumbai."),
    ]
    actions = [
        {"message": 1, "kind": "ask", "op": "ask", "calls": [], "missing": ["get_distance", "from_loc"]},
        {"message": 3, "kind": "call", "op": "answer", "calls": ["get_distance"], "missing": ["get_distance", "from_loc"]},
        {"message": 5, "kind": "reply", "op": "answer", "calls": []},
        {"message": 7, "kind": "call", "op": "insert", "prerequisite": True, "feeds": "name->airport_symbol",
         "calls": ["get_airport_symbol_by_city", "get_flight_by_airport"]},
        {"message": 9, "kind": "call", "op": "insert", "calls": ["get_airport_symbol_by_city", "get_flight_by_airport"]},
        {"message": 11, "kind": "reply", "op": "insert", "calls": []},
    ]
    s = Sample(functions=fns, messages=msgs, source="magnet", meta={"actions": actions})
    assert validate_sample(s) == []
    return s


def test_guess_missing_argument_calls_instead_of_asking(graph):
    pos = _positive(graph)
    neg = corrupt(pos, pos.meta["actions"][0], "guess_missing_argument", random.Random(0))
    assert neg.messages[:1] == pos.messages[:1] and len(neg.messages) == 2
    call = neg.messages[1].tool_calls[0]
    assert call.name == "get_distance" and call.arguments["to_loc"] == "Agra"
    assert call.arguments["from_loc"] != "Delhi"
    assert validate_sample(neg) == []


def test_unrelated_function_calls_another_tool(graph):
    pos = _positive(graph)
    neg = corrupt(pos, pos.meta["actions"][0], "unrelated_function", random.Random(1))
    assert neg.messages[1].tool_calls[0].name not in ("get_distance",)
    assert validate_sample(neg) == []


def test_drop_prerequisite_calls_main_function_with_a_guess(graph):
    pos = _positive(graph)
    neg = corrupt(pos, pos.meta["actions"][3], "drop_prerequisite", random.Random(0))
    call = neg.messages[7].tool_calls[0]
    assert call.name == "get_flight_by_airport" and call.arguments["airport_symbol"] != "BOM"
    assert corrupt(pos, pos.meta["actions"][4], "drop_prerequisite", random.Random(0)) is None


def test_wrong_argument_value_changes_exactly_one_value(graph):
    pos = _positive(graph)
    neg = corrupt(pos, pos.meta["actions"][1], "wrong_argument_value", random.Random(0))
    before, after = pos.messages[3].tool_calls[0].arguments, neg.messages[3].tool_calls[0].arguments
    assert before.keys() == after.keys()
    assert sum(before[k] != after[k] for k in before) == 1
    assert corrupt(pos, pos.meta["actions"][2], "wrong_argument_value", random.Random(0)) is None


def test_guess_value_respects_types_and_avoids_the_true_value():
    rng = random.Random(0)
    assert guess_value("unit", {"enum": ["c", "f"]}, rng, avoid="c") == "f"
    assert isinstance(guess_value("n", {"type": "integer"}, rng), int)
    assert guess_value("flag", {"type": "boolean"}, rng, avoid=True) is False
    assert isinstance(guess_value("xs", {"type": "array", "items": {"type": "number"}}, rng)[0], float)
    assert guess_value("city", {"type": "string"}, rng, avoid="Paris") != "Paris"


def test_make_pairs_records_turn_and_corruption_and_fits_the_dpo_schema(graph):
    import pyarrow as pa

    pos = _positive(graph)
    pairs = make_pairs(pos, seed=0, corruptions=list(CORRUPTIONS), per_sample=4)
    assert {p["corruption"] for p in pairs} == set(CORRUPTIONS)
    for p in pairs:
        rejected = Sample.from_row(p["rejected"])
        assert rejected.messages[: p["turn"]] == pos.messages[: p["turn"]]
        assert rejected.messages[p["turn"]] != pos.messages[p["turn"]]
        assert len(rejected.messages) == p["turn"] + 1
        assert Sample.from_row(p["chosen"]).id == pos.id
    table = pa.Table.from_pylist(pairs, schema=dpo_pair_schema())
    assert table.num_rows == 4
    assert make_pairs(pos, 0, list(CORRUPTIONS), 4) == pairs  # seeded
    with pytest.raises(ValueError, match="unknown corruption"):
        make_pairs(pos, 0, ["typo"], 1)
