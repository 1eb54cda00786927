"""The episode loop, rewards and the run summary, with scripted agents and users (no HTTP)."""

import asyncio
import json
from pathlib import Path

import pytest

from raypipe.agent.agents import BatchingGenerator, TemplateAgent, from_wire_calls, to_wire
from raypipe.agent.episode import FIRST_AGENT_MESSAGE, AgentError, run_episode, user_view
from raypipe.agent.records import markdown_summary, summarize_run
from raypipe.agent.replay import gold_hashes
from raypipe.agent.reward import communicate_checks, score_episode
from raypipe.agent.tasks import load_domain, load_tasks
from raypipe.agent.user_sim import LLMUser, scenario_text

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "agent_mini"


class ScriptedAgent:
    def __init__(self, steps):
        self.steps = list(steps)
        self.seen = []

    async def act(self, messages, tools):
        self.seen.append(list(messages))
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        if isinstance(step, str):
            return {"role": "assistant", "content": step}
        return {"role": "assistant", "content": None,
                "tool_calls": [{"id": f"c{len(messages)}_{i}", "name": n, "arguments": a} for i, (n, a) in enumerate(step)]}


class ScriptedUser:
    def __init__(self, replies):
        self.replies = list(replies)
        self.seen = []

    async def reply(self, messages):
        self.seen.append(list(messages))
        return self.replies.pop(0)


class YesJudge:
    async def check(self, assertions, messages):
        return [{"assertion": a, "met": True, "reason": "ok"} for a in assertions]


@pytest.fixture(scope="module")
def mini():
    domain = load_domain(MINI)
    tasks = {t.id: t for t in load_tasks(MINI)}
    return domain, tasks, gold_hashes(domain, tasks.values())


def play(domain, agent, user, **kw):
    env = domain.new_env()
    episode = asyncio.run(run_episode(env, agent, user, **kw))
    return env, episode


def test_gold_actions_give_reward_1_and_the_loop_shape(mini):
    domain, tasks, gold = mini
    task = tasks["cancel_w1"]
    agent = ScriptedAgent([[(a.name, a.arguments)] for a in task.actions] + ["Your order #W1 is cancelled."])
    user = ScriptedUser(["Cancel #W1 please, ann.lee@example.com", "Thanks! ###STOP###"])
    env, ep = play(domain, agent, user)
    assert ep.termination == "user_stop" and ep.tool_errors == 0
    assert [m["role"] for m in ep.messages] == ["assistant", "user", "assistant", "tool", "assistant", "tool",
                                                 "assistant", "tool", "assistant", "user"]
    assert ep.messages[0]["content"] == FIRST_AGENT_MESSAGE
    assert ep.messages[3]["content"] == "ann_lee_1" and ep.messages[3]["tool_call_id"] == ep.messages[2]["tool_calls"][0]["id"]
    # the user never sees tool calls or tool answers
    assert [m["role"] for m in user.seen[-1]] == ["assistant", "user", "assistant"]
    score = asyncio.run(score_episode(task, ep, env.db_sha256(), gold[task.id], YesJudge()))
    assert score["reward"] == 1.0 and score["parts"]["DB"]["reward"] == 1.0


def test_wrong_actions_fail_db_and_the_reason_says_so(mini):
    domain, tasks, gold = mini
    task = tasks["cancel_w1"]
    agent = ScriptedAgent([[("cancel_pending_order", {"order_id": "#W1", "reason": "ordered by mistake"})], "Done."])
    env, ep = play(domain, agent, ScriptedUser(["cancel #W1", "###STOP###"]))
    score = asyncio.run(score_episode(task, ep, env.db_sha256(), gold[task.id], None))
    assert score["reward"] == 0.0 and score["reason"] == "failed: DB"


def test_communicate_rule_is_the_benchmarks():
    messages = [{"role": "assistant", "content": "The total is $1,234.50 for both."},
                {"role": "tool", "content": "999"}, {"role": "user", "content": "999"}]
    checks = communicate_checks(["1234.50", "999", "TOTAL"], messages)
    assert [c["met"] for c in checks] == [True, False, True]  # commas dropped; case-insensitive; agent only


