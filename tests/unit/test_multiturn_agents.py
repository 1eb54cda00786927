"""The shared agents with a scripted in-process client: repair once, reject, tool results."""

import asyncio
import json

import pytest

from raypipe.llm import Completion, LLMClient, LLMConfig, RowError
from raypipe.schema import Message, ToolCall
from raypipe.synth.agents import checked_assistant_turn, simulate_results

pytestmark = pytest.mark.unit

SPEC = {"name": "get_weather", "parameters": {"type": "object", "properties": {
    "location": {"type": "string"}}, "required": ["location"]}}


class ScriptedClient(LLMClient):
    """The real client's re-ask logic (`ask`, `chat_json`) over scripted answers instead of HTTP."""

    def __init__(self, answers):
        super().__init__(LLMConfig(max_reasks=0))
        self.answers = list(answers)
        self.prompts = []

    async def chat(self, messages, **params):
        self.prompts.append(messages)
        answer = self.answers.pop(0)
        obj = answer(messages) if callable(answer) else answer
        return Completion(json.dumps(obj), {"prompt_tokens": 0, "completion_tokens": 0})


def run(coro):
    return asyncio.run(coro)


def test_a_valid_turn_is_taken_as_is():
    client = ScriptedClient([{"tool_calls": [{"name": "get_weather", "arguments": {"location": "Oslo"}}]}])
    msg, repaired = run(checked_assistant_turn(client, [{"role": "user", "content": "x"}], [SPEC],
                                               [Message("user", "weather?")], "t0", "turn 0"))
    assert not repaired and msg.tool_calls[0].arguments == {"location": "Oslo"}


def test_one_repair_feeds_back_the_validator_problems():
    client = ScriptedClient([
        {"tool_calls": [{"name": "get_weather", "arguments": {}}]},
        {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Oslo"}}]},
    ])
    msg, repaired = run(checked_assistant_turn(client, [{"role": "user", "content": "x"}], [SPEC],
                                               [Message("user", "weather?")], "t0", "turn 0"))
    assert repaired and msg.tool_calls[0].arguments == {"location": "Oslo"}
    feedback = client.prompts[1][-1]["content"]
    assert "messages[1].tool_calls[0].arguments.location: required argument missing" in feedback


def test_a_second_invalid_answer_rejects_the_dialog_with_the_reason():
    bad = {"tool_calls": [{"name": "get_wether", "arguments": {"location": "Oslo"}}]}
    client = ScriptedClient([bad, bad])
    with pytest.raises(RowError, match="turn 3: assistant turn invalid after one repair: .*undeclared function 'get_wether'"):
        run(checked_assistant_turn(client, [], [SPEC], [Message("user", "weather?")], "t3", "turn 3"))


def test_expectations_beyond_the_validator_are_enforced():
    client = ScriptedClient([{"content": "Sure"}, {"content": "Sure"}])
    with pytest.raises(RowError, match="must call"):
        run(checked_assistant_turn(client, [], [SPEC], [Message("user", "w")], "t0", "turn 0",
                                   lambda m: [] if m.tool_calls else ["must call"]))


def test_tool_results_follow_call_order_and_ids():
    def answer(messages):
        call = json.loads(messages[1]["content"].split("CALL: ", 1)[1].split("\n", 1)[0])
        return {"result": {"city": call["arguments"]["location"]}}

    client = ScriptedClient([answer, answer])
    calls = [ToolCall("get_weather", {"location": "Oslo"}, "c0"), ToolCall("get_weather", {"location": "Rome"}, "c1")]
    out = run(simulate_results(client, [SPEC], [Message("user", "w")], calls))
    assert [(m.role, m.name, m.tool_call_id, json.loads(m.content)) for m in out] == [
        ("tool", "get_weather", "c0", {"city": "Oslo"}), ("tool", "get_weather", "c1", {"city": "Rome"})]
    with pytest.raises(RowError, match="result"):
        run(simulate_results(ScriptedClient([{"nope": 1}]), [SPEC], [], calls[:1]))
