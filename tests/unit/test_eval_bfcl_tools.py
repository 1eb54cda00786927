"""BFCL function docs as OpenAI tools (FC mode) and as a system prompt (prompt mode)."""

import json

import pytest

from raypipe.eval.bfcl_tools import (
    DEFAULT_SYSTEM_PROMPT,
    PYTHON_HINT,
    fc_result,
    openai_name,
    prompt_mode_messages,
    to_json_schema,
    to_openai_tools,
)

pytestmark = pytest.mark.unit

SPEC = {"name": "shipping.quote", "description": "Price of a parcel.", "parameters": {
    "type": "dict", "required": ["weight", "box"], "properties": {
        "weight": {"type": "float", "description": "kg"},
        "box": {"type": "tuple", "items": {"type": "integer"}},
        "meta": {"type": "any"},
        "address": {"type": "dict", "properties": {"zip": {"type": "string"}, "geo": {
            "type": "dict", "properties": {"lat": {"type": "float"}}}}},
        "stops": {"type": "array", "items": {"type": "dict", "properties": {"when": {"type": "float"}}}},
        "odd": {"description": "no type"},
        "express": {"type": "boolean", "default": False}}}}


def test_bfcl_types_become_json_schema_everywhere():
    [tool] = to_openai_tools([SPEC])
    assert tool["type"] == "function"
    fn = tool["function"]
    assert fn["name"] == "shipping_quote" and fn["description"] == "Price of a parcel." + PYTHON_HINT
    params = fn["parameters"]
    assert params["type"] == "object" and params["required"] == ["weight", "box"]
    props = params["properties"]
    assert props["weight"]["type"] == "number" and props["box"] == {"type": "array", "items": {"type": "integer"}}
    assert props["meta"]["type"] == "string"  # any: the model writes it as text, as upstream does
    assert props["address"]["type"] == "object" and props["address"]["properties"]["geo"]["type"] == "object"
    assert props["address"]["properties"]["geo"]["properties"]["lat"]["type"] == "number"
    assert props["stops"]["items"]["type"] == "object" and props["stops"]["items"]["properties"]["when"]["type"] == "number"
    assert props["odd"]["type"] == "string" and props["express"] == {"type": "boolean", "default": False}
    assert SPEC["parameters"]["type"] == "dict" and SPEC["name"] == "shipping.quote"  # the item is not changed
    assert to_openai_tools([SPEC], python_hint=False)[0]["function"]["description"] == "Price of a parcel."
    json.dumps(tool)


def test_names_and_schema_helpers():
    assert openai_name("a.b.c") == "a_b_c" and openai_name("plain") == "plain"
    assert to_json_schema({"type": "Hashtable"})["type"] == "string"  # unknown: text
    assert to_json_schema({"type": ["string", "null"]})["type"] == ["string", "null"]  # already JSON Schema
    assert to_openai_tools([{"name": "f", "description": "d"}])[0]["function"]["parameters"] == {
        "type": "object", "properties": {}}


def test_prompt_mode_messages():
    question = [{"role": "user", "content": "How much for 2 kg?"}]
    messages = prompt_mode_messages(question, [SPEC])
    assert [m["role"] for m in messages] == ["system", "user"]
    system = messages[0]["content"]
    assert system.startswith(DEFAULT_SYSTEM_PROMPT.split("{functions}")[0])
    assert '"name": "shipping.quote"' in system and PYTHON_HINT.strip() in system  # dotted names kept
    with_system = prompt_mode_messages([{"role": "system", "content": "Be brief."}, *question], [SPEC],
                                       template="TOOLS: {functions}")
    assert len(with_system) == 2 and with_system[0]["content"].startswith("TOOLS: [")
    assert with_system[0]["content"].endswith("\n\nBe brief.")
    assert question == [{"role": "user", "content": "How much for 2 kg?"}]  # not changed in place


def test_fc_results_in_bfcl_form():
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
             {"id": "c2", "type": "function", "function": {"name": "g", "arguments": ""}}]
    assert fc_result(calls, "") == [{"f": '{"a": 1}'}, {"g": "{}"}]
    assert fc_result(None, "No tool fits.") == "No tool fits."
