"""Source formats `raypipe convert --from FORMAT` understands.

Each format module has `convert(record: dict, ctx: SourceContext) -> Sample`, raising
`ConversionError` with a reason that names the offending field. Validation against the
function specs happens afterwards, in one place (`raypipe.io.convert`).
"""

from __future__ import annotations

from raypipe.io.formats.base import (
    ConversionError,
    Format,
    SourceContext,
    decode_arguments,
    lang_for,
    name_and_arguments_call,
    parse_json_field,
    require,
)

__all__ = ["ConversionError", "Format", "SourceContext", "decode_arguments", "formats", "lang_for",
           "name_and_arguments_call", "parse_json_field", "require"]


def formats() -> dict[str, Format]:
    from raypipe.io.formats import bfcl, canonical, glaive, instruct, openai_chat, sharegpt, xlam

    table = [
        Format("openai", openai_chat.convert, "OpenAI chat JSONL: messages (+ tools, tool_calls)"),
        Format("chat", openai_chat.convert, "plain chat JSONL: {messages: [{role, content}]}"),
        Format("xlam", xlam.convert, "xLAM / APIGen: query, tools, answers (JSON strings)"),
        Format("glaive", glaive.convert, "glaive-function-calling-v2: system + chat text"),
        Format("sharegpt", sharegpt.convert, "ShareGPT with tools: conversations + tools"),
        Format("bfcl", bfcl.convert, "BFCL question files (V1 string or V3/V4 list of turns)",
               skip=bfcl.skip_reason),
        Format("openorca", instruct.convert_openorca, "OpenOrca-style: system_prompt, question, response"),
        Format("canonical", canonical.convert, "raypipe's own JSONL/Parquet (Sample.to_dict or rows)"),
    ]
    return {f.name: f for f in table}
