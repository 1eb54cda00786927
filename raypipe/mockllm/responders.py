"""Responder helpers for `MockLLMServer`: small functions from a request body to the answer text.

A responder gets the chat-completions request body (a dict) and returns the assistant text,
or raises `ResponderError(status, message)` to answer with an HTTP error.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from raypipe.mockllm.server import ResponderError, echo_responder

__all__ = ["ResponderError", "echo_responder", "json_responder", "last_user_message",
           "reask_aware", "fail_when", "tool_call_responder", "reasoning_responder"]


def last_user_message(body: dict) -> str:
    users = [m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "user"]
    return users[-1] if users else ""


def json_responder(fn: Callable[[dict], Any]) -> Callable[[dict], str]:
    """`fn(body) -> JSON-able value`; the answer is its JSON text."""

    def respond(body: dict) -> str:
        return json.dumps(fn(body), ensure_ascii=False)

    return respond


def reask_aware(first: Callable[[dict], str], after_reask: Callable[[dict], str]) -> Callable[[dict], str]:
    """Answer with `first` to a fresh request and with `after_reask` once the conversation
    already holds an assistant answer (i.e. the client re-asked with the error fed back)."""

    def respond(body: dict) -> str:
        reasked = any(m.get("role") == "assistant" for m in body.get("messages", []))
        return after_reask(body) if reasked else first(body)

    return respond


def fail_when(predicate: Callable[[dict], bool], status: int, inner: Callable[[dict], str] = echo_responder):
    """HTTP `status` for requests matching `predicate`, `inner` for the rest."""

    def respond(body: dict) -> str:
        if predicate(body):
            raise ResponderError(status, f"refused by test responder (HTTP {status})")
        return inner(body)

    return respond


def tool_call_responder(fn: Callable[[dict], Any]) -> Callable[[dict], Any]:
    """`fn(body)` returns the calls to answer with, ``[(name, arguments dict), ...]``, or a string
    (a text answer); calls go back as OpenAI ``tool_calls`` (the server's message-dict form)."""

    def respond(body: dict) -> Any:
        answer = fn(body)
        if isinstance(answer, str):
            return answer
        return {"content": None, "tool_calls": [{"name": name, "arguments": args} for name, args in answer]}

    return respond


def reasoning_responder(body: dict) -> str:
    """A good teacher for `raypipe synth reasoning`: a reason that names exactly the calls the
    task shows (the last ```json block of the last user message that is a list of calls).
    Module level, so `MockLLMServer(process=True)` can run it in its own process."""
    text = last_user_message(body)
    calls: list = []
    for block in text.split("```json\n")[1:]:
        try:
            value = json.loads(block.split("```", 1)[0])
        except ValueError:
            continue
        if isinstance(value, list) and value and all(isinstance(c, dict) and "arguments" in c for c in value):
            calls = value
    names = " and ".join(dict.fromkeys(str(c.get("name")) for c in calls)) or "the tool"
    return json.dumps({"reason": f"The user asks for exactly this, so {names} is called with the "
                                 "values taken from the conversation."})
