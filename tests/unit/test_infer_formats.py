"""The decoder `eval bfcl` picks for a format reads what a model trained on that format writes:
gold answers rendered with raypipe's templates score 100% on real BFCL items (and a direct
answer scores as relevance-correct)."""

import pytest

from raypipe.infer.bfcl import decoder_for_format

pytestmark = pytest.mark.unit

TOOL_FORMATS = ["tools", "tools-dt", "tools-dt-cot", "tools-dt-json", "system", "system-dt", "system-dt-cot"]


def _gold_call(calls: dict):
    from raypipe.schema import ToolCall

    (name, params), = calls.items()
    return ToolCall(name=name, arguments=_first_values(params))


def _first_values(params: dict) -> dict:
    """The first acceptable value of each parameter; nested dicts list acceptable values per key."""
    args = {}
    for param, values in params.items():
        given = [v for v in values if v != ""]
        if given:
            args[param] = _first_values(given[0]) if isinstance(given[0], dict) else given[0]
    return args


@pytest.mark.parametrize("preset", TOOL_FORMATS)
def test_gold_answers_in_each_format_score_full_marks(bfcl_data, preset):
    from raypipe.eval.bfcl_data import load_bfcl
    from raypipe.eval.scoring import score_results
    from raypipe.schema import Message
    from raypipe.templates import get_format
    from raypipe.templates.render import assistant_body

    fmt = get_format(preset)
    items = [i for i in load_bfcl(bfcl_data, "zhtw", ["simple", "multiple_function", "relevance"])
             if int(i.id.rsplit("_", 1)[1]) < 15]
    results = {}
    for item in items:
        if item.ground_truth is None:
            message = Message(role="assistant", content="這些函式都不適用。", reasoning="none fits")
        else:
            message = Message(role="assistant", tool_calls=[_gold_call(c) for c in item.ground_truth],
                              reasoning="pick the function")
        results[item.id] = assistant_body(message, fmt)
    report = score_results(items, results, decoder_for_format(fmt))
    for category, entry in report["categories"].items():
        assert entry["accuracy"] == 1.0, (preset, category, entry["errors"][:1])


def test_mtbench_reply_is_the_answer_text_without_format_markup():
    from raypipe.infer.mtbench import reply_text
    from raypipe.templates import get_format

    assert reply_text("<|answer|>Hello there", get_format("tools-dt")) == "Hello there"
    assert reply_text("<|answer|><think>plan</think>Hi", get_format("tools-dt-cot")) == "Hi"
    assert reply_text("just text", get_format("none")) == "just text"
    # a call where an answer was due is shown to the judge as written, not hidden
    call = '<|use_tool|>[get_weather(city="Taipei")]'
    assert reply_text(call, get_format("tools-dt")) == call
