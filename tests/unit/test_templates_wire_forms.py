"""OpenAI wire forms render exactly as the object forms do, in every preset (renderer and Jinja).

TRL and LLaMA-Factory call the chat template on whatever the data holds: ``arguments`` as a JSON
string (OpenAI's fine-tuning format), ``content`` as a list of text parts.
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raypipe.schema import Message
from raypipe.templates import PRESETS, chat_template, render_prompt
from raypipe.tiny import make_tiny_tokenizer

pytestmark = pytest.mark.unit

ARGS = {"city": '台北 "q" \\ \n\t', "n": -12, "f": 1.5e-07, "big": 12345678901234567890,
        "nested": [1, {"z": None, "a": True}], "empty": {}, "emoji": "🌧 \u0001 🌦"}  # (a lone surrogate is refused as not Unicode)
TOOLS = [{"type": "function", "function": {"name": "w.x", "parameters": {"type": "object"}}}]


@pytest.fixture(scope="module")
def tokenizer():
    return make_tiny_tokenizer(["hello world"] * 3, vocab_size=280)


def conversation(arguments, content, parts: bool) -> list[dict]:
    text = (lambda s: [{"type": "text", "text": s[:3]}, {"type": "text", "text": s[3:]}]) if parts else (lambda s: s)
    return [
        {"role": "system", "content": text("Be brief.")},
        {"role": "user", "content": text("Weather in Taipei?")},
        {"role": "assistant", "content": text(content) if content else content,
         "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "w.x", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": text("30C")},
    ]


def jinja(tokenizer, name, messages):
    return tokenizer.apply_chat_template(messages, tools=TOOLS, tokenize=False, add_generation_prompt=True,
                                         chat_template=chat_template(name))


WIRE_ARGUMENTS = [
    json.dumps(ARGS),  # OpenAI's default: ASCII with \\u escapes
    json.dumps(ARGS, ensure_ascii=False),
    json.dumps(ARGS, indent=2, sort_keys=True),
    json.dumps(ARGS, separators=(",", ":")),
]


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("content", [None, "Let me check."])
def test_string_arguments_and_content_parts_render_as_objects_do(tokenizer, name, content):
    expected = jinja(tokenizer, name, conversation(ARGS, content, parts=False))
    # the renderer and the Jinja twin agree on the object form ...
    assert expected == render_prompt([Message.from_dict(m) for m in conversation(ARGS, content, False)],
                                     [t["function"] for t in TOOLS], name)
    # ... and every wire form renders the same, in both
    for arguments in WIRE_ARGUMENTS:
        for parts in (False, True):
            messages = conversation(arguments, content, parts)
            assert jinja(tokenizer, name, messages) == expected, (arguments, parts)
            assert render_prompt(messages, [t["function"] for t in TOOLS], name) == expected


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(arguments=st.dictionaries(st.sampled_from(["a", "b_1", "city"]), VALUES, max_size=3),
       name=st.sampled_from(["tools-dt", "tools-dt-json"]), ascii_only=st.booleans(), indent=st.sampled_from([None, 1]))
def test_any_json_arguments_string_renders_like_its_object(tokenizer, arguments, name, ascii_only, indent):
    wire = json.dumps(arguments, ensure_ascii=ascii_only, indent=indent)
    assert jinja(tokenizer, name, conversation(wire, None, False)) == jinja(tokenizer, name, conversation(arguments, None, False))


@pytest.mark.parametrize("bad", ["[1]", '{"a": 1', '{"a": 1} trailing', "nope", '{"a": tru}'])
def test_arguments_that_are_not_a_json_object_are_refused_by_both(tokenizer, bad):
    from jinja2 import TemplateError

    with pytest.raises(TemplateError, match="JSON object"):
        jinja(tokenizer, "tools-dt", conversation(bad, None, False))
    with pytest.raises(ValueError):
        render_prompt(conversation(bad, None, False), [TOOLS[0]["function"]], "tools-dt")


def test_empty_string_arguments_are_no_arguments(tokenizer):
    assert jinja(tokenizer, "tools-dt", conversation("", None, False)) == jinja(tokenizer, "tools-dt", conversation({}, None, False))
    assert Message.from_dict(conversation("", None, False)[2]).tool_calls[0].arguments == {}


def test_non_text_content_parts_are_refused(tokenizer):
    from jinja2 import TemplateError

    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    with pytest.raises(TemplateError, match="text content parts"):
        jinja(tokenizer, "tools-dt", messages)
    with pytest.raises(ValueError, match="text parts"):
        Message.from_dict(messages[0])


def test_reasoning_under_either_name_renders_in_cot_formats(tokenizer):
    base = conversation(ARGS, None, False)
    with_content = [*base[:2], {**base[2], "reasoning_content": "why"}]
    with_plain = [*base[:2], {**base[2], "reasoning": "why"}]
    assert jinja(tokenizer, "tools-dt-cot", with_content) == jinja(tokenizer, "tools-dt-cot", with_plain)
    assert "<think>why</think>" in jinja(tokenizer, "tools-dt-cot", with_plain)
    assert Message.from_dict(with_content[2]).reasoning == "why"


def test_null_values_in_function_specs_are_not_rendered(tokenizer):
    """`datasets` merges the schemas of all rows' tools: a spec gets null for properties it lacks."""
    merged = [{"type": "function", "function": {"name": "w.x", "description": None, "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "enum": None}, "tz": None}, "required": None}}}]
    clean = [{"type": "function", "function": {"name": "w.x", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    messages = conversation(ARGS, None, False)
    for name in ("tools-dt", "system-dt"):
        def jinja_with(tools):
            return tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, chat_template=chat_template(name))
        assert jinja_with(merged) == jinja_with(clean)
        assert render_prompt(messages, [t["function"] for t in merged], name) == \
            render_prompt(messages, [t["function"] for t in clean], name)
