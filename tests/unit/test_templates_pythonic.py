import pytest

from raypipe.schema import ToolCall
from raypipe.templates import ParseError, format_calls, parse_pythonic
from raypipe.templates.pythonic import strip_code_fence

pytestmark = pytest.mark.unit


def test_list_of_calls_with_typed_values():
    text = '[f(a=1, b="x", c=[1, 2.5], d={"k": None}, e=True), mod.sub.g(z=-3)]'
    assert parse_pythonic(text) == [
        ("f", {"a": 1, "b": "x", "c": [1, 2.5], "d": {"k": None}, "e": True}),
        ("mod.sub.g", {"z": -3}),
    ]


@pytest.mark.parametrize(
    "text",
    ["f(a=1)", "  f(a=1)\n", "[f(a=1)]", "```python\n[f(a=1)]\n```", "```\nf(a=1)\n```"],
)
def test_single_call_forms(text):
    assert parse_pythonic(text) == [("f", {"a": 1})]


def test_bare_comma_separated_calls_are_a_list():
    assert parse_pythonic("f(a=1), g(b=2)") == [("f", {"a": 1}), ("g", {"b": 2})]


def test_bare_call_ending_in_a_list_argument():
    # the reference's "append ] unless it ends with ]" would break this one
    assert parse_pythonic("f(a=[1, 2])") == [("f", {"a": [1, 2]})]


@pytest.mark.parametrize(
    "expr, value",
    [
        ("3*4", 12),
        ("2**10", 1024),
        ("-5", -5),
        ("+5", 5),
        ("1e3", 1000.0),
        ("-1.5e-3", -0.0015),
        ("10/4", 2.5),
        ("7//2", 3),
        ("7%3", 1),
        ("(1+2)*-3", -9),
        ("6.02*10**23", 6.02 * 10**23),  # same float as the reference eval
        ('"ab" + "cd"', "abcd"),
    ],
)
def test_arithmetic_on_literals_is_folded(expr, value):
    [(_, args)] = parse_pythonic(f"f(x={expr})")
    assert args["x"] == value and type(args["x"]) is type(value)


def test_bare_name_becomes_its_identifier():
    assert parse_pythonic("f(unit=celsius)") == [("f", {"unit": "celsius"})]


def test_nested_call_without_keywords_is_its_source_text():
    assert parse_pythonic("f(x=math.sqrt(16), y=g())") == [
        ("f", {"x": "math.sqrt(16)", "y": "g()"})
    ]


def test_nested_call_with_keywords_is_a_nested_call_dict():
    assert parse_pythonic("f(x=g(a=1, b=h(c='z')))") == [
        ("f", {"x": {"g": {"a": 1, "b": {"h": {"c": "z"}}}}})
    ]


def test_positional_arguments_are_ignored():
    assert parse_pythonic("f(1, 2, b=3)") == [("f", {"b": 3})]


def test_tuple_becomes_list_and_ellipsis_a_string():
    assert parse_pythonic("f(t=(1, 'a'), e=...)") == [("f", {"t": [1, "a"], "e": "..."})]


def test_template_parse_gets_json_lists_for_tuples():
    import json

    from raypipe.templates import parse_completion

    parsed = parse_completion("[f(t=(1, (2, 'a')), d={'k': (3,)})]", "tools")
    assert parsed.calls[0].arguments == {"t": [1, [2, "a"]], "d": {"k": [3]}}
    json.dumps(parsed.calls[0].arguments)  # ToolCall.arguments must be JSON


def test_bfcl_quirks_keep_tuples_as_the_reference_does():
    [(_, args)] = parse_pythonic("f(t=(1, 'a'), n=[(2,)], d={(1, 2): (3,)}, e=())", bfcl_quirks=True)
    # == between a tuple and a list is False, so this also checks the container types
    assert args == {"t": (1, "a"), "n": [(2,)], "d": {(1, 2): (3,)}, "e": ()}
    with pytest.raises(ParseError):
        parse_pythonic("f(d={(1, [2]): 3})", bfcl_quirks=True)  # unhashable key, a TypeError there


