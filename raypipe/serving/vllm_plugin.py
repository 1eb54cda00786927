"""vLLM tool-parser plugin for raypipe-trained models (streaming and non-streaming).

    vllm serve MODEL --enable-auto-tool-choice \\
        --tool-parser-plugin "$(python -c 'import raypipe.serving.vllm_plugin as m; print(m.__file__)')" \\
        --tool-call-parser raypipe

Parser names: ``raypipe`` reads the format from the served tokenizer's special tokens
(`format_from_vocab`); ``raypipe-<preset>`` (``raypipe-tools-dt``, ``raypipe-tools-dt-json``, ...)
names it. Parsing is `raypipe.templates.parse` in its lenient mode, so a vLLM response holds
exactly what `parse_completion(text, fmt, strict=False)` finds; streaming uses
`raypipe.serving.ToolCallStream`, whose deltas add up to the same result.

The Decision Token and the call-block tokens are special tokens, which vLLM drops from the
text by default; `adjust_request` asks for them to be kept when the request has tools.
Reasoning blocks are sent as reasoning deltas when streaming; vLLM's non-streaming tool-parser
result has no reasoning field, so there the reasoning is left out of the message.

This module imports vLLM (tested where vLLM is installed: tests/gpu/test_serving_vllm_plugin.py).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

try:  # vLLM >= 0.11 moved the parsers and protocol classes
    from vllm.tool_parsers.abstract_tool_parser import ToolParser, ToolParserManager
except ImportError:  # pragma: no cover - older vLLM
    from vllm.entrypoints.openai.tool_parsers.abstract_tool_parser import ToolParser, ToolParserManager
try:
    from vllm.entrypoints.openai.engine.protocol import (
        DeltaFunctionCall,
        DeltaMessage,
        DeltaToolCall,
        ExtractedToolCallInformation,
        FunctionCall,
        ToolCall,
    )
except ImportError:  # pragma: no cover - older vLLM
    from vllm.entrypoints.openai.protocol import (
        DeltaFunctionCall,
        DeltaMessage,
        DeltaToolCall,
        ExtractedToolCallInformation,
        FunctionCall,
        ToolCall,
    )

from raypipe.serving.openai import format_from_vocab, new_call_id
from raypipe.serving.stream import ToolCallStream
from raypipe.templates.formats import PRESETS, FormatConfig
from raypipe.templates.parse import parse_completion

# DeltaMessage names its reasoning field `reasoning` in recent vLLM, `reasoning_content` before.
_REASONING_FIELD = "reasoning" if "reasoning" in getattr(DeltaMessage, "model_fields", {}) else "reasoning_content"


class RaypipeToolParser(ToolParser):
    fmt: FormatConfig | None = None  # None: read from the tokenizer's special tokens

    def __init__(self, tokenizer: Any, *args: Any, **kwargs: Any):
        super().__init__(tokenizer, *args, **kwargs)
        if self.fmt is None:
            self.fmt = format_from_vocab(self.vocab)
        self._stream = ToolCallStream(self.fmt)

    def adjust_request(self, request: Any) -> Any:
        request = super().adjust_request(request)
        if getattr(request, "tools", None) and getattr(request, "tool_choice", None) != "none":
            request.skip_special_tokens = False  # the Decision Token and call tokens are special
        return request

    def extract_tool_calls(self, model_output: str, request: Any) -> ExtractedToolCallInformation:
        parsed = parse_completion(model_output, self.fmt, strict=False)
        calls = [
            ToolCall(id=new_call_id(), type="function",
                     function=FunctionCall(name=c.name, arguments=json.dumps(c.arguments, ensure_ascii=False)))
            for c in parsed.calls
        ]
        return ExtractedToolCallInformation(tools_called=bool(calls), tool_calls=calls,
                                            content=parsed.content or None)

    def extract_tool_calls_streaming(
        self,
        previous_text: str,
        current_text: str,
        delta_text: str,
        previous_token_ids: Sequence[int],
        current_token_ids: Sequence[int],
        delta_token_ids: Sequence[int],
        request: Any,
    ) -> DeltaMessage | None:
        if not previous_text and self._stream.text:  # a new generation on a reused parser
            self._stream = ToolCallStream(self.fmt)
            self.prev_tool_call_arr, self.streamed_args_for_tool, self.current_tool_id = [], [], -1
        delta = self._stream.update(current_text)
        if not delta:
            return None
        tool_calls = []
        for index, call in delta.calls:
            arguments = json.dumps(call.arguments, ensure_ascii=False)
            tool_calls.append(DeltaToolCall(index=index, id=new_call_id(), type="function",
                                            function=DeltaFunctionCall(name=call.name, arguments=arguments)))
            # vLLM's server compares these with what was streamed when the generation ends and
            # sends any difference; whole calls leave none.
            self.prev_tool_call_arr.append({"name": call.name, "arguments": call.arguments})
            self.streamed_args_for_tool.append(arguments)
            self.current_tool_id = index
            self.current_tool_name_sent = True
        fields: dict[str, Any] = {"tool_calls": tool_calls}
        if delta.content:
            fields["content"] = delta.content
        if delta.reasoning:
            fields[_REASONING_FIELD] = delta.reasoning
        return DeltaMessage(**fields)


def _preset_parser(name: str, fmt: FormatConfig) -> type[RaypipeToolParser]:
    cls_name = "Raypipe" + "".join(part.capitalize() for part in name.split("-")) + "ToolParser"
    return type(cls_name, (RaypipeToolParser,), {"fmt": fmt, "__module__": __name__})


ToolParserManager.register_module(name="raypipe", module=RaypipeToolParser)
PRESET_PARSERS = {name: _preset_parser(name, fmt) for name, fmt in PRESETS.items()}
for _name, _cls in PRESET_PARSERS.items():
    globals()[_cls.__name__] = _cls
    ToolParserManager.register_module(name=f"raypipe-{_name}", module=_cls)
