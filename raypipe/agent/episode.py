"""One episode: the agent under test, a simulated user and the environment, turn by turn.

Plain async code over three small interfaces, so any engine can drive it:

    agent.act(messages, tools) -> {"role": "assistant", "content": str | None,
                                   "tool_calls": [{"id", "name", "arguments": dict}]}
    user.reply(messages) -> str          (the conversation as the user sees it)
    env.call(name, arguments) -> ToolResult

The flow is tau2-bench's half-duplex orchestration: the agent greets first ("Hi! How can I help
you today?"), then user and agent alternate; an agent message with tool calls goes to the
environment (every call answered, in order) and back to the agent. One step is one message
(or one round of tool answers). The episode ends when

- the user's message holds a stop marker (``###STOP###``, ``###TRANSFER###``,
  ``###OUT-OF-SCOPE###``): "user_stop";
- the agent's message holds ``###STOP###``: "agent_stop";
- `max_steps` steps were taken: "max_steps" (not checked while tool answers are owed);
- `max_errors` tool calls answered with an error: "too_many_errors";
- the agent's output cannot be read (bad tool-call JSON, a template parse error):
  "agent_error"; the user simulator fails to answer: "user_error".

Only "user_stop" and "agent_stop" episodes are scored; the others get reward 0, as in the
benchmark. Transport failures (endpoint down, retries exhausted) are not model behaviour: they
propagate, and the episode is retried by the next run instead of being scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

FIRST_AGENT_MESSAGE = "Hi! How can I help you today?"
USER_STOP_MARKERS = ("###STOP###", "###TRANSFER###", "###OUT-OF-SCOPE###")
AGENT_STOP_MARKER = "###STOP###"
SCORED_TERMINATIONS = ("user_stop", "agent_stop")


class AgentError(Exception):
    """The agent's output could not be used (model behaviour: the episode ends, reward 0)."""


class UserError(Exception):
    """The simulated user produced no usable message."""


class Agent(Protocol):
    async def act(self, messages: list[dict], tools: list[dict]) -> dict: ...


class User(Protocol):
    async def reply(self, messages: list[dict]) -> str: ...


@dataclass
class Episode:
    messages: list[dict] = field(default_factory=list)
    termination: str = ""
    reason: str = ""
    steps: int = 0
    tool_errors: int = 0

    @property
    def scored(self) -> bool:
        return self.termination in SCORED_TERMINATIONS


def user_view(messages: list[dict]) -> list[dict]:
    """What the simulated user sees: the agent's text messages and its own, nothing of tools."""
    return [m for m in messages
            if m["role"] == "user" or (m["role"] == "assistant" and not m.get("tool_calls") and m.get("content"))]


async def run_episode(env: Any, agent: Agent, user: User, *, max_steps: int = 100,
                      max_errors: int = 10) -> Episode:
    ep = Episode(messages=[{"role": "assistant", "content": FIRST_AGENT_MESSAGE}])
    turn = "user"
    pending: list[dict] = []
    while True:
        if turn != "env":
            if ep.steps >= max_steps:
                return _end(ep, "max_steps", f"{max_steps} steps without the conversation ending")
            if ep.tool_errors >= max_errors:
                return _end(ep, "too_many_errors", f"{ep.tool_errors} tool calls answered with an error")
        if turn == "user":
            try:
                text = await user.reply(user_view(ep.messages))
            except UserError as exc:
                return _end(ep, "user_error", str(exc))
            ep.messages.append({"role": "user", "content": text})
            ep.steps += 1
            if any(marker in text for marker in USER_STOP_MARKERS):
                return _end(ep, "user_stop", "")
            turn = "agent"
        elif turn == "agent":
            try:
                message = await agent.act(ep.messages, env.specs)
            except AgentError as exc:
                return _end(ep, "agent_error", str(exc))
            ep.messages.append(message)
            ep.steps += 1
            if AGENT_STOP_MARKER in (message.get("content") or ""):
                return _end(ep, "agent_stop", "")
            pending = list(message.get("tool_calls") or [])
            turn = "env" if pending else "user"
        else:
            for call in pending:
                result = env.call(call["name"], call["arguments"])
                ep.tool_errors += result.error
                ep.messages.append({"role": "tool", "tool_call_id": call["id"], "name": call["name"],
                                    "content": result.content, "error": result.error})
            ep.steps += 1
            turn = "agent"


def _end(ep: Episode, termination: str, reason: str) -> Episode:
    ep.termination = termination
    ep.reason = reason
    return ep
