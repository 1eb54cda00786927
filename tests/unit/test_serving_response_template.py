"""The response_template that `transformers serve` reads agrees with raypipe's own parser.

transformers' `parse_response` is exactly what its server's non-streaming path runs
(`cli/serving/utils.py: parse_assistant_message`); the served end-to-end check is
tests/integration/test_serving_transformers.py.
"""

import json

import pytest

from raypipe.schema import Message, ToolCall
from raypipe.templates import PRESETS, get_format, parse_completion
from raypipe.templates.render import assistant_body
from raypipe.templates.response_template import response_template

pytestmark = pytest.mark.unit

parse_response = pytest.importorskip("transformers.utils.chat_parsing").parse_response

MESSAGES = [
    Message("assistant", None, tool_calls=[ToolCall("math.factorial", {"number": 5}),
                                           ToolCall("get_weather", {"city": "台北", "unit": None,
                                                                    "xs": [1, -2.5, {"a": 'b"c'}]})],
            reasoning="Two calls.\n"),
    Message("assistant", "Let me check.", tool_calls=[ToolCall("f_g", {"a": True})]),
    Message("assistant", "An answer that mentions [1] and f(x)."),
    Message("assistant", ""),
]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_transformers_reads_every_format_like_raypipe(name):
    fmt = get_format(name)
    template = response_template(fmt)
    for message in MESSAGES:
        text = assistant_body(message, fmt) + "<|im_end|>"
        theirs = parse_response(text, template, prefix="")
        ours = parse_completion(text, fmt, strict=False)
        calls = [(c["type"], c["function"]["name"], c["function"]["arguments"]) for c in theirs.get("tool_calls", [])]
        assert calls == [("function", c.name, c.arguments) for c in ours.calls], text
        assert (theirs.get("content") or None) == (ours.content or None), text
        assert theirs.get("reasoning_content") == ours.reasoning, text


def test_the_prompt_prefix_does_not_leak_into_the_answer():
    prefix = '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<|use_tool|>[old(a=1)]<|im_end|>\n' \
             '<|im_start|>tool\n1<|im_end|>\n<|im_start|>assistant\n'
    parsed = parse_response("<|answer|>Done.<|im_end|>", response_template("tools-dt"), prefix=prefix)
    assert parsed == {"role": "assistant", "content": "Done."}


def test_save_tokenizer_writes_the_response_template_into_tokenizer_config(tmp_path):
    from transformers import AutoTokenizer

    from raypipe.templates import save_tokenizer
    from raypipe.tiny import make_tiny_tokenizer

    save_tokenizer(make_tiny_tokenizer(["hello world"] * 3, vocab_size=300), "tools-dt-json", tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["response_template"] == response_template("tools-dt-json")
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))
    assert loaded.response_template == response_template("tools-dt-json")
    text = '<|use_tool|><|tool_call_begin|>{"name": "f", "arguments": {"a": 1}}<|tool_call_end|><|im_end|>'
    ids = loaded(text, add_special_tokens=False)["input_ids"]
    assert loaded.parse_response(ids, prefix="")["tool_calls"] == [
        {"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]
