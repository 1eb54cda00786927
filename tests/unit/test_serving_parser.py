"""The shared tool-call parser: lenient mode, streaming, OpenAI messages, transformers' reader.

The vLLM plugin is a thin adapter over exactly these pieces (tests/gpu/test_serving_vllm_plugin.py
runs it where vLLM is installed): `parse_completion(strict=False)` for non-streaming answers and
`ToolCallStream` for streaming ones. The property tests check what the plugin promises: for every
format and every way of cutting a generation into deltas, the streamed pieces add up to the
non-streaming result.
"""

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raypipe.schema import Message, ToolCall
from raypipe.serving import ToolCallStream, format_from_vocab, to_openai_message
from raypipe.templates import PRESETS, ParseError, get_format, parse_completion
from raypipe.templates.render import assistant_body

pytestmark = pytest.mark.unit

WEATHER = ToolCall("get_weather", {"city": "台北", "days": [1, 2], "unit": None})
DOTTED = ToolCall("math.factorial", {"number": 5})
UNDERSCORE = ToolCall("math_factorial", {"number": -5, "exact": True})


def completion(message: Message, fmt) -> str:
    return assistant_body(message, get_format(fmt)) + "<|im_end|>"


# -- the formats the issue lists: every one parses, special tokens kept or not -------------------


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_format_parses_dotted_underscore_and_parallel_calls_with_content(name):
    message = Message("assistant", "Let me look that up.", tool_calls=[DOTTED, UNDERSCORE, WEATHER],
                      reasoning="Two lookups are needed.")
    parsed = parse_completion(completion(message, name), name, strict=False)
    assert parsed.calls == [DOTTED, UNDERSCORE, WEATHER]
    assert parsed.content == "Let me look that up."  # text before the calls is kept as content
    fmt = get_format(name)
    assert parsed.reasoning == ("Two lookups are needed." if fmt.reasoning else None)
    assert parsed.decision == ("use_tool" if fmt.decision_token else None)


@pytest.mark.parametrize("name", ["tools-dt", "tools-dt-cot", "system-dt", "tools-dt-json"])
def test_lenient_mode_reads_text_whose_special_tokens_were_stripped(name):
    """vLLM's default skip_special_tokens=True drops the Decision Token: calls are still found."""
    text = completion(Message("assistant", None, tool_calls=[DOTTED]), name)
    stripped = text.replace("<|use_tool|>", "").replace("<|im_end|>", "")
    if get_format(name).call_style == "json":
        stripped = text  # the call-block tokens are what the JSON style needs; kept by the plugin
    assert parse_completion(stripped, name, strict=False).calls == [DOTTED]
    with pytest.raises(ParseError):
        parse_completion(stripped.replace("<|use_tool|>", ""), name)  # strict: the token is required


def test_answers_are_content_without_decision_token_or_stop_tokens():
    parsed = parse_completion("<|answer|>It is 30 degrees.<|im_end|>\n<|endoftext|>", "tools-dt", strict=False)
    assert (parsed.decision, parsed.content, parsed.calls) == ("answer", "It is 30 degrees.", [])


@pytest.mark.parametrize(
    "text, name, content",
    [
        ("<|use_tool|>[f(a=1), oops]", "tools-dt", "[f(a=1), oops]"),
        ("<|use_tool|>I will call f", "tools-dt", "I will call f"),
        ("[f(a=1)", "tools", "[f(a=1)"),
        ("Sure.\n[f(a=1) g(b=2)]", "tools", "Sure.\n[f(a=1) g(b=2)]"),
        ('<|use_tool|><|tool_call_begin|>{"name": "f"<|tool_call_end|>', "tools-dt-json",
         '<|tool_call_begin|>{"name": "f"<|tool_call_end|>'),
    ],
)
def test_malformed_calls_are_content_in_lenient_mode_and_errors_in_strict_mode(text, name, content):
    parsed = parse_completion(text, name, strict=False)
    assert parsed.calls == [] and parsed.content == content
    with pytest.raises(ParseError):
        parse_completion(text, name)


def test_json_calls_before_a_malformed_block_are_kept_and_the_rest_is_content():
    text = ('<|use_tool|><|tool_call_begin|>{"name": "f", "arguments": {"a": 1}}<|tool_call_end|>'
            '<|tool_call_begin|>{"name": oops}<|tool_call_end|>')
    parsed = parse_completion(text, "tools-dt-json", strict=False)
    assert parsed.calls == [ToolCall("f", {"a": 1})]
    assert parsed.content == '<|tool_call_begin|>{"name": oops}<|tool_call_end|>'


def test_text_after_a_call_list_is_content_in_lenient_mode():
    parsed = parse_completion("[f(a=1)]\nDone.", "tools", strict=False)
    assert parsed.calls == [ToolCall("f", {"a": 1})] and parsed.content == "Done."
    with pytest.raises(ParseError, match="text after"):
        parse_completion("[f(a=1)]\nDone.", "tools")


def test_a_list_of_numbers_or_code_in_an_answer_is_content():
    for text in ("[1, 2, 3]", "Results:\n[1] see below", "```python\nprint([1])\n```"):
        parsed = parse_completion(text, "tools", strict=False)
        assert parsed.calls == [] and parsed.content == text


# -- streaming: deltas add up to the non-streaming result -----------------------------------------


def stream_in_pieces(text: str, fmt, cuts: list[int]):
    stream = ToolCallStream(fmt)
    reasoning, content, calls = "", "", []
    bounds = [0, *sorted(set(cuts)), len(text)]
    for a, b in zip(bounds, bounds[1:]):
        delta = stream.feed(text[a:b])
        reasoning, content = reasoning + delta.reasoning, content + delta.content
        calls += [c for _, c in delta.calls]
        assert [i for i, _ in delta.calls] == list(range(len(calls) - len(delta.calls), len(calls)))
    end = stream.finish()
    return reasoning + end.reasoning, content + end.content, calls + [c for _, c in end.calls]


TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="<[`\\"), max_size=12)
CALL = st.builds(ToolCall, name=st.sampled_from(["f", "math.factorial", "get_weather", "a_b.c_d"]),
                 arguments=st.dictionaries(st.sampled_from(["x", "city", "n_2"]),
                                           st.none() | st.integers(-99, 99) | TEXT | st.lists(st.integers(), max_size=2),
                                           max_size=3))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(PRESETS)), calls=st.lists(CALL, max_size=3),
       content=st.none() | TEXT.map(str.strip), reasoning=st.none() | TEXT.map(str.strip),
       seed=st.integers(0, 10**6), junk=st.sampled_from(["", "\n", "<|endoftext|>", "\nDone.", "[x"]))
def test_streamed_deltas_add_up_to_the_non_streaming_result(name, calls, content, reasoning, seed, junk):
    fmt = get_format(name)
    text = assistant_body(Message("assistant", content, tool_calls=calls, reasoning=reasoning), fmt) + junk
    whole = parse_completion(text, fmt, strict=False)
    rng = random.Random(seed)
    cuts = [rng.randrange(len(text) + 1) for _ in range(rng.randrange(0, 12))]
    if rng.random() < 0.3:
        cuts = list(range(len(text)))  # one character at a time
    reasoning_s, content_s, calls_s = stream_in_pieces(text, fmt, cuts)
    assert calls_s == whole.calls
    assert content_s == (whole.content or "")
    assert reasoning_s == (whole.reasoning or "")


def test_calls_stream_as_soon_as_each_is_complete_and_content_waits_for_ambiguity():
    stream = ToolCallStream("tools-dt-json")
    assert not stream.feed("<|use")
    assert stream.feed("_tool|>Checking").content == "Checking"
    assert not stream.feed(" <|tool_call_b")  # may be the start of a call block: held back
    delta = stream.feed('egin|>{"name": "f", "arguments": {"a": 1}}<|tool_call_end|>')
    assert delta.calls == [(0, ToolCall("f", {"a": 1}))] and delta.content == " "  # content is "Checking "
    delta = stream.feed('<|tool_call_begin|>{"name": "g", "arguments": {}}<|tool_call_end|><|im_end|>')
    assert delta.calls == [(1, ToolCall("g", {}))]
    assert not stream.finish()

    stream = ToolCallStream("tools")
    assert stream.feed("Sure.\n[get_wea").content == "Sure."
    assert not stream.feed('ther(city="x")')
    assert stream.feed("]").calls == [(0, ToolCall("get_weather", {"city": "x"}))]


def test_a_list_that_never_closes_is_released_as_content_at_the_end():
    stream = ToolCallStream("tools")
    assert stream.feed("[f(a=1").content == ""
    end = stream.finish()
    assert end.content == "[f(a=1" and end.calls == []


def test_reasoning_streams_before_the_calls():
    stream = ToolCallStream("tools-dt-cot")
    assert stream.feed("<|use_tool|><think>Need the wea").reasoning == "Need the wea"
    assert stream.feed("ther.</thi").reasoning == "ther."
    delta = stream.feed('nk>[get_weather(city="x")]')
    assert delta.calls == [(0, ToolCall("get_weather", {"city": "x"}))] and delta.reasoning == ""


# -- OpenAI wire forms -------------------------------------------------------------------------


def test_to_openai_message_has_ids_and_string_arguments():
    parsed = parse_completion(completion(Message("assistant", "One moment.", tool_calls=[WEATHER, DOTTED],
                                                  reasoning="why"), "tools-dt-cot"), "tools-dt-cot")
    message = to_openai_message(parsed)
    assert message["role"] == "assistant" and message["content"] == "One moment."
    assert message["reasoning_content"] == "why"
    ids = [c["id"] for c in message["tool_calls"]]
    assert len(set(ids)) == 2 and all(i.startswith("call_") for i in ids)
    assert [(c["type"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in message["tool_calls"]] == [("function", "get_weather", WEATHER.arguments),
                                                ("function", "math.factorial", {"number": 5})]
    assert all(isinstance(c["function"]["arguments"], str) for c in message["tool_calls"])
    # the openai client's own model accepts it as an assistant message
    from openai.types.chat import ChatCompletionMessage

    assert ChatCompletionMessage.model_validate(message).tool_calls[0].function.name == "get_weather"


def test_to_openai_message_of_an_answer_and_of_calls_without_content():
    answer = to_openai_message(parse_completion("<|answer|>Hi<|im_end|>", "tools-dt"))
    assert answer == {"role": "assistant", "content": "Hi"}
    only_calls = to_openai_message(parse_completion("<|use_tool|>[f(a=1)]", "tools-dt"))
    assert only_calls["content"] is None and len(only_calls["tool_calls"]) == 1
    kept = ToolCall("f", {}, id="call_fixed")
    from raypipe.templates.parse import ParsedCompletion

    assert to_openai_message(ParsedCompletion(None, calls=[kept]))["tool_calls"][0]["id"] == "call_fixed"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_format_from_vocab_reads_the_parsing_side_of_every_preset(name):
    from raypipe.templates import special_tokens

    fmt = get_format(name)
    found = format_from_vocab({t: i for i, t in enumerate(special_tokens(fmt))})
    assert (found.decision_token, found.reasoning, found.call_style) == (
        fmt.decision_token, fmt.reasoning, fmt.call_style)
