"""The agents both multi-turn methods share: the tool simulator and the checked assistant turn.

Every call goes through `raypipe.llm.LLMClient` (cache, limits, retries), so a resumed run pays
for nothing twice. The dialog so far is shown to the teacher as a tagged transcript in one user
message, which works with any OpenAI-compatible endpoint (no native tool-calling needed).

`checked_assistant_turn` is the rule of both methods: an assistant turn enters the dialog only
if `raypipe.validate.validate_sample` finds no problem in it; otherwise the teacher is re-asked
once with the problems listed, and if that still fails the dialog is rejected with the reason.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from raypipe.schema import Message, Sample, ToolCall
from raypipe.synth.toolpool import unwrap
from raypipe.validate import Problem, validate_sample

ACTION_FORMAT = (
    'Reply with one JSON object and nothing else: {"tool_calls": [{"name": "<function>", '
    '"arguments": {...}}]} to call functions (several calls only if they do not depend on each '
    'other\'s results), or {"content": "<text>"} to talk to the user.'
)

TOOL_SYSTEM = (
    "You simulate a software function for a dataset of tool-use dialogs. Given the function's "
    "specification and the arguments of one call, invent a realistic result that is consistent "
    "with the specification (its `returns` schema when it has one), with the arguments and with "
    "the conversation. If the arguments cannot work, return an error object. Reply with one JSON "
    'object and nothing else: {"result": <the result>}.'
)


def transcript(messages: list[Message]) -> str:
    """One tagged line per message: [USER], [ASSISTANT], [ASSISTANT CALLS], [TOOL RESULT f]."""
    lines = []
    for m in messages:
        if m.role == "assistant":
            if m.content:
                lines.append(f"[ASSISTANT] {m.content}")
            if m.tool_calls:
                calls = [{"name": c.name, "arguments": c.arguments} for c in m.tool_calls]
                lines.append(f"[ASSISTANT CALLS] {json.dumps(calls, ensure_ascii=False)}")
        elif m.role == "tool":
            lines.append(f"[TOOL RESULT {m.name}] {m.content}")
        else:
            lines.append(f"[{m.role.upper()}] {m.content}")
    return "\n".join(lines) if lines else "(the conversation has not started)"


def specs_block(functions: list[dict[str, Any]]) -> str:
    return "FUNCTIONS:\n" + json.dumps([unwrap(f) for f in functions], ensure_ascii=False, indent=1)


def action_to_message(action: dict[str, Any], call_prefix: str) -> Message:
    """Turn the teacher's JSON action into an assistant Message (tool-call ids numbered)."""
    calls = action.get("tool_calls") or []
    if calls:
        if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
            raise ValueError('"tool_calls" must be a list of {"name", "arguments"} objects')
        return Message(
            "assistant",
            tool_calls=[
                ToolCall(str(c.get("name", "")), c.get("arguments") if isinstance(c.get("arguments"), dict)
                         else {"__invalid__": c.get("arguments")}, id=f"{call_prefix}_{i}")
                for i, c in enumerate(calls)
            ],
        )
    content = action.get("content")
    return Message("assistant", content=content if isinstance(content, str) else None)


def turn_problems(functions: list[dict[str, Any]], history: list[Message], msg: Message,
                  expect: Callable[[Message], list[str]] | None = None) -> list[str]:
    """Problems of one new assistant message in its dialog (only those at that message)."""
    idx = len(history)
    prefix = f"messages[{idx}]"
    sample = Sample(functions=functions, messages=[*history, msg])
    problems = [str(p) for p in validate_sample(sample) if p.path.startswith(prefix)]
    if not msg.tool_calls and not (msg.content or "").strip():
        problems.append(str(Problem(prefix, "assistant turn has neither calls nor text")))
    if expect is not None:
        problems += expect(msg)
    return problems


async def checked_assistant_turn(
    client, prompt: list[dict[str, str]], functions: list[dict[str, Any]],
    history: list[Message], call_prefix: str, where: str,
    expect: Callable[[Message], list[str]] | None = None,
) -> tuple[Message, bool]:
    """Ask for an assistant action; re-ask once with the validator's problems (the client's
    one re-ask loop); else reject. Returns (message, repaired)."""
    from raypipe.llm import RowError
    from raypipe.llm.client import parse_json_answer

    attempts = 0

    def parse(completion) -> Message:
        nonlocal attempts
        attempts += 1
        action = parse_json_answer(completion.text)  # ValueError: re-asked like any problem
        if not isinstance(action, dict):
            raise ValueError("the action must be one JSON object")
        msg = action_to_message(action, call_prefix)
        problems = turn_problems(functions, history, msg, expect)
        if problems:
            raise ValueError("That action is invalid:\n- " + "\n- ".join(problems))
        return msg

    try:
        msg = await client.ask(prompt, parse, max_reasks=1,
                               feedback=lambda exc: f"{exc}\nFix it. {ACTION_FORMAT}")
    except RowError as exc:
        problems = exc.reason.split("That action is invalid:", 1)[-1].split(" (after", 1)[0]
        problems = "; ".join(p.strip(" -") for p in problems.splitlines() if p.strip(" -"))
        raise RowError(f"{where}: assistant turn invalid after one repair: {problems}") from None
    return msg, attempts > 1


async def simulate_results(client, functions: list[dict[str, Any]], history: list[Message],
                           calls: list[ToolCall]) -> list[Message]:
    """The tool agent: one result message per call (calls of one turn simulated concurrently),
    consistent with the call and the spec."""
    import asyncio

    specs = {unwrap(f).get("name"): unwrap(f) for f in functions}

    async def one(call: ToolCall) -> Message:
        prompt = [
            {"role": "system", "content": TOOL_SYSTEM},
            {"role": "user", "content": (
                f"SPECIFICATION:\n{json.dumps(specs[call.name], ensure_ascii=False, indent=1)}\n\n"
                f"CALL: {json.dumps({'name': call.name, 'arguments': call.arguments}, ensure_ascii=False)}\n\n"
                f"CONVERSATION SO FAR:\n{transcript(history)}"
            )},
        ]
        got = await client.chat_json(prompt, validate=_has_result)
        return Message("tool", content=json.dumps(got["result"], ensure_ascii=False),
                       name=call.name, tool_call_id=call.id)

    return list(await asyncio.gather(*(one(c) for c in calls)))


def _has_result(obj: Any) -> None:
    if not isinstance(obj, dict) or "result" not in obj:
        raise ValueError('expected {"result": ...}')


def checked_row(sample: Sample) -> dict[str, Any]:
    """The sample's Arrow row, once the whole dialog passes the validator (a last guard: each
    turn was already checked in its context)."""
    from raypipe.llm import RowError

    problems = validate_sample(sample)
    if problems:
        raise RowError("dialog invalid: " + "; ".join(str(p) for p in problems))
    return sample.to_row()
