import json
from pathlib import Path

import numpy as np
import pytest

from raypipe.errors import MissingExtraError, RaypipeError
from raypipe.synth.embed import NgramEmbedder, make_embedder, words
from raypipe.synth.sampling import SamplingConfig, dialog_rng, sample_tools
from raypipe.synth.toolgraph import (
    GraphConfig, build_tool_graph, load_graph, return_fields, returned_noun, save_graph,
)
from raypipe.synth.toolpool import load_tool_pool, pool_from_specs, signature

pytestmark = pytest.mark.unit

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "multiturn_tools.json"


@pytest.fixture(scope="module")
def pool():
    return load_tool_pool([FIXTURE])


@pytest.fixture(scope="module")
def graph(pool):
    return build_tool_graph(pool, GraphConfig(min_score=0.35, top_k=4))


def _edge(graph, a, b, kind):
    for e in graph.edges:
        if e["kind"] == kind and {e["src"], e["dst"]} == {a, b}:
            if kind == "param_param" or (e["src"], e["dst"]) == (a, b):
                return e
    return None


# -- tool pools ----------------------------------------------------------------------------

def test_pool_dedups_by_name_and_signature_and_keeps_same_name_variants(pool):
    assert pool.summary() == {"read": 11, "duplicates": 1, "tools": 10}
    assert "get_weather" in pool.tools and "get_weather~2" in pool.tools
    assert set(pool.tools["get_weather~2"]["parameters"]["properties"]) == {"lat", "lon"}
    assert "check_calendar" in pool.tools  # OpenAI {"type": "function"} wrapping unwrapped


def test_signature_ignores_description_but_not_required():
    a = {"name": "f", "description": "x", "parameters": {"properties": {"p": {"type": "string"}}}}
    b = {**a, "description": "y"}
    c = {**a, "parameters": {**a["parameters"], "required": ["p"]}}
    assert signature(a) == signature(b) != signature(c)


def test_pool_reads_bfcl_lines_samples_and_names_bad_rows(tmp_path):
    bfcl = tmp_path / "q.json"
    bfcl.write_text(
        json.dumps({"id": "x", "question": "q", "function": {"name": "f", "parameters": {}}}) + "\n"
        + json.dumps({"id": "y", "question": "q", "function": [{"name": "g"}, {"name": "f", "parameters": {}}]}) + "\n"
    )
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"functions": [{"name": "h"}], "messages": []}) + "\n")
    assert load_tool_pool([bfcl, samples]).ids() == ["f", "g", "h"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"id": "z", "function": [{"description": "no name"}]}) + "\n")
    with pytest.raises(RaypipeError, match=r"bad.json: line 1: function\[0\].name: function spec has no name"):
        load_tool_pool([bad])
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "a"}\n{"name": \n')
    with pytest.raises(RaypipeError, match="broken.json: line 2: not valid JSON"):
        load_tool_pool([broken])


def test_pool_reads_source_formats_through_the_converters():
    from raypipe.data import SOURCES_DIR

    pool = load_tool_pool([f"xlam:{SOURCES_DIR / 'xlam.json'}", f"glaive:{SOURCES_DIR / 'glaive_v2.json'}"])
    assert "get_current_weather" in pool.tools and pool.duplicates > 0
    with pytest.raises(RaypipeError, match="tool file not found"):
        load_tool_pool(["xlam:/nonexistent.json"])


def test_pool_reads_shipped_tools_json():
    from raypipe.data import TOOLS_JSON

    pool = load_tool_pool([TOOLS_JSON])
    assert len(pool) == 25 and pool.duplicates == 0


def test_bfcl_functions_graph_sampling_and_node_operations(bfcl_data):
    import random

    from raypipe.synth.fsp_ops import OpsConfig, apply_random_ops, random_walk_fsp
    from raypipe.synth.toolpool import required_of

    pool = load_tool_pool(sorted((bfcl_data / "en").glob("*.json")))
    assert len(pool) > 500 and pool.duplicates > 0
    g = build_tool_graph(pool, GraphConfig(top_k=4))
    assert g.edges and all(e["src"] != e["dst"] for e in g.edges)
    deg = g.degrees()
    assert max(deg.values()) > 0 and sum(1 for d in deg.values() if d) > len(pool) / 2
    for i in range(20):
        picked = sample_tools(g, dialog_rng(0, i), SamplingConfig(min_tools=3, max_tools=3, relatedness=1.0))
        assert len(picked["tools"]) == 3 and picked["linked"] == 2
    ops = set()
    for seed in range(40):  # node operations on BFCL paths (walking the parameter edges)
        rng = random.Random(seed)
        fsp = apply_random_ops(random_walk_fsp(g, rng, 4, ("param_param",)), g, rng, OpsConfig(0.5, 0.4, 0.5))
        for h, t in enumerate(fsp):
            ops.add(t.op)
            if t.op == "ask":
                fn, arg = t.missing
                assert arg in required_of(g.spec(fn)) and fsp[h + 1].calls[-1] == fn
            if t.feeds and len(t.calls) > 1:
                assert t.calls[0] in [s for s, _, _ in g.feeders(t.calls[-1])]
    assert ops == {"walk", "insert", "merge", "ask", "answer"}


# -- embedder ------------------------------------------------------------------------------

def test_words_split_snake_camel_and_dots():
    assert words("get_airportSymbol.byCity") == ["get", "airport", "symbol", "by", "city"]


def test_ngram_embedder_is_stable_normalised_and_semantic():
    texts = ["location", "destination", "passengers", "temperature unit"]
    v = NgramEmbedder(dim=1024).fit(texts).embed(texts)
    assert v.shape == (4, 1024)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]  # location ~ destination, not ~ passengers
    again = NgramEmbedder(dim=1024).fit(texts).embed(texts)
    assert np.array_equal(v, again)  # stable hash: every worker embeds alike


