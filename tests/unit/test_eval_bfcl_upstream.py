"""Verdicts of today's BFCL checker (bfcl_eval 2026.3.23, prompt mode, python) on hand-made V3/V4
items, and the zh-TW (V1) reference's relevance verdicts on every call-expression shape.

Every expected verdict is worked out from the reference's source, as docs/scoring.md explains:

- upstream decoding (``default_decode_ast_prompting``): strip backticks, newlines and spaces at
  both ends; add ``[`` / ``]`` where missing; ``ast.parse``; one call, or a list whose every
  element is a call, each ``{name: {kw: value}}``; empty output is ``[]``;
- V1 decoding (zh-TW open-model handler + V1 ``ast_parse``): the same brackets, then every
  element decoded as a *value*: a call without keyword arguments is its source text;
- relevance (``_evaluate_single_relevance_entry``): "no call" when decoding fails or gives no
  ``[{name: {args}}]`` entry; irrelevance items are right without a call, live_relevance items
  with one;
- the AST check dispatches on the category: "parallel" -> no-order, "multiple" ->
  multiple_function_checker, else simple.
"""

import json
from pathlib import Path

import pytest

from raypipe.eval.bfcl_data import BfclItem, load_bfcl, reference_calls
from raypipe.eval.scoring import score_item, score_results
from raypipe.templates.pythonic import format_calls

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "bfcl"
V4_CATEGORIES = ["simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance", "live_simple",
                 "live_multiple", "live_parallel", "live_parallel_multiple", "live_irrelevance", "live_relevance"]


def perfect(item):
    if item.kind == "irrelevance":
        return "None of these functions can answer that."
    if item.kind == "relevance":
        spec = item.functions[0]
        args = {p: "x" for p in spec["parameters"].get("required", [])}
        return format_calls([(spec["name"], args)])
    return format_calls(reference_calls(item))


@pytest.mark.parametrize("version", ["v3", "v4"])
def test_every_single_turn_category_loads_and_perfect_outputs_score_1(version):
    items = load_bfcl(FIXTURES / version, "en")
    categories = sorted({it.category for it in items})
    expected = V4_CATEGORIES if version == "v4" else ["simple" if c == "simple_python" else c for c in V4_CATEGORIES]
    assert categories == sorted(expected)
    report = score_results(items, {it.id: perfect(it) for it in items}, "pythonic")
    assert {c: e["accuracy"] for c, e in report["categories"].items()} == {c: 1.0 for c in expected}
    assert report["version"] == version and report["rules"] == "upstream"
    upstream = report["upstream"]
    assert upstream["non_live_ast"]["accuracy"] == 1.0 and upstream["live_ast"]["accuracy"] == 1.0
    assert upstream["irrelevance"]["accuracy"] == 1.0 and upstream["relevance"]["accuracy"] == 1.0
    assert upstream["overall"]["accuracy"] == pytest.approx(1.0)
    assert upstream["overall"]["weights"] == {"non_live": 10, "live": 10, "irrelevance": 10}
    assert upstream["overall"]["parts_not_scored"] == ["multi_turn", "agentic"]


def _item(kind, version="v4", rules="upstream", required=("a",)):
    category = {"simple": "simple_python", "multiple": "multiple", "parallel": "parallel",
                "irrelevance": "irrelevance", "relevance": "live_relevance"}[kind]
    if version == "v1":
        category = {"simple": "simple", "multiple": "multiple_function", "parallel": "parallel_function",
                    "irrelevance": "relevance"}[kind]
    f = {"name": "f", "parameters": {"type": "dict", "properties": {"a": {"type": "integer"}}, "required": list(required)}}
    g = {"name": "g", "parameters": {"type": "dict", "properties": {"b": {"type": "string"}}, "required": ["b"]}}
    truth = {"simple": [{"f": {"a": [1]}}], "multiple": [{"f": {"a": [1]}}],
             "parallel": [{"f": {"a": [1]}}, {"g": {"b": ["x"]}}]}.get(kind)
    return BfclItem(id=f"{category}_0", category=category, question=[], functions=[f, g], ground_truth=truth,
                    rules=rules, version=version)


