"""Decoders of model output: decision-token (Breeze-FC and Figure 1), pythonic, openai; think blocks."""

import json

import pytest

from raypipe.eval.decoders import DecodeError, decode, is_direct_answer, strip_think

pytestmark = pytest.mark.unit


def breeze(*calls, string_args=True):
    blocks = "".join(
        "<|tool_call_begin|> "
        + json.dumps({"name": n, "arguments": json.dumps(a) if string_args else a})
        + "<|tool_call_end|>"
        for n, a in calls
    )
    return "<|use_tool|>" + blocks


def test_decision_token_breeze_style_with_json_string_arguments():
    raw = breeze(("spotify.play", {"artist": "Taylor Swift", "duration": 20}),
                 ("spotify.play", {"artist": "泰勒絲", "duration": 15}))
    assert decode(raw, "decision-token") == [
        {"spotify.play": {"artist": "Taylor Swift", "duration": 20}},
        {"spotify.play": {"artist": "泰勒絲", "duration": 15}},
    ]


def test_decision_token_arguments_may_be_an_object():
    raw = breeze(("f", {"x": [1, 2]}), string_args=False)
    assert decode(raw, "decision-token") == [{"f": {"x": [1, 2]}}]


def test_decision_token_figure_1_style():
    assert decode('<|use_tool|>[f(a=1), mod.g(b="x")]', "decision-token") == [
        {"f": {"a": 1}}, {"mod.g": {"b": "x"}}]


def test_decision_token_answer_means_no_call():
    assert decode("<|answer|>我無法計算三角形面積。", "decision-token") == []
    assert is_direct_answer("<|answer|>我無法計算三角形面積。", "decision-token")


@pytest.mark.parametrize("raw", [
    "The area is 25.",  # no decision token
    "<|use_tool|><|tool_call_begin|> {\"name\": \"f\"",  # unterminated
    "<|use_tool|><|tool_call_begin|> not json<|tool_call_end|>",
    "<|use_tool|><|tool_call_begin|> {\"name\": \"f\", \"arguments\": \"{bad\"}<|tool_call_end|>",
    "<|use_tool|><|tool_call_begin|> {\"name\": \"f\", \"arguments\": \"[1]\"}<|tool_call_end|>",
    "<|use_tool|><|tool_call_begin|> {\"arguments\": {}}<|tool_call_end|>",
    "<|use_tool|><|tool_call_begin|> {\"name\": \"f\"}<|tool_call_end|> trailing words",
    "<|use_tool|>I will call f.",
    "<|answer|>ok<|use_tool|>[f(a=1)]",
    ["not", "text"],
])
def test_decision_token_malformed_output_is_a_decode_error(raw):
    with pytest.raises(DecodeError):
        decode(raw, "decision-token")


def test_think_blocks_are_stripped():
    raw = "<think>The user wants f.\n<|use_tool|> is needed</think>\n" + breeze(("f", {"a": 1}))
    assert decode(raw, "decision-token") == [{"f": {"a": 1}}]
    # the opening tag was in the prompt: everything up to </think> is reasoning
    assert decode("call f(a=2)?</think>[f(a=2)]", "pythonic") == [{"f": {"a": 2}}]
    assert strip_think("<think>a</think>b<think>c</think>d") == "bd"


def test_pythonic_forms():
    assert decode('[f(a=1), mod.sub.g(b="x")]', "pythonic") == [{"f": {"a": 1}}, {"mod.sub.g": {"b": "x"}}]
    assert decode("f(a=1)", "pythonic") == [{"f": {"a": 1}}]
    assert decode("f(a=1), g(b=2)", "pythonic") == [{"f": {"a": 1}}, {"g": {"b": 2}}]
    assert decode("```python\n[f(a=-3, b=3*4, c=2**10)]\n```", "pythonic") == [{"f": {"a": -3, "b": 12, "c": 1024}}]
    assert decode("[f(x=lambda_fn, y=g(1), z=h(k=2))]", "pythonic") == [
        {"f": {"x": "lambda_fn", "y": "g(1)", "z": {"h": {"k": 2}}}}]
    assert decode("[f(1, a=2)]", "pythonic") == [{"f": {"a": 2}}]  # positional ignored


def test_pythonic_never_executes_model_output(tmp_path):
    target = tmp_path / "pwned"
    raw = f"[f(a=__import__('os').system('touch {target}'), b=open('{target}', 'w'))]"
    decoded = decode(raw, "pythonic")
    assert not target.exists()
    assert decoded == [{"f": {"a": f"__import__('os').system('touch {target}')", "b": f"open('{target}', 'w')"}}]