def test_make_embedder_choices_and_missing_sentence_transformers():
    assert make_embedder("ngram:256").dim == 256
    with pytest.raises(RaypipeError, match="use 'ngram'"):
        make_embedder("word2vec")
    st = make_embedder("st:/nonexistent/model")
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        with pytest.raises(MissingExtraError, match="sentence-transformers"):
            st.embed(["x"])


# -- graph ---------------------------------------------------------------------------------

def test_returned_noun_and_return_fields():
    assert returned_noun("get_airport_symbol_by_city") == "airport symbol"
    assert returned_noun("games.price.find") == "games price"
    spec = {"name": "check_calendar", "returns": {"properties": {"event_location": {"description": "x"}}}}
    assert [f for f, _ in return_fields(spec)] == ["returns.event_location"]


def test_param_similarity_edge_location_destination(graph):
    e = _edge(graph, "get_weather", "book_flight", "param_param")
    assert e is not None and e["via"] == "location~destination" and 0.35 <= e["score"] < 1.0


def test_return_feeds_parameter_edges_are_directed(graph):
    cal = _edge(graph, "check_calendar", "navigate", "return_param")
    assert cal is not None and cal["via"] == "returns.event_location->location"
    airport = _edge(graph, "get_airport_symbol_by_city", "get_flight_by_airport", "return_param")
    assert airport is not None and airport["via"] == "name->airport_symbol"
    dist = _edge(graph, "get_distance", "set_navigation", "return_param")
    assert dist is not None and dist["via"] == "returns.distance->distance"
    assert _edge(graph, "get_flight_by_airport", "get_airport_symbol_by_city", "return_param") is None
    assert graph.feeders("get_flight_by_airport")[0][0] == "get_airport_symbol_by_city"


def test_no_self_or_same_name_edges_and_unrelated_tool_is_isolated(graph):
    for e in graph.edges:
        assert e["src"] != e["dst"]
        assert {e["src"], e["dst"]} != {"get_weather", "get_weather~2"}
    assert graph.neighbours("solve_quadratic") == {}