def verdict(item, raw, decoder="pythonic"):
    outcome = score_item(item, raw, decoder)
    return outcome.get("error_type") if not outcome["valid"] else None


# (raw output, simple, multiple, parallel (f then g expected), irrelevance, live_relevance) under upstream
OK = None
DECODE = "ast_decoder:decoder_failed"
NO_CALL_OK = None
CALLED = "irrelevance_error:decoder_success"
NOT_CALLED = "relevance_error:decoder_failed"
OUTPUT_SHAPES = [
    ("[f(a=1)]", OK, OK, "parallel_function_checker_no_order:wrong_count", CALLED, OK),
    ("f(a=1)", OK, OK, "parallel_function_checker_no_order:wrong_count", CALLED, OK),
    ("[f(a=1), g(b='x')]", "simple_function_checker:wrong_count", "multiple_function_checker:wrong_count", OK, CALLED, OK),
    ("f(a=1), g(b='x')", "simple_function_checker:wrong_count", "multiple_function_checker:wrong_count", OK, CALLED, OK),
    ("[g(b='x'), f(a=1)]", "simple_function_checker:wrong_count", "multiple_function_checker:wrong_count", OK, CALLED, OK),
    # code fences: a bare fence is stripped (backticks and newlines); a language tag stays and breaks the parse
    ("```\n[f(a=1)]\n```", OK, OK, "parallel_function_checker_no_order:wrong_count", CALLED, OK),
    ("```python\n[f(a=1)]\n```", DECODE, DECODE, DECODE, NO_CALL_OK, NOT_CALLED),
    ("```json\n[f(a=1)]\n```", DECODE, DECODE, DECODE, NO_CALL_OK, NOT_CALLED),
    # parenthesized calls: wrapped in [...] they are a tuple inside a list, not calls
    ("(f(a=1), g(b='x'))", DECODE, DECODE, DECODE, NO_CALL_OK, NOT_CALLED),
    ("(f(a=1),)", DECODE, DECODE, DECODE, NO_CALL_OK, NOT_CALLED),
    # empty output decodes to [] (a wrong count, not a decode failure)
    ("", "simple_function_checker:wrong_count", "multiple_function_checker:wrong_count",
     "parallel_function_checker_no_order:wrong_count", NO_CALL_OK, NOT_CALLED),
    ("[]", "simple_function_checker:wrong_count", "multiple_function_checker:wrong_count",
     "parallel_function_checker_no_order:wrong_count", NO_CALL_OK, NOT_CALLED),
    ("\n  ", "simple_function_checker:wrong_count", "multiple_function_checker:wrong_count",
     "parallel_function_checker_no_order:wrong_count", NO_CALL_OK, NOT_CALLED),
    # text, refusals, text around calls
    ("I cannot help with that.", DECODE, DECODE, DECODE, NO_CALL_OK, NOT_CALLED),
    ("Sure: [f(a=1)]", DECODE, DECODE, DECODE, NO_CALL_OK, NOT_CALLED),
    ("[f(a=1)] is the call", DECODE, DECODE, DECODE, NO_CALL_OK, NOT_CALLED),
    ("\t[f(a=1)]", DECODE, DECODE, DECODE, NO_CALL_OK, NOT_CALLED),  # a tab is not stripped: '[\t[f(a=1)]'
    # values, types, parameters
    ("[f(a=2)]", "value_error:others", "value_error:others", "parallel_function_checker_no_order:wrong_count", CALLED, OK),
    ("[f(a='1')]", "type_error:simple", "type_error:simple", "parallel_function_checker_no_order:wrong_count", CALLED, OK),
    ("[f()]", "simple_function_checker:missing_required", "simple_function_checker:missing_required",
     "parallel_function_checker_no_order:wrong_count", CALLED, OK),
    ("[f(a=1, c=2)]", "simple_function_checker:unexpected_param", "simple_function_checker:unexpected_param",
     "parallel_function_checker_no_order:wrong_count", CALLED, OK),
    ("[g(b='x')]", "simple_function_checker:wrong_func_name", "simple_function_checker:wrong_func_name",
     "parallel_function_checker_no_order:wrong_count", CALLED, OK),
    ("[f(1)]", "simple_function_checker:missing_required", "simple_function_checker:missing_required",
     "parallel_function_checker_no_order:wrong_count", CALLED, OK),  # positional arguments are ignored
    ("[f(a=3-2)]", OK, OK, "parallel_function_checker_no_order:wrong_count", CALLED, OK),  # arithmetic is computed
    ("[f(a=g(b=1))]", "type_error:simple", "type_error:simple", "parallel_function_checker_no_order:wrong_count",
     CALLED, OK),  # a nested call with keywords is a dict
    ("[f(a=1), f(a=1)]", "simple_function_checker:wrong_count", "multiple_function_checker:wrong_count",
     "parallel_function_checker_no_order:cannot_find_match", CALLED, OK),
]