@pytest.mark.parametrize("raw", ["The answer is 42.", "", "[1, 2]", "[f(a=1]", None])
def test_pythonic_malformed_output_is_a_decode_error(raw):
    with pytest.raises(DecodeError):
        decode(raw, "pythonic")


def test_pythonic_values_as_the_reference_decodes_them():
    # resolve_ast_by_type (gorilla model_handler/utils.py): tuples stay tuples, a unary operator
    # is -operand.value, so +5 is -5 and -(2*3) cannot be decoded
    assert decode("[f(p=(1, 2), a=+5, b=-5)]", "pythonic") == [{"f": {"p": (1, 2), "a": -5, "b": -5}}]
    assert decode("<|use_tool|>[f(p=(1, 2), a=+5)]", "decision-token") == [{"f": {"p": (1, 2), "a": -5}}]
    for raw in ["[f(a=-(2*3))]", "<|use_tool|>[f(a=-(2*3))]"]:
        with pytest.raises(DecodeError):
            decode(raw, "decision-token" if raw.startswith("<") else "pythonic")


def _simple(param_spec, acceptable, category="simple"):
    from raypipe.eval.bfcl_data import BfclItem

    spec = {"name": "f", "parameters": {"type": "dict", "properties": {"p": param_spec}, "required": ["p"]}}
    truth = None if category == "relevance" else [{"f": {"p": acceptable}}]
    return BfclItem(id=f"{category}_0", category=category, question=[], functions=[spec], ground_truth=truth)


@pytest.mark.parametrize("raw, param_spec, acceptable, error_type", [
    # a tuple passes only for a `tuple` parameter (the checker turns it into a list there)
    ("f(p=(1, 2))", {"type": "array", "items": {"type": "integer"}}, [[1, 2]], "type_error:simple"),
    ("f(p=(1, 2))", {"type": "tuple", "items": {"type": "integer"}}, [[1, 2]], None),
    ("f(p=[1, 2])", {"type": "array", "items": {"type": "integer"}}, [[1, 2]], None),
    ("f(p=[(1, 2)])", {"type": "array", "items": {"type": "array"}}, [[[1, 2]]], "type_error:nested"),
    ("f(p={'k': (1, 2)})", {"type": "dict"}, [{"k": [[1, 2]]}], "value_error:dict_value"),
    # +5 is -5 in the reference
    ("f(p=+5)", {"type": "integer"}, [5], "value_error:others"),
    ("f(p=+5)", {"type": "integer"}, [-5], None),
    # **kw is the parameter None in the reference
    ("f(p=1, **kw)", {"type": "integer"}, [1], "simple_function_checker:unexpected_param"),
    # -(2*3) fails to decode in the reference; 2*-3 and -2*3 are evaluated
    ("f(p=-(2*3))", {"type": "integer"}, [-6], "ast_decoder:decoder_failed"),
    ("f(p=-2*3)", {"type": "integer"}, [-6], None),
])
def test_pythonic_verdicts_match_the_reference(raw, param_spec, acceptable, error_type):
    from raypipe.eval.scoring import score_item

    outcome = score_item(_simple(param_spec, acceptable), raw, "pythonic")
    assert (outcome["valid"], outcome.get("error_type") or None) == (error_type is None, error_type)


def test_relevance_verdicts_of_the_unary_quirk():
    from raypipe.eval.scoring import score_item

    spec = {"type": "integer"}
    assert score_item(_simple(spec, None, "relevance"), "f(p=-(2*3))", "pythonic")["valid"]  # not decoded
    assert not score_item(_simple(spec, None, "relevance"), "f(p=+5)", "pythonic")["valid"]
    assert not score_item(_simple(spec, None, "relevance"), "f(**kw)", "pythonic")["valid"]  # decoded there


def test_report_stays_json_with_tuple_dict_keys():
    from raypipe.eval.scoring import score_results

    item = _simple({"type": "dict"}, [{"k": [1]}])
    report = score_results([item], {item.id: "f(p={(1, 2): 3})"}, "pythonic")
    [error] = report["categories"]["simple"]["errors"]
    assert (error["error_type"], error["errors"]) == ("value_error:dict_key", ["Unexpected parameter: '(1, 2)'."])
    assert json.loads(json.dumps(report))["categories"]["simple"]["errors"][0]["decoded"] == [{"f": {"p": {"(1, 2)": 3}}}]


def test_openai_name_to_json_string_list():
    raw = [{"math_factorial": '{"number": 5}'}, {"get_weather": "{}"}]
    assert decode(raw, "openai") == [{"math_factorial": {"number": 5}}, {"get_weather": {}}]


