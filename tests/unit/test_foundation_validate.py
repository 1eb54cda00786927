import pytest

from raypipe.schema import Message, Sample, ToolCall
from raypipe.validate import validate_sample

pytestmark = pytest.mark.unit

SPEC = {
    "name": "book",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "nights": {"type": "integer"},
            "price": {"type": "number"},
            "smoking": {"type": "boolean"},
            "room": {"type": "object", "properties": {"kind": {"type": "string", "enum": ["single", "double"]}},
                     "required": ["kind"]},
            "guests": {"type": "array", "items": {"type": "string"}},
            "unit": {"type": "string", "enum": ["c", "f"]},
        },
        "required": ["city", "nights"],
    },
}
BFCL_SPEC = {"name": "math.hypot", "parameters": {"type": "dict", "properties": {
    "x": {"type": "integer"}, "y": {"type": "float"}, "pts": {"type": "tuple"}, "any": {"type": "any"}},
    "required": ["x"]}}


def problems(*messages, functions=(SPEC,)):
    return {(p.path, p.message) for p in validate_sample(Sample(functions=list(functions), messages=list(messages)))}


def call(**args):
    return Message("assistant", None, tool_calls=[ToolCall("book", args)])


def paths(found):
    return {p for p, _ in found}


def test_a_valid_sample_has_no_problems():
    assert problems(Message("user", "hi"), call(city="Rome", nights=2, price=3, room={"kind": "double"},
                                                 guests=["a"], smoking=False, unit="c")) == set()


def test_undeclared_function():
    found = problems(Message("user", "hi"), Message("assistant", None, tool_calls=[ToolCall("nope", {})]))
    assert found == {("messages[1].tool_calls[0].name", "undeclared function 'nope'")}


def test_every_problem_is_reported_with_its_exact_path():
    found = problems(Message("user", "hi"), Message("assistant", None, tool_calls=[
        ToolCall("book", {"nights": "2", "price": True, "room": {"kind": "triple", "view": 1},
                          "guests": ["a", 3], "unit": "k", "extra": 1}),
        ToolCall("book", {"city": "x", "nights": 1}),
    ]))
    assert paths(found) == {
        "messages[1].tool_calls[0].arguments.city",  # required missing
        "messages[1].tool_calls[0].arguments.nights",  # wrong type
        "messages[1].tool_calls[0].arguments.price",  # bool is not a number
        "messages[1].tool_calls[0].arguments.room.kind",  # enum
        "messages[1].tool_calls[0].arguments.room.view",  # undeclared nested
        "messages[1].tool_calls[0].arguments.guests[1]",  # item type
        "messages[1].tool_calls[0].arguments.unit",  # enum
        "messages[1].tool_calls[0].arguments.extra",  # undeclared
    }
    assert ("messages[1].tool_calls[0].arguments.city", "required argument missing") in found
    assert ("messages[1].tool_calls[0].arguments.extra", "argument not declared by the function") in found


def test_tool_results_must_follow_calls():
    found = problems(Message("user", "hi"), Message("tool", "{}"))
    assert found == {("messages[1]", "tool result without a preceding tool call")}
    found = problems(Message("user", "hi"), Message("assistant", None, tool_calls=[ToolCall("book", {"city": "a", "nights": 1}, id="c1")]),
                     Message("tool", "{}", tool_call_id="c9", name="other"))
    assert paths(found) == {"messages[2].tool_call_id", "messages[2].name"}
    # a second result for a single call has nothing left to answer
    found = problems(Message("user", "hi"), call(city="a", nights=1), Message("tool", "1"), Message("tool", "2"))
    assert paths(found) == {"messages[3]"}


def test_conversation_level_problems():
    assert paths(problems()) == {"messages"}
    found = problems(Message("user", " "), Message("narrator", "x"), Message("user", "ok", tool_calls=[ToolCall("book", {})]))
    assert paths(found) == {"messages[0].content", "messages[1].role", "messages[2].tool_calls"}


def test_function_specs_need_unique_names():
    found = problems(Message("user", "hi"), functions=(SPEC, SPEC, {"description": "no name"}))
    assert paths(found) == {"functions[1].name", "functions[2].name"}


def test_bfcl_type_names_and_openai_wrapped_specs_are_understood():
    ok = Message("assistant", None, tool_calls=[ToolCall("math.hypot", {"x": 1, "y": 2, "pts": [1, 2], "any": {"a": 1}})])
    assert problems(Message("user", "q"), ok, functions=(BFCL_SPEC,)) == set()
    bad = Message("assistant", None, tool_calls=[ToolCall("math.hypot", {"x": 1.5, "y": "2"})])
    assert paths(problems(Message("user", "q"), bad, functions=(BFCL_SPEC,))) == {
        "messages[1].tool_calls[0].arguments.x", "messages[1].tool_calls[0].arguments.y"}
    wrapped = {"type": "function", "function": SPEC}
    assert problems(Message("user", "q"), call(city="a", nights=1), functions=(wrapped,)) == set()
