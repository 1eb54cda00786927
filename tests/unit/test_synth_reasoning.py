import json

import pytest

from raypipe.stages.reasoning import ReasoningStage

from raypipe.schema import Message, Sample, ToolCall
from raypipe.synth import reasoning

pytestmark = pytest.mark.unit

FUNCS = [
    {"name": "weather_api.get_current_weather", "description": "Current weather.",
     "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}},
    {"name": "get_weather_forecast", "description": "Forecast.",
     "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}},
    {"name": "get_current_weather_alerts", "description": "Alerts.",
     "parameters": {"type": "object", "properties": {}}},
]


def sample(**kw) -> Sample:
    msgs = [
        Message("system", "Be brief."),
        Message("user", "Weather in Taipei?"),
        Message("assistant", None, [ToolCall("weather_api.get_current_weather", {"location": "Taipei"})]),
        Message("tool", '{"t": 31}', name="weather_api.get_current_weather"),
        Message("assistant", "31 degrees."),
        Message("user", "And Tainan, and the forecast for Tainan?"),
        Message("assistant", None, [
            ToolCall("weather_api.get_current_weather", {"location": "Tainan"}),
            ToolCall("get_weather_forecast", {"location": "Tainan"}),
        ]),
    ]
    return Sample(functions=FUNCS, messages=msgs, **kw)


def test_call_turns_finds_assistant_turns_with_calls_and_skips_reasoned_ones():
    s = sample()
    assert reasoning.call_turns(s) == [2, 6]
    s.messages[2].reasoning = "already there"
    assert reasoning.call_turns(s) == [6]
    assert reasoning.call_turns(s, overwrite=True) == [2, 6]


def test_prompt_has_history_functions_target_calls_and_examples():
    s = sample()
    msgs = reasoning.build_reasoning_messages(s, 6)
    assert [m["role"] for m in msgs] == ["system", "user"]
    text = msgs[1]["content"]
    task = text.split("## Your task", 1)[1]
    # history up to (not including) the target turn, tagged by role
    assert "[USER] And Tainan, and the forecast for Tainan?" in task
    assert "[ASSISTANT] 31 degrees." in task
    assert '[TOOL RESULT weather_api.get_current_weather] {"t": 31}' in task
    # the functions and exactly the target turn's calls
    assert '"name": "get_current_weather_alerts"' in task
    calls = task.split("makes exactly these calls:\n```json\n", 1)[1].split("```", 1)[0]
    assert json.loads(calls) == [
        {"name": "weather_api.get_current_weather", "arguments": {"location": "Tainan"}},
        {"name": "get_weather_forecast", "arguments": {"location": "Tainan"}},
    ]
    # few-shot examples with their JSON answers come first, the JSON key is asked for
    assert text.index("## Example 1") < text.index("## Example 2") < text.index("## Your task")
    assert '{"reason":' in text.split("## Your task")[0]
    assert '{"reason": "..."}' in text
    assert "## Example" not in reasoning.build_reasoning_messages(s, 6, few_shot=False)[1]["content"]


def test_prompt_for_first_turn_shows_only_earlier_history():
    task = reasoning.build_reasoning_messages(sample(), 2)[1]["content"].split("## Your task")[1]
    assert "Tainan" not in task and "[USER] Weather in Taipei?" in task


def test_prompt_refuses_turn_without_calls():
    with pytest.raises(ValueError, match="messages\\[4\\]"):
        reasoning.build_reasoning_messages(sample(), 4)


def test_few_shot_examples_pass_their_own_check():
    for ex in reasoning.FEW_SHOT:
        s = Sample(functions=ex["functions"], messages=[*ex["history"], Message("assistant", None, ex["calls"])])
        assert reasoning.check_reason({"reason": ex["reason"]}, s, len(s.messages) - 1) == []


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("not json object", 'JSON object with a string field "reason"'),
        ({"why": "x"}, 'string field "reason"'),
        ({"reason": 3}, 'string field "reason"'),
        ({"reason": "   "}, "the reason is empty"),
        ({"reason": "Call it."}, "too short"),
        ({"reason": "The user wants the weather in Tainan, so we look it up for them."}, "names none of the called"),
        ({"reason": "The user wants Tainan's forecast: get_weather_forecast with location Tainan."},
         "does not name the called function(s) weather_api.get_current_weather"),
        ({"reason": "Use get_current_weather and get_weather_forecast for Tainan; "
                    "get_current_weather_alerts is not needed."},
         "does not call: get_current_weather_alerts"),
    ],
)
def test_bad_reasons_are_rejected_with_reason(answer, expected):
    problems = reasoning.check_reason(answer, sample(), 6)
    assert any(expected in p for p in problems), problems


def test_good_reason_accepted_with_dotted_short_name_and_no_false_prefix_match():
    reason = ("The user asks for the current weather and the forecast in Tainan, so get_current_weather "
              "is called with location 'Tainan' and get_weather_forecast with the same location.")
    # `get_current_weather` (short form of the dotted name) is not read as `get_current_weather_alerts`
    assert reasoning.check_reason({"reason": reason}, sample(), 6) == []


def test_only_one_function_needed_when_not_requiring_all():
    answer = {"reason": "The user wants the forecast for Tainan, so get_weather_forecast is used."}
    assert reasoning.check_reason(answer, sample(), 6, require_all_functions=False) == []


def test_with_reasons_attaches_to_turns_and_records_lineage():
    s = sample(source="src", meta={"k": 1})
    out = reasoning.with_reasons(s, {2: " first ", 6: "second"})
    assert [m.reasoning for m in out.messages] == [None, None, "first", None, None, None, "second"]
    assert out.id != s.id and out.lineage[-1].stage == "synth_reasoning"
    assert out.lineage[-1].parent_id == s.id and out.source == "src" and out.meta == {"k": 1}
    assert s.messages[2].reasoning is None  # the parent is not modified


def test_dry_run_requests_one_per_unexplained_call_turn():
    requests_of = (lambda s: ReasoningStage(reasoning.ReasoningConfig(inputs=["x"], out="o")).requests(s.to_row()))
    s = sample()
    reqs = requests_of(s)
    # stages see rows (specs stored as canonical JSON): compare with the row's own rendering
    assert len(reqs) == 2 and reqs[1] == reasoning.build_reasoning_messages(Sample.from_row(s.to_row()), 6)
    s.messages[2].reasoning = "done"
    assert len(requests_of(s)) == 1
    no_calls = Sample(functions=[], messages=[Message("user", "hi"), Message("assistant", "hello")])
    assert requests_of(no_calls) == []