@pytest.mark.parametrize("raw, simple, multiple, parallel, irrelevance, relevance", OUTPUT_SHAPES,
                         ids=[repr(s[0])[:40] for s in OUTPUT_SHAPES])
def test_upstream_verdicts_of_output_shapes(raw, simple, multiple, parallel, irrelevance, relevance):
    got = [verdict(_item(kind), raw) for kind in ("simple", "multiple", "parallel", "irrelevance", "relevance")]
    assert got == [simple, multiple, parallel, irrelevance, relevance]


def test_v1_rules_keep_the_zh_tw_behaviour_on_the_same_shapes():
    # where upstream and the zh-TW reference differ: the error type names, empty output (the
    # zh-TW handler fails on it), and a multiple item goes through the no-order check
    assert verdict(_item("irrelevance", "v1", "v1"), "[f(a=1)]") == "relevance_error:decoder_success"
    assert verdict(_item("simple", "v1", "v1"), "") == DECODE
    assert verdict(_item("multiple", "v1", "v1"), "[]") == "parallel_function_checker_no_order:wrong_count"
    # raypipe's own V1 extension (docs/scoring.md): a code fence around the calls is removed
    assert verdict(_item("simple", "v1", "v1"), "```python\n[f(a=1)]\n```") is None
    # --rules switches a V4 item to the zh-TW rules and back
    assert verdict(_item("irrelevance", "v4", "v1"), "[f(a=1)]") == "relevance_error:decoder_success"
    assert verdict(_item("simple", "v4", "v1"), "```python\n[f(a=1)]\n```") is None


