"""Instruction-following data in the OpenOrca layout (the plain chat layout is `openai_chat`).

    {"id": "niv.242684", "system_prompt": "...", "question": "...", "response": "..."}
"""

from __future__ import annotations

from raypipe.io.formats.base import ConversionError, SourceContext, lang_for, require
from raypipe.schema import Message, Sample


def convert_openorca(record: dict, ctx: SourceContext) -> Sample:
    question = require(record, "question")
    response = require(record, "response")
    if not question.strip():
        raise ConversionError("question: empty")
    if not response.strip():
        raise ConversionError("response: empty")
    system = record.get("system_prompt") or ""
    if not isinstance(system, str):
        raise ConversionError("system_prompt: expected a string")
    messages = ([Message("system", system)] if system.strip() else []) + [
        Message("user", question), Message("assistant", response)]
    meta = {"source_id": record["id"]} if record.get("id") is not None else {}
    return Sample(functions=[], messages=messages, source=ctx.source, lang=lang_for(ctx, messages), meta=meta)