def test_communicate_and_nl_parts(mini):
    domain, tasks, gold = mini
    task = tasks["total_w1"]
    agent = ScriptedAgent([[(a.name, a.arguments)] for a in task.actions] + ["It comes to 30.0 dollars."])
    env, ep = play(domain, agent, ScriptedUser(["total of #W1?", "###STOP###"]))
    score = asyncio.run(score_episode(task, ep, env.db_sha256(), gold[task.id], None))
    assert score["reward"] == 1.0 and score["parts"]["COMMUNICATE"]["checks"][0]["met"]
    nl_task = tasks["return_w2"]
    with pytest.raises(ValueError, match="needs a judge"):
        asyncio.run(score_episode(nl_task, ep, env.db_sha256(), gold[nl_task.id], None))

    class NoJudge:
        async def check(self, assertions, messages):
            return [{"assertion": a, "met": False, "reason": "no confirmation"} for a in assertions]

    score = asyncio.run(score_episode(nl_task, ep, env.db_sha256(), gold[nl_task.id], NoJudge()))
    assert score["parts"]["NL_ASSERTION"]["checks"][0]["reason"] == "no confirmation" and score["reward"] == 0.0


def test_terminations(mini):
    domain, tasks, gold = mini
    _, ep = play(domain, ScriptedAgent(["hm"] * 10), ScriptedUser(["hi"] * 10), max_steps=4)
    assert ep.termination == "max_steps" and ep.steps == 4
    bad = [("get_order_details", {"order_id": "#nope"})]
    _, ep = play(domain, ScriptedAgent([bad] * 5), ScriptedUser(["hi"]), max_errors=3)
    assert ep.termination == "too_many_errors" and ep.tool_errors == 3
    _, ep = play(domain, ScriptedAgent([AgentError("bad JSON")]), ScriptedUser(["hi"]))
    assert (ep.termination, ep.reason) == ("agent_error", "bad JSON")
    env, ep = play(domain, ScriptedAgent(["bye ###STOP###"]), ScriptedUser(["hi"]))
    assert ep.termination == "agent_stop"
    for marker in ("###TRANSFER###", "###OUT-OF-SCOPE###"):
        _, ep = play(domain, ScriptedAgent([]), ScriptedUser([marker]))
        assert ep.termination == "user_stop"
    _, ep = play(domain, ScriptedAgent(["hm"] * 10), ScriptedUser(["hi"] * 10), max_steps=3)
    task = tasks["total_w1"]
    score = asyncio.run(score_episode(task, ep, domain.new_env().db_sha256(), gold[task.id], None))
    assert score["reward"] == 0.0 and score["reason"].startswith("episode ended by max_steps")


def test_wire_format_round_trip():
    msg = {"role": "assistant", "content": None,
           "tool_calls": [{"id": "c1", "name": "f", "arguments": {"x": "é"}}]}
    wire = to_wire(msg)
    assert wire["tool_calls"][0]["function"]["arguments"] == '{"x": "é"}'
    assert from_wire_calls(wire["tool_calls"], 0) == msg["tool_calls"]
    with pytest.raises(AgentError, match="not JSON"):
        from_wire_calls([{"id": "c", "function": {"name": "f", "arguments": "{x"}}], 0)
    with pytest.raises(AgentError, match="JSON object"):
        from_wire_calls([{"id": "c", "function": {"name": "f", "arguments": "[1]"}}], 0)
    assert user_view([msg, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]) == [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]


