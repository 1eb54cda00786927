"""Pieces every synthesis prompt shares: how a conversation, its functions and its calls
are shown to a teacher model, and how function names are found in the teacher's text."""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

from raypipe.schema import Message, ToolCall
from raypipe.validate import function_name


def pretty_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def functions_json(functions: list[dict[str, Any]]) -> str:
    return pretty_json(functions)


def calls_json(calls: Iterable[ToolCall]) -> str:
    return pretty_json([{"name": c.name, "arguments": c.arguments} for c in calls])


def history_text(messages: Iterable[Message]) -> str:
    """One line per turn, tagged by role, the way Appendix A shows a conversation."""
    lines = []
    for m in messages:
        if m.role == "assistant":
            if m.content:
                lines.append(f"[ASSISTANT] {m.content}")
            if m.tool_calls:
                lines.append(f"[ASSISTANT CALLS] {calls_json(m.tool_calls)}")
        elif m.role == "tool":
            tag = f"[TOOL RESULT {m.name}]" if m.name else "[TOOL RESULT]"
            lines.append(f"{tag} {m.content or ''}")
        else:
            lines.append(f"[{m.role.upper()}] {m.content or ''}")
    return "\n".join(lines)


def spec_names(functions: list[dict[str, Any]]) -> list[str]:
    return [function_name(f) for f in functions if isinstance(f, dict)]


def spellings(name: str) -> set[str]:
    """A dotted name (`weather_api.get_weather`) is also recognised by its last part."""
    return {name, name.rsplit(".", 1)[-1]} if "." in name else {name}


def name_mentioned(text: str, name: str, ignore: set[str] = frozenset()) -> bool:
    """True if `name` appears in `text` as a whole identifier (not inside a longer one).
    Spellings in `ignore` do not count (a short form shared with another function)."""
    for spelling in spellings(name) - set(ignore):
        if re.search(rf"(?<![\w.]){re.escape(spelling)}(?!\w)", text):
            return True
    return False


def names_mentioned(text: str, names: Iterable[str], ignore: set[str] = frozenset()) -> list[str]:
    return [n for n in names if name_mentioned(text, n, ignore)]


_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")


def numbers_in(text: str) -> list[str]:
    """Digit groups as written (`1,000`, `3.5`, `42`): translation must keep each one."""
    return _NUMBER.findall(text or "")


def first_problems(problems: list[str], limit: int = 12) -> str:
    """A reason string that stays readable when a row has many problems."""
    shown = "; ".join(problems[:limit])
    more = len(problems) - limit
    return shown + (f"; ... and {more} more" if more > 0 else "")