def test_openai_tool_call_objects():
    raw = [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
           {"name": "g", "arguments": {"b": 2}}]
    assert decode(raw, "openai") == [{"f": {"a": 1}}, {"g": {"b": 2}}]
    assert decode([], "openai") == []


@pytest.mark.parametrize("raw", [
    "I can help with that.",  # the model answered in text
    [{"f": "{not json"}],
    [{"f": "[1, 2]"}],
    [{}],
    ["f"],
    {"f": "{}"},
])
def test_openai_malformed_output_is_a_decode_error(raw):
    with pytest.raises(DecodeError):
        decode(raw, "openai")


def test_unknown_decoder():
    with pytest.raises(ValueError):
        decode("x", "xml")


def test_direct_answer_detection_for_the_strict_relevance_variant():
    assert is_direct_answer("I can't compute that with these tools.", "openai")
    assert not is_direct_answer("", "openai")
    assert not is_direct_answer([], "openai")
    assert is_direct_answer("抱歉，我無法回答。", "pythonic")
    assert not is_direct_answer("[f(a=1", "pythonic")  # a broken call attempt is not an answer
    assert not is_direct_answer("```python\nf(", "pythonic")
    assert not is_direct_answer("   ", "pythonic")
    assert not is_direct_answer("<|answer|>", "pythonic")  # another format's token
    assert is_direct_answer("<think>no tool fits</think><|answer|>No tool fits.", "decision-token")
    assert not is_direct_answer("<|answer|>", "decision-token")  # no text
    assert not is_direct_answer("No tool fits.", "decision-token")  # no decision token


def test_content_before_the_calls_is_skipped():
    assert decode('<|use_tool|>Let me look that up.\n[f(a=1)]', "decision-token") == [{"f": {"a": 1}}]
    raw = '<|use_tool|>Checking.\n<|tool_call_begin|>{"name": "f", "arguments": {"a": 1}}<|tool_call_end|>'
    assert decode(raw, "decision-token") == [{"f": {"a": 1}}]
    # the pythonic decoder stays as strict as the reference's
    with pytest.raises(DecodeError):
        decode("Let me look that up.\n[f(a=1)]", "pythonic")


def test_json_decoder_reads_call_blocks_without_a_decision_token():
    raw = 'Sure.\n<|tool_call_begin|>{"name": "f", "arguments": "{\\"a\\": 1}"}<|tool_call_end|>'
    assert decode(raw, "json") == [{"f": {"a": 1}}]
    with pytest.raises(DecodeError):
        decode("No tool fits this request.", "json")
    assert is_direct_answer("No tool fits this request.", "json")
    assert not is_direct_answer('<|tool_call_begin|>{"name": "f"}', "json")


@pytest.mark.parametrize("preset", ["tools", "tools-dt", "tools-dt-cot", "tools-dt-json", "system", "system-dt",
                                    "system-dt-cot"])
def test_every_raypipe_format_decodes_what_it_renders(preset):
    from raypipe.schema import Message, ToolCall
    from raypipe.templates.formats import get_format
    from raypipe.templates.render import assistant_body

    fmt = get_format(preset)
    decoder = "decision-token" if fmt.decision_token else ("json" if fmt.call_style == "json" else "pythonic")
    calls = [ToolCall("math.hypot", {"x": 3, "y": 4.5}), ToolCall("geo.find", {"city": "臺北", "tags": ["a", "b"]})]
    call_message = Message("assistant", tool_calls=calls, reasoning="Two lookups are needed.")
    expected = [{"math.hypot": {"x": 3, "y": 4.5}}, {"geo.find": {"city": "臺北", "tags": ["a", "b"]}}]
    assert decode(assistant_body(call_message, fmt), decoder) == expected
    if fmt.decision_token:
        with_content = Message("assistant", content="Looking both up.", tool_calls=calls)
        assert decode(assistant_body(with_content, fmt), decoder) == expected
    answer = assistant_body(Message("assistant", content="這些工具無法回答。", reasoning="Nothing fits."), fmt)
    try:
        assert decode(answer, decoder) == []
    except DecodeError:
        pass  # without a decision token a text answer is not a call list: no call either way
    assert is_direct_answer(answer, decoder)


def test_absurd_nesting_is_a_decode_error_not_a_crash():
    deep = "[" * 100000 + "]" * 100000
    with pytest.raises(DecodeError):
        decode([{"f": '{"a": ' + deep + "}"}], "openai")
    with pytest.raises(DecodeError):
        decode("<|use_tool|>[f(a=" + deep + ")]", "decision-token")
