"""The `response_template` of a format: how `transformers serve` reads tool calls back.

transformers (5.x) parses generated text with the declarative ``response_template`` saved in
``tokenizer_config.json`` (``transformers/utils/chat_parsing``): named fields, each a region
opened and closed by literal tokens or patterns, whose text goes through a content parser
(``text``, ``json``, ``python-call-list``). Without one, `transformers serve` answers a tools
request with the call as plain text. `response_template(fmt)` builds the template from the same
constants as the renderer, and `save_tokenizer` stores it with the chat template.

Fields, in generation order:

- ``decision``: the Decision Token, an empty region (transformers drops empty fields);
- ``reasoning_content``: ``<think>...</think>``, kept verbatim;
- ``tool_calls``: one region per ``<|tool_call_begin|>{json}<|tool_call_end|>`` block, or the
  pythonic call list, which starts a line (or follows the Decision Token or ``</think>``) with
  ``[name(``;
- ``content``: everything else, up to ``<|im_end|>``.

Known limit (transformers 5.x): its streaming path turns each closed ``tool_calls`` region into
one call, and a pythonic list is one region holding several calls, so pythonic formats answer
tools requests with ``tool_calls`` only without ``stream=True``. JSON-call formats stream too.
"""

from __future__ import annotations

import re
from typing import Any

from raypipe.templates.formats import (
    ANSWER,
    IM_START,
    STOP_TOKENS,
    THINK_END,
    THINK_START,
    TOOL_CALL_BEGIN,
    TOOL_CALL_END,
    USE_TOOL,
    FormatConfig,
    get_format,
)


def response_template(fmt: FormatConfig | str) -> dict[str, Any]:
    fmt = get_format(fmt)
    fields: dict[str, Any] = {}
    if fmt.decision_token:
        # An empty region: it only consumes the token (an empty pattern closes it at once).
        fields["decision"] = {"open_pattern": f"{re.escape(ANSWER)}|{re.escape(USE_TOOL)}",
                              "close_pattern": "", "content": "text"}
    if fmt.reasoning:
        fields["reasoning_content"] = {"open": THINK_START, "close": THINK_END, "content": "text",
                                       "content_args": {"strip": False}}
    stop = "|".join(re.escape(t) for t in STOP_TOKENS)
    if fmt.call_style == "json":
        fields["tool_calls"] = {
            # \s* swallows the newline between content and the first call, and between calls
            "open_pattern": r"\s*" + re.escape(TOOL_CALL_BEGIN),
            "close": TOOL_CALL_END,
            "repeats": True,
            "content": "json",
            "transform": {"type": "function", "function": "{content}"},
        }
    else:
        after = [re.escape(USE_TOOL)] if fmt.decision_token else []
        after += [re.escape(THINK_END)] if fmt.reasoning else []
        starts = "".join(f"(?<={a})|" for a in after)
        fields["tool_calls"] = {
            "open_pattern": rf"(?:{starts}(?<=\n)|\A)(?=\[\s*[A-Za-z_][\w.]*\s*\()",
            "close_pattern": rf"\s*(?:{stop})",
            "content": "python-call-list",
            "transform": {"type": "function", "function": {"name": "{name}", "arguments": "{arguments}"}},
            "transform_each": True,
        }
    fields["content"] = {"close_pattern": rf"\s*(?:{stop})", "content": "text"}
    return {
        "version": 1,
        "defaults": {"role": "assistant"},
        "start_anchor": f"{IM_START}assistant\n",
        "fields": fields,
    }

