"""The shipped mini BFCL set (`raypipe.data.BFCL_MINI_DIR`): loads in both languages, uses the
tool pool's functions with BFCL type names, and every acceptable answer scores 1.0."""

import json
import re

import pytest

from raypipe.data import BFCL_MINI_DIR, TOOLS_JSON
from raypipe.eval.bfcl_data import CATEGORIES, load_bfcl, reference_calls
from raypipe.eval.scoring import score_results
from raypipe.templates.pythonic import format_calls

pytestmark = pytest.mark.unit

BFCL_TYPES = {"dict", "integer", "float", "string", "boolean", "array", "tuple", "any"}
CJK = re.compile(r"[\u4e00-\u9fff]")


def types_in(schema):
    yield schema["type"]
    for sub in schema.get("properties", {}).values():
        yield from types_in(sub)
    if "items" in schema:
        yield from types_in(schema["items"])


@pytest.mark.parametrize("lang", ["en", "zhtw"])
def test_loads_four_items_per_category(lang):
    items = load_bfcl(BFCL_MINI_DIR, lang)
    assert [it.category for it in items] == [c for c in CATEGORIES for _ in range(4)]
    assert [it.id for it in items[:4]] == ["simple_0", "simple_1", "simple_2", "simple_3"]
    assert all(it.rules == "v1" for it in items)
    assert all(bool(CJK.search(it.question[0]["content"])) == (lang == "zhtw") for it in items)


def test_languages_share_functions_and_answers():
    en, zh = load_bfcl(BFCL_MINI_DIR, "en"), load_bfcl(BFCL_MINI_DIR, "zhtw")
    for a, b in zip(en, zh):
        assert (a.id, a.functions, a.ground_truth) == (b.id, b.functions, b.ground_truth)
        assert a.question != b.question


def test_functions_are_the_tool_pool_with_bfcl_type_names():
    tools = {t["name"]: t for t in json.loads(TOOLS_JSON.read_text(encoding="utf-8"))}
    used = set()
    for it in load_bfcl(BFCL_MINI_DIR, "en"):
        for spec in it.functions:
            used.add(spec["name"])
            tool = tools[spec["name"]]
            assert spec["description"] == tool["description"]
            params = spec["parameters"]
            assert set(params["properties"]) == set(tool["parameters"]["properties"])
            assert params.get("required") == tool["parameters"].get("required")
            assert set(types_in(params)) <= BFCL_TYPES, spec["name"]
    assert len(used) >= 20  # the set exercises most of the pool, not a handful of tools


def test_parallel_answers_use_suffixed_keys_and_chinese_aliases():
    items = {it.id: it for it in load_bfcl(BFCL_MINI_DIR, "zhtw")}
    keys = [next(iter(call)) for call in items["parallel_function_0"].ground_truth]
    assert keys == ["get_airport_code_1", "get_airport_code_2"]
    aliases = [v for it in items.values() for call in it.ground_truth or [] for params in call.values()
               for values in params.values() for v in values if isinstance(v, str) and CJK.search(v)]
    assert "臺北" in aliases and len(aliases) >= 10


def pick_calls(item, choose):
    """The calls of an item with `choose(acceptable values)` as each argument (names as the oracle's)."""
    calls = []
    for (name, oracle_args), answer in zip(reference_calls(item), item.ground_truth):
        ((_, params),) = answer.items()
        args = {}
        for param in oracle_args:
            value = choose([v for v in params[param] if v != ""])
            if isinstance(value, dict):
                value = {k: choose(v) for k, v in value.items()}
            args[param] = value
        calls.append((name, args))
    return calls


def accuracies(items, results, decoder):
    report = score_results(items, results, decoder)
    return {c: e["accuracy"] for c, e in report["categories"].items()}, report


@pytest.mark.parametrize("lang", ["en", "zhtw"])
@pytest.mark.parametrize("choose", [lambda vs: vs[0], lambda vs: vs[-1]], ids=["first_value", "last_value"])
def test_perfect_outputs_score_one_on_every_category(lang, choose):
    items = load_bfcl(BFCL_MINI_DIR, lang)
    pythonic = {it.id: format_calls(pick_calls(it, choose)) if it.ground_truth else "沒有適用的工具。" for it in items}
    openai = {it.id: [{n: json.dumps(a, ensure_ascii=False)} for n, a in pick_calls(it, choose)] if it.ground_truth
              else "No tool fits." for it in items}
    for decoder, results in (("pythonic", pythonic), ("openai", openai)):
        by_category, report = accuracies(items, results, decoder)
        assert by_category == {c: 1.0 for c in CATEGORIES}, (decoder, report)
        assert report["ast_summary"] == 1.0 and report["relevance_detection"] == 1.0


def test_wrong_outputs_are_caught():
    items = load_bfcl(BFCL_MINI_DIR, "en")
    results = {it.id: format_calls(reference_calls(it)) if it.ground_truth else "No." for it in items}
    results["simple_2"] = "[calculate_bmi(weight_kg=86.0, height_m=1.72)]"
    results["multiple_function_2"] = "[compute_statistics(numbers=[1.0, -5.0, 6.0], measures=['mean'])]"
    results["parallel_function_3"] = "[add_to_cart(product_id='P-1001', quantity=2)]"
    results["relevance_0"] = "[get_stock_price(symbol='MONA')]"
    by_category, _ = accuracies(items, results, "pythonic")
    assert by_category == {c: 0.75 if c != "parallel_multiple_function" else 1.0 for c in CATEGORIES}
