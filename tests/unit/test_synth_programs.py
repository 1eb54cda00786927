"""The engine programs of the reasoning and translation stages, with a fake client (the real
client and server are exercised in tests/integration/test_synth_pipelines.py)."""

import asyncio
import json

import pytest

from raypipe.llm.errors import RowError
from raypipe.schema import Message, Sample, ToolCall
from raypipe.stages.reasoning import ReasoningStage
from raypipe.stages.translate import TranslateStage
from raypipe.synth import engine, reasoning, translate

pytestmark = pytest.mark.unit

FUNCS = [{"name": "get_time", "description": "Time in a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def fc(city="Paris") -> Sample:
    return Sample(functions=FUNCS, messages=[
        Message("user", f"What time is it in {city} now?"),
        Message("assistant", None, [ToolCall("get_time", {"city": city})]),
    ])


class FakeClient:
    """Answers with `answers` in turn; applies `validate` like the real client (no re-asks)."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests = []

    async def chat_json(self, messages, validate=None):
        self.requests.append(messages)
        answer = self.answers.pop(0)
        if validate is not None:
            try:
                validate(answer)
            except ValueError as exc:
                raise RowError(f"validation error: {exc} (after 0 re-asks)") from None
        return answer


def run(program, sample, client):
    return asyncio.run(program(sample.to_row(), client))


def test_reasoning_program_attaches_reason_and_tags_failures_with_the_turn():
    program = ReasoningStage(reasoning.ReasoningConfig(inputs=["x"], out="o")).program
    out = Sample.from_row(run(program, fc(), FakeClient({"reason": "The user wants the time, so get_time with Paris."})))
    assert out.messages[1].reasoning.startswith("The user wants") and out.lineage[-1].parent_id == fc().id
    with pytest.raises(RowError, match=r"^validation error: the reason names none .* \[turn messages\[1\]\]$"):
        run(program, fc(), FakeClient({"reason": "Because the user asked about it."}))


def test_programs_reject_invalid_or_unusable_inputs_before_any_request():
    bad = fc()
    bad.messages[1].tool_calls[0].arguments = {"town": "Paris"}
    client = FakeClient()
    r_prog = ReasoningStage(reasoning.ReasoningConfig(inputs=["x"], out="o")).program
    t_prog = TranslateStage(translate.TranslateConfig(inputs=["x"], out="o")).program
    for prog in (r_prog, t_prog):
        with pytest.raises(RowError, match="input sample is invalid: messages\\[1\\].tool_calls\\[0\\].arguments"):
            run(prog, bad, client)
    no_call = Sample(functions=[], messages=[Message("user", "hi"), Message("assistant", "hello")])
    assert run(r_prog, no_call, client) == no_call.to_row()  # passes through by default
    strict = ReasoningStage(reasoning.ReasoningConfig(inputs=["x"], out="o", keep_without_calls=False)).program
    with pytest.raises(RowError, match="^no tool calls"):
        run(strict, no_call, client)
    zh = fc()
    zh.lang = "zh-TW"
    with pytest.raises(RowError, match="^already translated"):
        run(t_prog, zh, client)
    assert client.requests == []


def test_reasoning_program_passes_fully_explained_samples_through_unchanged():
    s = fc()
    s.messages[1].reasoning = "already"
    program = ReasoningStage(reasoning.ReasoningConfig(inputs=["x"], out="o")).program
    client = FakeClient()
    assert run(program, s, client) == s.to_row() and client.requests == []


def test_translate_program_joins_chunks_in_order_and_checks_the_output_sample():
    cfg = translate.TranslateConfig(inputs=["x"], out="o", max_chunk_chars=1)  # one turn per chunk
    s = fc("New York")

    def answer(turn):
        return {"messages": [turn]}

    user = {"role": "user", "content": "現在 New York 幾點？"}
    call = {"role": "assistant", "content": None, "tool_calls": [{"name": "get_time", "arguments": {"city": "紐約"}}]}
    out = Sample.from_row(run(TranslateStage(cfg).program, s, FakeClient(answer(user), answer(call))))
    assert out.messages[0].content == "現在 New York 幾點？" and out.messages[1].tool_calls[0].arguments == {"city": "紐約"}
    assert out.functions == s.functions and out.lang == "zh-TW"
    bad_call = {**call, "tool_calls": [{"name": "get_time", "arguments": {"city": 3}}]}
    with pytest.raises(RowError, match=r"arguments.city: must stay a non-empty string .*\[turns 1..1\]$"):
        run(TranslateStage(cfg).program, s, FakeClient(answer(user), answer(bad_call)))


def test_checked_lists_every_problem_for_the_reask():
    validate = engine.checked(lambda answer: [f"problem {i}" for i in range(answer)])
    assert validate(0) is None
    with pytest.raises(ValueError) as err:
        validate(3)
    assert str(err.value) == "problem 0; problem 1; problem 2"
    with pytest.raises(RowError, match="output sample is invalid"):
        engine.valid_output(Sample(functions=[], messages=[Message("assistant", "x")]))
    assert json.dumps(engine.valid_output(fc()))
