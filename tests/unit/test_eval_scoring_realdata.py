"""The loader and checker agree with the possible answers of the real zh-TW benchmark.

The ground truth of every item is turned into the output a perfect model would give (first
acceptable value of each parameter) and scored. Two items cannot be answered correctly by any
output, because of the data itself, and the reference checker fails them too:

- parallel_function_44: the possible answer of the second call (Paris) omits ``date``, a
  required parameter. Omitting it fails ``missing_required``; giving it fails
  ``unexpected_param`` (not in the possible answer).
- parallel_multiple_function_179: the possible answer has a fifth top-level key ``"deck":
  [[], ""]`` (a parameter of find_card_in_deck written as a call). Four real calls fail
  ``wrong_count``; a fifth call has no spec (``cannot_find_description``).

So the best reachable accuracy is 199/200 in those two categories and 1.0 everywhere else.
"""

import json

import pytest

from raypipe.eval.bfcl_data import load_bfcl, reference_calls
from raypipe.eval.scoring import score_results
from raypipe.templates.pythonic import format_calls

pytestmark = pytest.mark.unit

UNREACHABLE = {
    "parallel_function": {"parallel_function_44": "parallel_function_checker_no_order:cannot_find_match"},
    "parallel_multiple_function": {"parallel_multiple_function_179": "parallel_function_checker_no_order:wrong_count"},
}
SIZES = {"simple": 400, "multiple_function": 200, "parallel_function": 200,
         "parallel_multiple_function": 200, "relevance": 240}


def _check_perfect(report):
    for category, entry in report["categories"].items():
        assert entry["total"] == SIZES[category]
        assert {e["id"]: e["error_type"] for e in entry["errors"]} == UNREACHABLE.get(category, {}), category
    assert report["ast_summary"] == pytest.approx((1 + 1 + 199 / 200 + 199 / 200) / 4)
    assert report["relevance_detection"] == 1.0


@pytest.mark.parametrize("lang", ["en", "zhtw"])
def test_perfect_pythonic_outputs(bfcl_data, lang):
    items = load_bfcl(bfcl_data, lang)
    assert len(items) == 1240
    results = {it.id: format_calls(reference_calls(it)) if it.ground_truth else "這些工具都不適用。" for it in items}
    report = score_results(items, results, "pythonic")
    _check_perfect(report)
    assert report["relevance_detection_strict"] == 1.0


def test_perfect_outputs_through_the_other_decoders(bfcl_data):
    items = load_bfcl(bfcl_data, "zhtw")
    breeze = {}
    openai = {}
    for it in items:
        calls = reference_calls(it)
        if it.ground_truth is None:
            breeze[it.id], openai[it.id] = "<|answer|>這些工具都不適用。", "這些工具都不適用。"
            continue
        breeze[it.id] = "<|use_tool|>" + "".join(
            "<|tool_call_begin|> " + json.dumps({"name": n, "arguments": json.dumps(a, ensure_ascii=False)},
                                                 ensure_ascii=False) + "<|tool_call_end|>" for n, a in calls)
        openai[it.id] = [{n.replace(".", "_"): json.dumps(a, ensure_ascii=False)} for n, a in calls]
    _check_perfect(score_results(items, breeze, "decision-token"))
    _check_perfect(score_results(items, openai, "openai", underscore_to_dot=True))
