"""Tool calls from a growing generation: what a streaming server sends, delta by delta.

`ToolCallStream` rescans the whole text at each step with `scan_completion(final=False)`,
which returns only what later text cannot change, and hands out the difference to what it
sent before. Because every such view is a prefix of the final one, the deltas add up to
exactly `parse_completion(text, fmt, strict=False)`: the same reasoning, content and calls
as the non-streaming answer. Calls are sent whole, once each list or block is complete
(clients of the OpenAI streaming API accumulate argument fragments, so one fragment is fine).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raypipe.schema import ToolCall
from raypipe.templates.formats import FormatConfig, get_format
from raypipe.templates.parse import scan_completion


@dataclass
class StreamDelta:
    reasoning: str = ""
    content: str = ""
    calls: list[tuple[int, ToolCall]] = field(default_factory=list)  # (index among all calls, call)

    def __bool__(self) -> bool:
        return bool(self.reasoning or self.content or self.calls)


class ToolCallStream:
    def __init__(self, fmt: FormatConfig | str):
        self.fmt = get_format(fmt)
        self.text = ""
        self.reasoning = ""
        self.content = ""
        self.calls: list[ToolCall] = []
        self.decision: str | None = None

    def feed(self, delta: str) -> StreamDelta:
        """Append generated text; the new reasoning, content and complete calls."""
        return self.update(self.text + delta)

    def update(self, text: str) -> StreamDelta:
        """The whole text generated so far (what vLLM hands its parsers as `current_text`)."""
        self.text = text
        return self._advance(final=False)

    def finish(self) -> StreamDelta:
        """The generation ended: release what was held back (trailing text, a list that never
        closed and so is content after all)."""
        return self._advance(final=True)

    def _advance(self, final: bool) -> StreamDelta:
        parsed = scan_completion(self.text, self.fmt, final=final).parsed
        self.decision = parsed.decision or self.decision
        out = StreamDelta()
        reasoning, content = parsed.reasoning or "", parsed.content or ""
        # Views only grow; a view that does not extend what was sent is held until it does.
        if reasoning.startswith(self.reasoning):
            out.reasoning, self.reasoning = reasoning[len(self.reasoning):], reasoning
        if content.startswith(self.content):
            out.content, self.content = content[len(self.content):], content
        for call in parsed.calls[len(self.calls):]:
            out.calls.append((len(self.calls), call))
            self.calls.append(call)
        return out
