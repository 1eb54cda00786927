"""The simulated user and the NL-assertion judge: LLMs reached through raypipe's engine client.

Both take an object with the `LLMClient` API (`await chat(messages, **params)`,
`await chat_json(messages, validate=...)`), so they are cached, rate limited and retried like
every other LLM call in raypipe. The prompts are raypipe's own wording of tau2-bench's setup.
"""

from __future__ import annotations

import json
from typing import Any

from raypipe.agent.episode import UserError
from raypipe.agent.tasks import Task

USER_GUIDELINES = """You are playing a customer who contacts a customer-service agent. Stay in \
this role for the whole conversation; you are not an assistant.

How to play:
- Follow the scenario below. Reveal what it says you know only when the agent needs it, a \
little at a time, as a real customer would; never invent facts the scenario does not give \
(say you do not know or do not remember instead).
- Write one short, natural message per turn, in your own words; do not copy the scenario's text.
- Do not mention these instructions, tools or any system.
- When your goals are met, or it is clear they cannot be, end the conversation by writing \
###STOP### alone as your message.
- If you are transferred to another (human) agent, write ###TRANSFER###.
- If the scenario does not say what to do in the situation you are in, write ###OUT-OF-SCOPE###.

Scenario:
{scenario}"""

JUDGE_SYSTEM = """You check a customer-service conversation against a list of expected \
outcomes. Judge each outcome on its own, only from what the conversation shows.

Answer with one JSON object and nothing else:
{"results": [{"index": <number of the outcome, from 0>, "met": true or false, "reason": "<one sentence>"}]}
with exactly one result per expected outcome, in order."""


def scenario_text(task: Task) -> str:
    """The task's user scenario as plain text (persona, then the instruction fields)."""
    scenario = task.user_scenario
    lines = []
    if scenario.get("persona"):
        lines += ["Persona:", f"\t{scenario['persona']}"]
    instructions = scenario["instructions"]
    if isinstance(instructions, str):
        lines += ["Instructions:", f"\t{instructions}"]
        return "\n".join(lines)
    labels = (("domain", "Domain"), ("reason_for_call", "Reason for call"), ("known_info", "Known info"),
              ("unknown_info", "Unknown info"), ("task_instructions", "Task instructions"))
    lines.append("Instructions:")
    for key, label in labels:
        if instructions.get(key):
            text = str(instructions[key]).replace("\n", "\n\t\t")
            lines.append(f"\t{label}:\n\t\t{text}")
    return "\n".join(lines)


class LLMUser:
    """Plays the task's customer. The agent's messages are the 'user' turns of its own chat."""

    def __init__(self, client: Any, task: Task, seed: int | None = None):
        self.client = client
        self.system = USER_GUIDELINES.format(scenario=scenario_text(task))
        self.seed = seed

    async def reply(self, messages: list[dict]) -> str:
        chat = [{"role": "system", "content": self.system}]
        for m in messages:  # roles flipped: the agent speaks to this model as its user
            chat.append({"role": "user" if m["role"] == "assistant" else "assistant", "content": m["content"]})
        params = {"seed": self.seed} if self.seed is not None else {}
        completion = await self.client.chat(chat, **params)
        text = (completion.text or "").strip()
        if not text:
            raise UserError("the user simulator answered with an empty message")
        return text


def transcript(messages: list[dict]) -> str:
    lines = []
    for m in messages:
        if m["role"] == "tool":
            lines.append(f"tool ({m.get('name')}): {m['content']}")
            continue
        if m.get("content"):
            lines.append(f"{m['role']}: {m['content']}")
        for call in m.get("tool_calls") or []:
            lines.append(f"{m['role']} calls {call['name']}({json.dumps(call['arguments'], ensure_ascii=False)})")
    return "\n".join(lines)


class LLMJudge:
    def __init__(self, client: Any):
        self.client = client

    async def check(self, assertions: list[str], messages: list[dict]) -> list[dict]:
        prompt = (f"Conversation:\n{transcript(messages)}\n\n"
                  f"Expected outcomes (JSON list): {json.dumps(assertions, ensure_ascii=False)}")

        def validate(obj: Any) -> list[dict]:
            results = obj.get("results") if isinstance(obj, dict) else None
            if not isinstance(results, list) or len(results) != len(assertions):
                raise ValueError(f"'results' must list {len(assertions)} outcomes")
            out = []
            for i, r in enumerate(results):
                if not isinstance(r, dict) or not isinstance(r.get("met"), bool):
                    raise ValueError(f"results[{i}] needs a boolean 'met'")
                out.append({"assertion": assertions[i], "met": r["met"], "reason": str(r.get("reason", ""))})
            return out

        return await self.client.chat_json(
            [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": prompt}],
            validate=validate)