def test_bfcl_quirks_kwargs_unpacking_is_the_parameter_none():
    assert parse_pythonic("f(a=1, **kw)", bfcl_quirks=True) == [("f", {"a": 1, None: "kw"})]
    assert parse_pythonic("f(x=g(**{'b': 2}))", bfcl_quirks=True) == [("f", {"x": {"g": {None: {"b": 2}}}})]


@pytest.mark.parametrize(
    "expr, value",
    [
        ("+5", -5),  # the reference's quirk: every unary operator negates
        ("-5", -5),
        ("~5", -5),
        ("not 5", -5),
        ("not True", -1),
        ("-True", -1),
        ("+2.5", -2.5),
        ("[+1, (-2,)]", [-1, (-2,)]),
        ("{'k': +3}", {"k": -3}),
        ("g(x=+4)", {"g": {"x": -4}}),
        # inside arithmetic the reference evaluates the whole expression: no quirk there
        ("2*+3", 6),
        ("1 - -2", 3),
        ("-2*3", -6),
    ],
)
def test_bfcl_quirks_unary_operator_as_the_reference_decodes_it(expr, value):
    [(_, args)] = parse_pythonic(f"f(x={expr})", bfcl_quirks=True)
    assert args["x"] == value and type(args["x"]) is type(value)


@pytest.mark.parametrize("expr", ["-(2*3)", "-2**2", "--5", "-x", "-'a'", "-None", "-math.pi", "-1j", "[-(1+1)]"])
def test_bfcl_quirks_unary_operator_on_a_non_literal_fails_as_in_the_reference(expr):
    with pytest.raises(ParseError):
        parse_pythonic(f"f(x={expr})", bfcl_quirks=True)


@pytest.mark.parametrize("expr, value", [("-(2*3)", -6), ("-2**2", -4), ("--5", 5), ("+5", 5)])
def test_template_parse_computes_unary_operators_correctly(expr, value):
    assert parse_pythonic(f"f(x={expr})") == [("f", {"x": value})]


def test_empty_list_is_no_calls():
    assert parse_pythonic("[]") == []


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "I cannot help with that.",
        "[f(a=1), 3]",
        "f(a=",
        "f(**kw)",
        "f(a=x+1)",  # arithmetic on a name: the reference's eval fails too
        "f(a=lambda: 1)",
        "f(a=os.environ)",
        "f(a={1, 2})",
        "f(a=10**10**10)",
        "f(a=1/0)",
        "f(a=b'x')",
        "f()(a=1)",
        "42",
    ],
)
def test_malformed_input_raises_parse_error(text):
    with pytest.raises(ParseError):
        parse_pythonic(text)


def test_never_executes_model_output(tmp_path):
    marker = tmp_path / "pwned"
    text = f"f(a=__import__('os').system('touch {marker}'))"
    # a nested call without keywords is kept as text, not run
    assert parse_pythonic(text) == [("f", {"a": f"__import__('os').system('touch {marker}')"})]
    assert not marker.exists()


def test_format_calls_writes_json_style_literals():
    calls = [
        ToolCall("weather.get", {"city": 'Tai"pei', "days": 3, "metric": True}),
        ToolCall("g", {"xs": [1, -2.5, None], "d": {"k": "台北"}}),
    ]
    text = format_calls(calls)
    assert text == (
        '[weather.get(city="Tai\\"pei", days=3, metric=True), '
        'g(xs=[1, -2.5, None], d={"k": "台北"})]'
    )
    assert parse_pythonic(text) == [(c.name, c.arguments) for c in calls]


def test_format_calls_accepts_pairs_and_empty():
    assert format_calls([("f", {})]) == "[f()]"
    assert format_calls([]) == "[]"


@pytest.mark.parametrize(
    "call",
    [("not a name", {}), ("f", {"a-b": 1}), ("f", {"class": 1}), ("f", {"x": float("nan")})],
)
def test_format_calls_rejects_what_it_cannot_write(call):
    with pytest.raises(ValueError):
        format_calls([call])


def test_strip_code_fence_keeps_unfenced_text():
    assert strip_code_fence("  [f()]  ") == "[f()]"
    assert strip_code_fence("```py\n[f()]```") == "[f()]"