def test_batching_generator_serves_open_episodes_in_one_pass_and_template_agent_parses():
    seen = []

    def generate(prompts):
        seen.append(len(prompts))
        return ['<|use_tool|>[get_order_details(order_id="#W1")]' if "#W1" in p else "<|answer|>Hello" for p in prompts]

    gen = BatchingGenerator(generate, max_batch=8, window_s=5.0)
    agent = TemplateAgent(gen, "tools-dt", "policy")
    tools = [{"type": "function", "function": {"name": "get_order_details", "parameters": {}}}]

    async def main():
        gen.open_episodes = 3
        return await asyncio.gather(*(agent.act([{"role": "user", "content": c}], tools) for c in ("#W1", "a", "b")))

    first, second, _ = asyncio.run(main())
    assert seen == [3]  # all three open episodes answered by one pass (long before the 5 s window)
    assert first["tool_calls"][0]["name"] == "get_order_details" and first["tool_calls"][0]["arguments"] == {"order_id": "#W1"}
    assert second == {"role": "assistant", "content": "Hello"}

    gen2 = BatchingGenerator(lambda prompts: ["no decision token" for _ in prompts], window_s=0.01)
    with pytest.raises(AgentError, match="parse error"):
        asyncio.run(TemplateAgent(gen2, "tools-dt", "policy").act([{"role": "user", "content": "x"}], tools))


def test_user_simulator_prompt_and_roles(mini):
    _, tasks, _ = mini
    text = scenario_text(tasks["cancel_w1"])
    assert "Reason for call:" in text and "ann.lee@example.com" in text

    class Client:
        async def chat(self, messages, **params):
            self.messages, self.params = messages, params
            return type("C", (), {"text": "  I want to cancel.  "})()

    client = Client()
    user = LLMUser(client, tasks["cancel_w1"], seed=7)
    assert asyncio.run(user.reply([{"role": "assistant", "content": FIRST_AGENT_MESSAGE}])) == "I want to cancel."
    assert client.messages[1] == {"role": "user", "content": FIRST_AGENT_MESSAGE} and client.params == {"seed": 7}
    assert "###STOP###" in client.messages[0]["content"]


def test_summary_pass_hat_k_and_missing():
    def rec(task, trial, reward):
        return {"task_id": task, "trial": trial, "reward": reward, "termination": "user_stop",
                "reward_parts": {"DB": {"reward": reward, "in_basis": True}}}

    records = [rec("a", 0, 1.0), rec("a", 1, 1.0), rec("a", 2, 0.0), rec("b", 0, 1.0), rec("b", 1, 1.0),
               rec("b", 2, 1.0), rec("c", 0, 0.0)]
    s = summarize_run(records, ["a", "b", "c"], 3)
    assert s["tasks_complete"] == 2 and s["missing_episodes"] == ["c#1", "c#2"]
    assert s["pass_hat_k"]["1"] == pytest.approx((2 / 3 + 1) / 2)
    assert s["pass_hat_k"]["3"] == pytest.approx(0.5)  # only b succeeds every time
    assert s["avg_reward"] == pytest.approx(5 / 7)
    table = markdown_summary(s)
    assert "| 3 | 0.5000 |" in table and "re-run" in table
    json.dumps(s)


def test_job_step_config_is_typed_and_checked():
    from raypipe.agent.runner import EvalAgentConfig
    from raypipe.config import ConfigError, load_config
    from raypipe.llm import LLMConfig
    from raypipe.commands import all_steps

    assert all_steps()["eval_agent"].config is EvalAgentConfig
    cfg = load_config(EvalAgentConfig, {"domain": "d", "out": "o", "agent": {"model": "m"},
                                        "user": {"model": "u", "cache_dir": "c"}, "trials": 3})
    assert isinstance(cfg.agent, LLMConfig) and cfg.judge is cfg.user and cfg.trials == 3
    with pytest.raises(ConfigError, match="user.modle"):
        load_config(EvalAgentConfig, {"domain": "d", "out": "o", "agent": {"model": "m"}, "user": {"modle": "u"}})
    with pytest.raises((ConfigError, ValueError), match="exactly one of agent"):
        load_config(EvalAgentConfig, {"domain": "d", "out": "o", "user": {"model": "u"}})