# Call-expression shapes and whether each reference counts "no call" (irrelevance right):
# (raw, upstream no call, V1 no call)
CALL_SHAPES = [
    ("f(a=1)", False, False),
    ("f()", False, True),  # V1: a call without keyword arguments is its source text
    ("f(1)", False, True),
    ("f(*args)", False, True),
    ("f(1, a=2)", False, False),
    ("m.sub.f(a=1)", False, False),
    ("m.f(1)", False, True),
    ("math.sqrt(5**2 + 6**2)", False, True),
    ("print(f(a=1))", False, True),
    ("x[0].f(a=1)", False, False),  # named "f": the chain's attributes only
    ("f()(a=1)", False, False),  # named ""
    ("f(a=g(1))", False, False),
    ("f(a=g(b=1))", False, False),
    ("f(**kw)", False, False),  # the parameter None
    ("[f(a=1), g()]", False, True),  # V1: one element is a string, so the list is not calls
    ("[g(), f(a=1)]", False, True),
    ("[f(a=x.y)]", True, True),  # attribute values are not decoded
    ("[f(a=lambda: 1)]", True, True),
    ("[f(a={1, 2})]", True, True),
    ("[f(a=1 < 2)]", True, True),
    ('[f(a=f"{x}")]', True, True),
    ("[f(a=[*x])]", True, True),
    ("[f(a={**x})]", True, True),
    ("[f(a={[1]: 2})]", True, True),  # unhashable key
    ("[f(a=-x)]", True, True),  # -operand.value: a name has none
    ("[f(a=-'s')]", True, True),
    ("[f(a=+1)]", False, False),
    ("[f(a=not 1)]", False, False),
    ("[f(a=-1j)]", False, False),
    ('[f(a=b"x")]', False, False),
    ("[f(a=...)]", False, False),
    ("[f(a=x[0])]", False, False),
    ("[f(a=(1, 2))]", False, False),
    ("[f(a=x * 2)]", True, True),  # eval: x is not defined
    ("[f(a=math.pi * 2)]", True, True),
    ("[f(a=x.y * 2)]", True, True),
    ("[f(a=1 / 0)]", True, True),
    ("[f(a=10.0 ** 400)]", True, True),  # float overflow
    ("[f(a=2 * 3)]", False, False),
    ('[f(a="ab" * 2)]', False, False),
    ("[f(a=True + 1)]", False, False),
    ("[f(a=[1] + [2])]", False, False),
    ("[f(a=(1,) * 2)]", False, False),
    ("[f(a=abs(-3) * 2)]", False, False),
    ("[f(a=sorted([2, 1]) + [3])]", False, False),
    ("[f(a=[1, 2][0] + 1)]", False, False),
    ("[f(a={'k': 1}['k'] + 1)]", False, False),
    ("[f(a='%s km' % 5)]", False, False),
    ("[f(a=(1 if x else 2) + 1)]", True, True),
    ("[f(a=10**4000 * 10**4000)]", False, False),  # decodes (8,001 digits); see the hostile tests
    ("[f(a=1)][0]", True, True),
    ("[[f(a=1)]]", True, True),
    ("[f(a=x) for x in y]", True, True),
    ("f(a=1) or g(b=2)", True, True),
    ("lambda: f(a=1)", True, True),
    ("(f(a=1), g(b=2))", True, True),
]


@pytest.mark.parametrize("raw, upstream_no_call, v1_no_call", CALL_SHAPES, ids=[s[0] for s in CALL_SHAPES])
def test_relevance_verdicts_of_every_call_expression_shape(raw, upstream_no_call, v1_no_call):
    assert score_item(_item("irrelevance"), raw, "pythonic")["valid"] is upstream_no_call
    assert score_item(_item("relevance"), raw, "pythonic")["valid"] is (not upstream_no_call)
    assert score_item(_item("irrelevance", "v1", "v1"), raw, "pythonic")["valid"] is v1_no_call


def test_v1_calls_without_keywords_are_not_calls_in_the_ast_categories():
    # the zh-TW reference decodes `f()` to the string "f()": the output is not in call format
    assert verdict(_item("simple", "v1", "v1", required=()), "[f()]") == "ast_decoder:decoder_wrong_output_format"
    assert verdict(_item("simple", "v4", "upstream", required=()), "[f()]") == "simple_function_checker:missing_optional"


def test_fc_mode_outputs_under_upstream_rules():
    item = _item("irrelevance")
    assert verdict(item, "No function fits.", "openai") is None
    assert verdict(item, [], "openai") is None
    assert verdict(item, [{"f": '{"a": 1}'}], "openai") == CALLED
    assert verdict(_item("relevance"), "No function fits.", "openai") == NOT_CALLED
    assert verdict(_item("simple"), [{"f": '{"a": 1}'}], "openai") is None


def test_report_lists_upstream_error_counts():
    items = [_item("irrelevance"), _item("relevance")]
    items[1].id = "live_relevance_0-0-0"
    report = score_results(items, {items[0].id: "[f(a=1)]", items[1].id: "no"}, "pythonic")
    assert report["error_counts"] == {"irrelevance": {"irrelevance_error:decoder_success": 1},
                                      "live_relevance": {"relevance_error:decoder_failed": 1}}
    assert report["upstream"]["irrelevance"]["accuracy"] == 0.0 and report["upstream"]["relevance"]["accuracy"] == 0.0
    json.dumps(report)
