import json
import subprocess
import sys
from pathlib import Path

import pytest

from raypipe.data import IF_JSONL, SAMPLES_JSONL
from raypipe.errors import RaypipeError
from raypipe.schema import Message, Sample, ToolCall
from raypipe.templates import (
    PRESETS,
    FormatConfig,
    ParseError,
    get_format,
    parse_completion,
    prompt_and_target,
    render,
    render_prompt,
    render_spans,
    special_tokens,
)
from raypipe.templates.render import assistant_body

pytestmark = pytest.mark.unit

EXTRA = Path(__file__).resolve().parents[1] / "golden" / "templates" / "extra_samples.jsonl"

WEATHER = {
    "name": "get_weather",
    "description": "Weather now.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def all_samples() -> list[Sample]:
    return [
        Sample.from_dict(json.loads(line))
        for path in (SAMPLES_JSONL, IF_JSONL, EXTRA)
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def weather_sample(system: str | None = "Be brief.") -> Sample:
    messages = [Message("system", system)] if system else []
    messages += [
        Message("user", "Weather in Taipei?"),
        Message("assistant", tool_calls=[ToolCall("get_weather", {"city": "Taipei"})]),
        Message("tool", '{"temp": 30}', name="get_weather"),
        Message("assistant", "30 degrees."),
    ]
    return Sample(functions=[WEATHER], messages=messages)


def test_tools_dt_layout_exactly():
    spec = '[{"description": "Weather now.", "name": "get_weather", "parameters": {"properties": {"city": {"type": "string"}}, "type": "object"}}]'
    assert render(weather_sample(), "tools-dt") == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        f"<|im_start|>tools\n{spec}<|im_end|>\n"
        "<|im_start|>user\nWeather in Taipei?<|im_end|>\n"
        '<|im_start|>assistant\n<|use_tool|>[get_weather(city="Taipei")]<|im_end|>\n'
        '<|im_start|>tool\n{"temp": 30}<|im_end|>\n'
        "<|im_start|>assistant\n<|answer|>30 degrees.<|im_end|>\n"
    )


def test_system_format_puts_instructions_and_functions_in_the_system_turn():
    text = render(weather_sample(), "system")
    system_turn = text.split("<|im_end|>")[0]
    assert system_turn.startswith("<|im_start|>system\nBe brief.\n\nYou can call")
    assert '"name": "get_weather"' in system_turn
    assert "<|im_start|>tools" not in text
    # without a system message the format still gets its system turn
    assert render(weather_sample(system=None), "system").startswith("<|im_start|>system\nYou can call")


def test_no_functions_means_no_tools_or_instruction_block():
    sample = Sample(functions=[], messages=[Message("user", "Hi"), Message("assistant", "Hello")])
    for name in PRESETS:
        text = render(sample, name)
        assert "tools\n" not in text and "You can call" not in text
    assert render(sample, "tools-dt").endswith("<|im_start|>assistant\n<|answer|>Hello<|im_end|>\n")


def test_none_format_hides_functions_but_keeps_calls():
    text = render(weather_sample(), "none")
    assert "get_weather(city=" in text and '"description"' not in text


def test_reasoning_only_in_cot_formats():
    sample = weather_sample()
    sample.messages[2].reasoning = "Need the weather tool."
    assert "<think>Need the weather tool.</think>[get_weather" in render(sample, "tools-dt-cot")
    assert "<think>" not in render(sample, "tools-dt")


def test_trained_spans_are_assistant_bodies_with_im_end():
    spans = render_spans(weather_sample().messages, [WEATHER], get_format("tools-dt"))
    trained = [s.text for s in spans if s.trained]
    assert trained == ['<|use_tool|>[get_weather(city="Taipei")]<|im_end|>', "<|answer|>30 degrees.<|im_end|>"]
    assert [s.turn for s in spans if s.trained] == [0, 1]


def test_render_prompt_ends_with_assistant_header_and_matches_render():
    sample = weather_sample()
    prompt = render_prompt(sample.messages[:2], sample.functions, "tools-dt")
    assert prompt.endswith("<|im_start|>user\nWeather in Taipei?<|im_end|>\n<|im_start|>assistant\n")
    assert render(sample, "tools-dt").startswith(prompt)
    # messages as plain dicts work too (what inference has)
    dicts = [m.to_dict() for m in sample.messages[:2]]
    assert render_prompt(dicts, sample.functions, "tools-dt") == prompt


def test_prompt_and_target_split_at_last_assistant_turn():
    prompt, target = prompt_and_target(weather_sample(), "tools-dt")
    assert target == "<|answer|>30 degrees.<|im_end|>"
    assert prompt + target + "\n" == render(weather_sample(), "tools-dt")


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_assistant_turn_of_the_sample_data_parses_back(name):
    fmt = get_format(name)
    for sample in all_samples():
        for message in (m for m in sample.messages if m.role == "assistant"):
            parsed = parse_completion(assistant_body(message, fmt) + "<|im_end|>", fmt)
            assert [(c.name, c.arguments) for c in parsed.calls] == [
                (c.name, c.arguments) for c in message.tool_calls
            ], sample.id
            if fmt.decision_token:
                assert parsed.decision == ("use_tool" if message.tool_calls else "answer")
            if fmt.reasoning and message.reasoning:
                assert parsed.reasoning == message.reasoning
            if message.content and not message.tool_calls:
                assert parsed.content == message.content.strip()


def test_parse_tolerates_whitespace_and_stop_tokens():
    parsed = parse_completion('  <|use_tool|>[f(a=1)]\n<|im_end|><|endoftext|>garbage', "tools-dt")
    assert parsed.decision == "use_tool" and parsed.calls == [ToolCall("f", {"a": 1})]
    assert parse_completion("<|answer|>Hi there<|endoftext|>", "tools-dt").content == "Hi there"


def test_decision_only_answer():
    parsed = parse_completion("<|answer|><|im_end|>", "tools-dt")
    assert parsed.decision == "answer" and parsed.content == "" and parsed.calls == []


def test_content_before_calls_round_trips():
    message = Message("assistant", "Let me check [quickly].", tool_calls=[ToolCall("f", {"a": [1]})])
    parsed = parse_completion(assistant_body(message, get_format("tools")), "tools")
    assert parsed.content == "Let me check [quickly]." and parsed.calls == [ToolCall("f", {"a": [1]})]


@pytest.mark.parametrize(
    "text, name",
    [
        ("[f(a=1)]", "tools-dt"),  # Decision Token missing
        ("<|use_tool|>I will call f", "tools-dt"),
        ("<|use_tool|>[]", "tools-dt"),
        ("<|use_tool|>[f(a=1)", "tools-dt"),
        ("<|use_tool|><think>unclosed [f(a=1)]", "tools-dt-cot"),
        ("[f(a=1), oops]", "tools"),
        ('<|use_tool|><|tool_call_begin|>{"name": "f"<|tool_call_end|>', "tools-dt-json"),
        ('<|use_tool|><|tool_call_begin|>{"name": "f", "arguments": {}}', "tools-dt-json"),
        ('<|use_tool|><|tool_call_begin|>{"name": "f"}<|tool_call_end|> junk', "tools-dt-json"),
        ('<|use_tool|><|tool_call_begin|>{"name": "f", "arguments": [1]}<|tool_call_end|>', "tools-dt-json"),
    ],
)
def test_parse_is_strict_about_everything_else(text, name):
    with pytest.raises(ParseError):
        parse_completion(text, name)


def test_no_decision_token_format_tells_answers_from_calls():
    assert parse_completion("Sure, f(x) is a function.", "tools").calls == []
    assert parse_completion("[f(a=2)]", "tools").calls == [ToolCall("f", {"a": 2})]
    assert parse_completion("[f(a=2)]", "tools").decision is None


def test_code_in_an_answer_is_not_a_malformed_call():
    text = "Use this:\n```python\nprint(1)\n```"
    assert parse_completion("```python\nprint(1)\n```", "tools").content == "```python\nprint(1)\n```"
    assert parse_completion(text, "tools").calls == []
    assert parse_completion("```python\n[f(a=1)]\n```", "tools").calls == [ToolCall("f", {"a": 1})]


def test_json_style_accepts_arguments_as_json_string():
    text = '<|use_tool|><|tool_call_begin|>{"name": "f", "arguments": "{\\"a\\": 1}"}<|tool_call_end|>'
    assert parse_completion(text, "tools-dt-json").calls == [ToolCall("f", {"a": 1})]


def test_format_config_validation_and_presets():
    assert get_format("tools-dt") == FormatConfig()
    assert get_format({"functions_in": "system"}).functions_in == "system"
    with pytest.raises(RaypipeError, match="unknown format"):
        get_format("nope")
    with pytest.raises(RaypipeError, match="functions_in.*call_style"):
        FormatConfig(functions_in="user", call_style="xml")
    with pytest.raises(RaypipeError, match="unknown keys"):
        get_format({"decision_tokens": True})


def test_special_tokens_per_format():
    assert special_tokens(get_format("tools")) == ["<|im_start|>", "<|im_end|>"]
    assert special_tokens(get_format("tools-dt-cot")) == [
        "<|im_start|>", "<|im_end|>", "<|answer|>", "<|use_tool|>", "<think>", "</think>"
    ]
    assert "<|tool_call_begin|>" in special_tokens(get_format("tools-dt-json"))


def test_render_is_the_same_for_jsonl_and_parquet_key_order():
    sample = all_samples()[0]
    for name in PRESETS:
        assert render(Sample.from_row(sample.to_row()), name) == render(sample, name)


def test_import_is_light():
    code = "import sys, raypipe.templates; print(sorted(m for m in ('torch', 'ray', 'transformers', 'jinja2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
