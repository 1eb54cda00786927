"""Reasoning (chain-of-thought) data, after the seed's section 3.3 and Appendix A.

For every assistant turn that calls tools, a teacher model is shown the conversation up to
that turn, the available functions and the exact calls the turn makes, plus worked
examples, and answers JSON `{"reason": "..."}`: why these functions, with these arguments,
follow from the conversation. The reason is stored in the turn's `reasoning` field.

A reason is rejected (and re-asked with the problem fed back) when it is empty, when it
names none of the called functions, misses one, or names an available function the turn
does not call: such a reason would teach the model to argue for the wrong call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from raypipe.config import input_paths, output_path
from raypipe.llm.config import LLMConfig
from raypipe.llm.stage import RunOptions
from raypipe.schema import Message, Sample, ToolCall
from raypipe.synth.prompting import (
    calls_json,
    functions_json,
    history_text,
    names_mentioned,
    spec_names,
    spellings,
)

STAGE = "synth_reasoning"

SYSTEM_PROMPT = (
    "You annotate function-calling conversations for training data. Given a conversation, "
    "the functions the assistant may call and the calls it actually makes next, you write "
    "the short reasoning an assistant would follow to arrive at exactly those calls. "
    "You always answer with one JSON object and nothing else."
)

_ASK = (
    "Write the reasoning that leads from the conversation and the available functions to "
    "exactly the calls below: what the user needs, which function(s) serve it and why, and "
    "where each argument value comes from. Refer to each called function by its name. Do not "
    "mention functions that are not called. Answer with JSON: {\"reason\": \"...\"}."
)

# Worked examples (few-shot). Written for raypipe; they follow Appendix A's structure.
FEW_SHOT: list[dict[str, Any]] = [
    {
        "history": [
            Message("system", "You are a helpful travel assistant."),
            Message("user", "How much is 250 euros in Japanese yen?"),
            Message("assistant", None, [ToolCall("convert_currency", {"amount": 250, "from": "EUR", "to": "JPY"})]),
            Message("tool", '{"result": 40125.0}', name="convert_currency"),
            Message("assistant", "250 EUR is about 40,125 JPY."),
            Message("user", "And in US dollars?"),
        ],
        "functions": [
            {
                "name": "convert_currency",
                "description": "Convert an amount of money from one currency to another.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "amount": {"type": "number", "description": "Amount to convert."},
                        "from": {"type": "string", "description": "ISO 4217 source currency code."},
                        "to": {"type": "string", "description": "ISO 4217 target currency code."},
                    },
                    "required": ["amount", "from", "to"],
                },
            },
            {
                "name": "get_exchange_history",
                "description": "Daily exchange rates between two currencies over a date range.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "base": {"type": "string"},
                        "quote": {"type": "string"},
                        "days": {"type": "integer"},
                    },
                    "required": ["base", "quote"],
                },
            },
        ],
        "calls": [ToolCall("convert_currency", {"amount": 250, "from": "EUR", "to": "USD"})],
        "reason": (
            "The user follows up on the earlier conversion and now wants the same 250 euros "
            "expressed in US dollars. convert_currency converts an amount between currencies, "
            "so it is called again with amount 250 and from 'EUR' carried over from the previous "
            "request, and to set to 'USD', the ISO code for US dollars."
        ),
    },
    {
        "history": [
            Message("user", "Book me a table for 4 at Nopa tonight at 7pm, and what's the weather going to be in San Francisco this evening?"),
        ],
        "functions": [
            {
                "name": "reserve_table",
                "description": "Reserve a restaurant table.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "restaurant": {"type": "string"},
                        "party_size": {"type": "integer"},
                        "time": {"type": "string", "description": "Local time, HH:MM (24h)."},
                    },
                    "required": ["restaurant", "party_size", "time"],
                },
            },
            {
                "name": "weather.forecast",
                "description": "Hourly weather forecast for a city.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string"},
                        "period": {"type": "string", "enum": ["morning", "afternoon", "evening", "night"]},
                    },
                    "required": ["city"],
                },
            },
        ],
        "calls": [
            ToolCall("reserve_table", {"restaurant": "Nopa", "party_size": 4, "time": "19:00"}),
            ToolCall("weather.forecast", {"city": "San Francisco", "period": "evening"}),
        ],
        "reason": (
            "The user asks for two independent things, so two calls are made. To book the "
            "table, reserve_table takes the restaurant 'Nopa', a party_size of 4 and the time "
            "7pm written in 24-hour form as '19:00'. For the weather, weather.forecast takes the "
            "city 'San Francisco' and the period 'evening', the enum value that matches 'this "
            "evening'."
        ),
    },
]


def call_turns(sample: Sample, overwrite: bool = False) -> list[int]:
    """Indices of the assistant turns that call tools and still need a reason."""
    return [
        i
        for i, m in enumerate(sample.messages)
        if m.role == "assistant" and m.tool_calls and (overwrite or not (m.reasoning or "").strip())
    ]


def _task_block(history: list[Message], functions: list[dict], calls: list[ToolCall]) -> str:
    return (
        f'Conversation so far:\n"""\n{history_text(history)}\n"""\n\n'
        f"Available functions:\n```json\n{functions_json(functions)}\n```\n\n"
        f"The assistant's next turn makes exactly these calls:\n```json\n{calls_json(calls)}\n```"
    )


def build_reasoning_messages(sample: Sample, turn: int, few_shot: bool = True) -> list[dict[str, str]]:
    """The chat request asking why `sample.messages[turn]` makes its calls."""
    msg = sample.messages[turn]
    if msg.role != "assistant" or not msg.tool_calls:
        raise ValueError(f"messages[{turn}] is not an assistant turn with tool calls")
    parts = [_ASK, ""]
    if few_shot:
        for k, ex in enumerate(FEW_SHOT, 1):
            parts += [
                f"## Example {k}",
                _task_block(ex["history"], ex["functions"], ex["calls"]),
                f"Answer:\n```json\n{{\"reason\": {json.dumps(ex['reason'], ensure_ascii=False)}}}\n```",
                "",
            ]
    parts += [
        "## Your task",
        _task_block(sample.messages[:turn], sample.functions, msg.tool_calls),
        "Answer:",
    ]
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "\n".join(parts)},
    ]


def check_reason(
    answer: Any,
    sample: Sample,
    turn: int,
    *,
    min_chars: int = 20,
    max_chars: int = 2000,
    require_all_functions: bool = True,
) -> list[str]:
    """Every problem with a teacher's answer for `sample.messages[turn]` (empty = accept)."""
    if not isinstance(answer, dict) or not isinstance(answer.get("reason"), str):
        return ['the answer must be a JSON object with a string field "reason"']
    reason = answer["reason"].strip()
    if not reason:
        return ["the reason is empty"]
    problems = []
    if len(reason) < min_chars:
        problems.append(f"the reason is too short ({len(reason)} characters, at least {min_chars})")
    if len(reason) > max_chars:
        problems.append(f"the reason is too long ({len(reason)} characters, at most {max_chars})")
    called = list(dict.fromkeys(c.name for c in sample.messages[turn].tool_calls))
    named = names_mentioned(reason, called)
    if not named:
        problems.append(f"the reason names none of the called functions ({', '.join(called)})")
    elif require_all_functions and len(named) < len(called):
        missing = [n for n in called if n not in named]
        problems.append(f"the reason does not name the called function(s) {', '.join(missing)}")
    not_called = [n for n in spec_names(sample.functions) if n not in called]
    # A dotted name's short form may coincide with a called one's: that spelling proves nothing.
    called_spellings = set().union(*(spellings(n) for n in called))
    wrong = names_mentioned(reason, not_called, ignore=called_spellings)
    if wrong:
        problems.append(
            f"the reason names function(s) the turn does not call: {', '.join(wrong)}"
        )
    return problems


def with_reasons(sample: Sample, reasons: dict[int, str]) -> Sample:
    """A new sample (lineage -> parent) whose turns carry the given reasons."""
    messages = [
        replace(m, reasoning=reasons[i].strip()) if i in reasons else m
        for i, m in enumerate(sample.messages)
    ]
    return sample.derive(STAGE, messages=messages)


# -- the stage ------------------------------------------------------------------------------


@dataclass
class ReasoningConfig(RunOptions):
    inputs: list[str] = input_paths()
    out: str = output_path()
    llm: LLMConfig = field(default_factory=LLMConfig)
    few_shot: bool = field(default=True, metadata={"help": "leave out the worked examples"})
    overwrite: bool = field(default=False, metadata={"help": "re-explain turns that already carry reasoning"})
    require_all_functions: bool = field(default=True, metadata={
        "flag": "--any-function", "help": "accept a reason that names only some of the called functions"})
    keep_without_calls: bool = field(default=True, metadata={
        "flag": "--reject-without-calls",
        "help": "reject samples with no tool call (default: they pass through unchanged)"})
    min_chars: int = 20
    max_chars: int = 2000