def test_min_score_and_top_k_prune(pool):
    loose = build_tool_graph(pool, GraphConfig(min_score=0.0, top_k=9))
    strict = build_tool_graph(pool, GraphConfig(min_score=0.8, top_k=9))
    one = build_tool_graph(pool, GraphConfig(min_score=0.0, top_k=1))
    assert len(strict.edges) < len(loose.edges)
    assert all(e["score"] >= 0.8 for e in strict.edges)
    out_per_tool: dict = {}
    for e in one.edges:
        if e["kind"] == "return_param":
            out_per_tool[e["src"]] = out_per_tool.get(e["src"], 0) + 1
    assert max(out_per_tool.values()) == 1


def test_blocking_does_not_change_the_graph(pool):
    whole = build_tool_graph(pool, GraphConfig(block_tools=1000))
    blocked = build_tool_graph(pool, GraphConfig(block_tools=3))
    assert whole.edges == blocked.edges


def test_top_k_ties_go_to_the_lowest_indices():
    import numpy as np

    from raypipe.synth.toolgraph import _top_k

    row = np.array([0.9, 0.5, 0.7, 0.7, 0.7, 0.1])
    assert sorted(_top_k(row, 3, 0.4).tolist()) == [0, 2, 3]
    assert sorted(_top_k(row, 9, 0.6).tolist()) == [0, 2, 3, 4]
    assert _top_k(row, 2, 0.95).tolist() == []


def test_synthetic_pool_graph_is_the_same_in_any_blocking():
    from raypipe.commands.graph import synthetic_pool

    pool = pool_from_specs(synthetic_pool(120))  # many exact ties: shared parameter texts
    one = build_tool_graph(pool, GraphConfig(block_tools=120))
    many = build_tool_graph(pool, GraphConfig(block_tools=17))
    assert [(e["src"], e["dst"], e["kind"]) for e in one.edges] == [(e["src"], e["dst"], e["kind"]) for e in many.edges]


def test_graph_parquet_roundtrip(graph, tmp_path):
    save_graph(graph, tmp_path / "g")
    back = load_graph(tmp_path / "g")
    assert back.node_ids == graph.node_ids and back.specs == graph.specs
    assert back.edges == graph.edges
    with pytest.raises(RaypipeError, match="not a tool graph"):
        load_graph(tmp_path)


def test_graph_of_a_single_tool_has_no_edges():
    g = build_tool_graph(pool_from_specs([{"name": "only", "parameters": {}}]))
    assert g.edges == [] and g.node_ids == ["only"]


# -- sampling ------------------------------------------------------------------------------

def test_sampling_is_seeded_sized_and_name_unique(graph):
    cfg = SamplingConfig(min_tools=2, max_tools=4, relatedness=1.0)
    for i in range(30):
        a = sample_tools(graph, dialog_rng(7, i), cfg)
        assert a == sample_tools(graph, dialog_rng(7, i), cfg)
        assert 2 <= len(a["tools"]) <= 4
        names = [graph.spec(t).get("name") for t in a["tools"]]
        assert len(set(names)) == len(names)
        chosen = set(a["tools"])
        assert a["edges"] == [e for e in graph.edges if e["src"] in chosen and e["dst"] in chosen]
    assert sample_tools(graph, dialog_rng(7, 0), cfg) != sample_tools(graph, dialog_rng(8, 0), cfg)


@pytest.mark.parametrize("method", ["walk", "neighbourhood"])
def test_relatedness_knob_controls_connectedness(graph, method):
    def linked_share(relatedness):
        cfg = SamplingConfig(method=method, min_tools=3, max_tools=3, relatedness=relatedness)
        got = [sample_tools(graph, dialog_rng(1, i), cfg) for i in range(60)]
        return sum(g["linked"] for g in got) / sum(len(g["tools"]) - 1 for g in got)

    assert linked_share(1.0) > 0.9
    assert linked_share(0.0) == 0.0


def test_sampling_config_rejects_bad_knobs():
    with pytest.raises(ValueError, match="min_tools"):
        SamplingConfig(min_tools=3, max_tools=2)
    with pytest.raises(ValueError, match="relatedness"):
        SamplingConfig(relatedness=1.5)
