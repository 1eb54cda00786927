"""The shipped sample data is what the docs and the other areas' tests rely on."""

import json
from collections import Counter

import pytest

from raypipe.data import IF_JSONL, SAMPLES_JSONL, SOURCES_DIR, TOOLS_JSON
from raypipe.schema import Sample
from raypipe.validate import validate_sample

pytestmark = pytest.mark.unit

TOOLS = json.loads(TOOLS_JSON.read_text(encoding="utf-8"))
SAMPLES = [Sample.from_dict(json.loads(l)) for l in SAMPLES_JSONL.open(encoding="utf-8")]
IFS = [Sample.from_dict(json.loads(l)) for l in IF_JSONL.open(encoding="utf-8")]
JSON_TYPES = {"string", "integer", "number", "boolean", "array", "object"}


def _types(schema):
    yield schema.get("type")
    for prop in (schema.get("properties") or {}).values():
        yield from _types(prop)
    if isinstance(schema.get("items"), dict):
        yield from _types(schema["items"])


def test_tool_pool_is_varied_well_formed_json_schema():
    assert 20 <= len(TOOLS) <= 30
    assert len({t["name"] for t in TOOLS}) == len(TOOLS)
    used_types = set()
    for tool in TOOLS:
        params = tool["parameters"]
        assert params["type"] == "object" and tool["description"]
        assert set(params["required"]) <= set(params["properties"]), tool["name"]
        used_types |= set(_types(params))
    assert JSON_TYPES <= used_types
    assert sum("returns" in t for t in TOOLS) >= 5
    assert any("enum" in p for t in TOOLS for p in t["parameters"]["properties"].values())


def test_samples_are_valid_varied_and_drawn_from_the_pool():
    by_name = {t["name"]: t for t in TOOLS}
    assert len(SAMPLES) >= 40 and len({s.id for s in SAMPLES + IFS}) == len(SAMPLES) + len(IFS)
    for s in SAMPLES:
        assert validate_sample(s) == [], s.id
        assert 2 <= len(s.functions) <= 5
        assert all(f == by_name[f["name"]] for f in s.functions)
    kinds = Counter(s.meta["kind"] for s in SAMPLES)
    assert set(kinds) == {"single", "parallel", "multi_step", "multi_turn", "no_call"}
    assert sum(s.lang == "zh-TW" for s in SAMPLES) >= 5


def test_instruction_following_samples_have_no_functions():
    assert len(IFS) >= 15
    assert all(not s.functions and validate_sample(s) == [] and s.messages[-1].role == "assistant" for s in IFS)
    assert sum(s.lang == "zh-TW" for s in IFS) >= 3


def test_sources_folder_has_a_file_per_source_format():
    names = {p.name for p in SOURCES_DIR.rglob("*") if p.is_file()}
    assert {"openai_chat.jsonl", "chat_messages.jsonl", "xlam.json", "glaive_v2.json", "sharegpt_tools.json",
            "openorca.jsonl", "BFCL_v3_simple.json"} <= names
