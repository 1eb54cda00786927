"""The vLLM tool-parser plugin against vLLM's own ToolParser contract (skipped without vLLM).

Importing the plugin registers it with vLLM's ToolParserManager, exactly as
``--tool-parser-plugin`` does. The checks drive the class the way vLLM's OpenAI server does:
`adjust_request` on the request, `extract_tool_calls` on a whole output, and
`extract_tool_calls_streaming` with (previous_text, current_text, delta_text) per token, then the
server's end-of-stream check of `prev_tool_call_arr` against `streamed_args_for_tool`. No GPU is
needed for this; it needs vLLM, which the CPU machines here do not have (tests/unit/test_serving_parser.py
checks the same parser core there).
"""

import json

import pytest

pytestmark = pytest.mark.gpu

pytest.importorskip("vllm")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    from raypipe.templates import save_tokenizer
    from raypipe.tiny import make_tiny_tokenizer

    out = tmp_path_factory.mktemp("tok")
    save_tokenizer(make_tiny_tokenizer(["hello world get_weather city Taipei"] * 3, vocab_size=300), "tools-dt", out)
    return AutoTokenizer.from_pretrained(str(out))


def request_with_tools():
    try:
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    except ImportError:
        from vllm.entrypoints.openai.protocol import ChatCompletionRequest
    return ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "Weather?"}], tool_choice="auto",
                                 tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {
                                     "type": "object", "properties": {"city": {"type": "string"}}}}}])


def test_plugin_registers_its_parsers(tokenizer):
    import raypipe.serving.vllm_plugin as plugin

    try:
        from vllm.tool_parsers.abstract_tool_parser import ToolParser, ToolParserManager
    except ImportError:
        from vllm.entrypoints.openai.tool_parsers.abstract_tool_parser import ToolParser, ToolParserManager
    for name in ("raypipe", "raypipe-tools-dt", "raypipe-tools-dt-json", "raypipe-system-dt-cot"):
        cls = ToolParserManager.get_tool_parser(name)
        assert issubclass(cls, ToolParser) and issubclass(cls, plugin.RaypipeToolParser)
    assert ToolParserManager.get_tool_parser("raypipe")(tokenizer).fmt.decision_token  # read from the vocab


def test_non_streaming_and_streaming_agree(tokenizer):
    from raypipe.serving.vllm_plugin import RaypipeToolParser

    request = RaypipeToolParser(tokenizer).adjust_request(request_with_tools())
    assert request.skip_special_tokens is False
    text = 'Let me check.\n[get_weather(city="Taipei"), get_weather(city="Tokyo")]'
    output = "<|use_tool|>" + text
    whole = RaypipeToolParser(tokenizer).extract_tool_calls(output, request)
    assert whole.tools_called and whole.content == "Let me check."
    assert [(c.function.name, json.loads(c.function.arguments)) for c in whole.tool_calls] == [
        ("get_weather", {"city": "Taipei"}), ("get_weather", {"city": "Tokyo"})]

    parser = RaypipeToolParser(tokenizer)
    ids = tokenizer(output, add_special_tokens=False)["input_ids"]
    previous, content, calls = "", "", {}
    for k in range(len(ids)):
        current = tokenizer.decode(ids[: k + 1], skip_special_tokens=False)
        delta = parser.extract_tool_calls_streaming(previous, current, current[len(previous):], ids[:k], ids[: k + 1],
                                                    ids[k:k + 1], request)
        previous = current
        if delta is None:
            continue
        content += delta.content or ""
        for call in delta.tool_calls:
            entry = calls.setdefault(call.index, {"name": "", "arguments": ""})
            entry["name"] += call.function.name or ""
            entry["arguments"] += call.function.arguments or ""
    assert content == "Let me check."
    assert [(c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())] == [
        ("get_weather", {"city": "Taipei"}), ("get_weather", {"city": "Tokyo"})]
    # what the server checks when the stream ends: nothing left unstreamed
    for index, sent in enumerate(parser.streamed_args_for_tool):
        assert json.dumps(parser.prev_tool_call_arr[index]["arguments"], ensure_ascii=False) == sent
