"""Every rule of shared/design/bfcl-scoring.md, with hand-made items and the reference's error types."""

import pytest

from raypipe.eval.bfcl_data import BfclItem
from raypipe.eval.checker import check_ast, check_call, is_empty_output, standardize_string

pytestmark = pytest.mark.unit


def spec(name="f", required=(), **params):
    """A function spec; params are type names or full property dicts."""
    props = {k: (v if isinstance(v, dict) else {"type": v}) for k, v in params.items()}
    return {"name": name, "parameters": {"type": "dict", "properties": props, "required": list(required)}}


def check(s, args, acceptable, name=None, **kw):
    return check_call(s, {name or s["name"]: args}, {s["name"]: acceptable}, **kw)


def item(category, functions, truth, rules="v1", version="v1"):
    """`category` is a V1 name; V3/V4 items (`version`) take the upstream name of the same kind."""
    if version != "v1":
        category = {"simple": "simple_python" if version == "v4" else "simple", "multiple_function": "multiple",
                    "parallel_function": "parallel", "parallel_multiple_function": "parallel_multiple"}[category]
    return BfclItem(id=f"{category}_0", category=category, question=[], functions=functions,
                    ground_truth=truth, rules=rules, version=version)


# -- names, required, unexpected ------------------------------------------------------------


def test_function_name_must_match():
    r = check_call(spec("math.factorial", number="integer"), {"math.fact": {"number": 5}},
                   {"math.factorial": {"number": [5]}})
    assert (r.valid, r.error_type) == (False, "simple_function_checker:wrong_func_name")


def test_underscore_to_dot_compares_against_the_name_with_underscores():
    s = spec("math.factorial", number="integer")
    truth = {"math.factorial": {"number": [5]}}
    assert check_call(s, {"math_factorial": {"number": 5}}, truth, underscore_to_dot=True).valid
    assert not check_call(s, {"math_factorial": {"number": 5}}, truth).valid
    # With the option on, the dotted name is what the API could not send: it no longer matches.
    r = check_call(s, {"math.factorial": {"number": 5}}, truth, underscore_to_dot=True)
    assert r.error_type == "simple_function_checker:wrong_func_name"


def test_missing_required_parameter():
    r = check(spec(required=["a"], a="integer", b="integer"), {"b": 1}, {"a": [1], "b": [1]})
    assert r.error_type == "simple_function_checker:missing_required"


def test_parameter_must_exist_in_spec_and_in_possible_answer():
    s = spec(a="integer", b="integer")
    assert check(s, {"a": 1, "c": 2}, {"a": [1]}).error_type == "simple_function_checker:unexpected_param"
    # b is in the spec but the possible answer does not list it
    assert check(s, {"a": 1, "b": 2}, {"a": [1]}).error_type == "simple_function_checker:unexpected_param"


# -- types --------------------------------------------------------------------------------------


def test_wrong_type_is_a_simple_type_error():
    r = check(spec(n="integer"), {"n": "5"}, {"n": [5]})
    assert r.error_type == "type_error:simple"


def test_int_accepted_for_float_but_not_float_for_int():
    assert check(spec(x="float"), {"x": 5}, {"x": [5.0]}).valid
    assert check(spec(x="integer"), {"x": 5.0}, {"x": [5]}).error_type == "type_error:simple"


def test_int_to_float_allowance_is_top_level_only():
    s = spec(xs={"type": "array", "items": {"type": "float"}})
    assert check(s, {"xs": [1.0, 2.5]}, {"xs": [[1.0, 2.5]]}).valid
    assert check(s, {"xs": [1, 2.5]}, {"xs": [[1.0, 2.5]]}).error_type == "type_error:nested"


def test_bool_is_not_an_int_for_the_type_check():
    assert check(spec(n="integer"), {"n": True}, {"n": [1]}).error_type == "type_error:simple"
    assert check(spec(b="boolean"), {"b": 1}, {"b": [True]}).error_type == "type_error:simple"
    assert check(spec(b="boolean"), {"b": True}, {"b": [True, ""]}).valid


def test_true_equals_one_pitfall_in_plain_membership():
    # Acceptable values of another type (int) than the spec (boolean) make it a "variable";
    # True then passes the type check and `True in [1]` is True, as in the reference.
    assert check(spec(b="boolean"), {"b": True}, {"b": [1]}).valid


def test_variable_escape():
    s = spec(n="integer")
    acceptable = {"n": ["num_items"]}  # the answer is a variable name, not an integer
    assert check(s, {"n": "num_items"}, acceptable).valid
    # compared as a plain value: no string standardisation for variables
    assert check(s, {"n": "NUM_ITEMS"}, acceptable).error_type == "value_error:others"
    assert check(s, {"n": 5}, acceptable).error_type == "value_error:others"
    assert check(s, {"n": 5.0}, acceptable).error_type == "type_error:simple"


def test_only_optional_acceptable_value_gives_no_variable_type():
    assert check(spec(n="integer"), {"n": "x"}, {"n": [""]}).error_type == "type_error:simple"


def test_any_type_means_string():
    assert check(spec(v="any"), {"v": "Hello"}, {"v": ["hello"]}).valid
    assert check(spec(v="any"), {"v": 3}, {"v": ["3"]}).error_type == "type_error:simple"


def test_tuple_value_becomes_a_list_only_for_tuple_parameters():
    t = spec(p={"type": "tuple", "items": {"type": "integer"}})
    assert check(t, {"p": (1, 2)}, {"p": [[1, 2]]}).valid
    a = spec(p={"type": "array", "items": {"type": "integer"}})
    assert check(a, {"p": (1, 2)}, {"p": [[1, 2]]}).error_type == "type_error:simple"


def test_array_elements_are_type_checked_one_level_deep():
    s = spec(p={"type": "array", "items": {"type": "integer"}})
    assert check(s, {"p": [1, "2"]}, {"p": [[1, 2]]}).error_type == "type_error:nested"
    # one level only: the inner lists of a list of lists are not looked into
    deep = spec(p={"type": "array", "items": {"type": "array"}})
    assert check(deep, {"p": [[1, "x"]]}, {"p": [[[1, "x"]]]}).valid


def test_optional_alternative_skips_the_element_check_as_in_the_reference():
    s = spec(p={"type": "array", "items": {"type": "integer"}})
    r = check(s, {"p": [1, "x"]}, {"p": ["", [1, 2]]})
    assert r.error_type == "value_error:list/tuple"  # not type_error:nested


def test_unknown_spec_type_is_reported():
    assert check(spec(p="number"), {"p": 1}, {"p": [1]}).error_type == "type_error:unknown_spec_type"


# -- values -------------------------------------------------------------------------------------


def test_string_standardisation():
    assert standardize_string("New York, NY") == "newyorkny"
    assert standardize_string("a-b_c/d.e*f^g h") == "abcdefgh"
    assert standardize_string("It's") == 'it"s'
    s = spec(city="string")
    assert check(s, {"city": "new york ny"}, {"city": ["New York, NY"]}).valid
    assert check(s, {"city": "April 1 2024"}, {"city": ["April 1, 2024"]}).valid
    assert check(s, {"city": "Paris"}, {"city": ["Berlin"]}).error_type == "value_error:string"
    # other characters are kept: a colon still differs
    assert check(s, {"city": "7:30"}, {"city": ["730"]}).error_type == "value_error:string"


def test_chinese_aliases_are_acceptable_values():
    s = spec(country="string")
    acceptable = {"country": ["Brazil", "巴西"]}
    assert check(s, {"country": "巴西"}, acceptable).valid
    assert check(s, {"country": "巴 西"}, acceptable).valid  # spaces removed on both sides
    assert check(s, {"country": "巴黎"}, acceptable).error_type == "value_error:string"


def test_numbers_and_booleans_use_plain_membership():
    assert check(spec(n="integer"), {"n": 5}, {"n": [6]}).error_type == "value_error:others"
    assert check(spec(x="float"), {"x": 0.1}, {"x": [0.1, 0.2]}).valid
    assert check(spec(b="boolean"), {"b": False}, {"b": [True]}).error_type == "value_error:others"


def test_list_values_keep_order_and_standardise_strings():
    s = spec(xs={"type": "array", "items": {"type": "string"}})
    assert check(s, {"xs": ["new york", "LA"]}, {"xs": [["New York", "la"]]}).valid
    assert check(s, {"xs": ["b", "a"]}, {"xs": [["a", "b"]]}).error_type == "value_error:list/tuple"
    assert check(s, {"xs": ["b", "a"]}, {"xs": [["a", "b"], ["b", "a"]]}).valid
    assert check(s, {"xs": ["a"]}, {"xs": [["a", "b"]]}).error_type == "value_error:list/tuple"


def test_empty_list_matches_an_optional_alternative_as_in_the_reference():
    s = spec(xs={"type": "array", "items": {"type": "string"}})
    assert check(s, {"xs": []}, {"xs": [["a"], ""]}).valid


def test_dict_values():
    s = spec(d="dict")
    acceptable = {"d": [{"name": ["John Doe"], "age": [30, 31]}]}
    assert check(s, {"d": {"name": "john doe", "age": 31}}, acceptable).valid
    assert check(s, {"d": {"name": "John Doe"}}, acceptable).error_type == "value_error:dict_items"
    assert check(s, {"d": {"name": "John Doe", "years": 30}}, acceptable).error_type == "value_error:dict_key"
    assert check(s, {"d": {"name": "Jane", "age": 30}}, acceptable).error_type == "value_error:dict_value"


def test_nested_dicts_recurse():
    s = spec(d="dict")
    acceptable = {"d": [{"user": {"name": ["Ann"], "id": [7]}, "active": [True]}]}
    assert check(s, {"d": {"user": {"name": "ann", "id": 7}, "active": True}}, acceptable).valid
    r = check(s, {"d": {"user": {"name": "Bob", "id": 7}, "active": True}}, acceptable)
    assert r.error_type == "value_error:dict_value"
    r = check(s, {"d": {"user": "Ann", "active": True}}, acceptable)  # the reference would crash
    assert r.error_type == "value_error:dict_value"


def test_dict_alternatives_are_tried_in_turn():
    s = spec(d="dict")
    acceptable = {"d": ["", {"a": [1]}, {"b": [2]}]}
    assert check(s, {"d": {"b": 2}}, acceptable).valid


def test_lists_of_dicts_are_compared_item_by_item():
    s = spec(xs={"type": "array", "items": {"type": "dict"}})
    acceptable = {"xs": [[{"a": [1]}, {"a": [2]}]]}
    assert check(s, {"xs": [{"a": 1}, {"a": 2}]}, acceptable).valid
    assert check(s, {"xs": [{"a": 2}, {"a": 1}]}, acceptable).error_type == "value_error:dict_value"
    assert check(s, {"xs": [{"a": 1}]}, acceptable).error_type == "value_error:list_dict_count"


def test_optional_parameters_marked_with_empty_string():
    s = spec(required=["a"], a="integer", unit="string")
    assert check(s, {"a": 1}, {"a": [1], "unit": ["cm", ""]}).valid
    r = check(s, {"a": 1}, {"a": [1], "unit": ["cm"]})
    assert r.error_type == "simple_function_checker:missing_optional"
    assert check(s, {"a": 1, "unit": "CM"}, {"a": [1], "unit": ["cm", ""]}).valid
    # an explicit "" passes where "" is acceptable (standardised membership)
    assert check(s, {"a": 1, "unit": ""}, {"a": [1], "unit": ["cm", ""]}).valid


# -- items: counts, order, spec lookup ------------------------------------------------------------


def test_simple_needs_exactly_one_call():
    it = item("simple", [spec("f", n="integer")], [{"f": {"n": [1]}}])
    assert check_ast(it, [{"f": {"n": 1}}]).valid
    assert check_ast(it, []).error_type == "simple_function_checker:wrong_count"
    assert check_ast(it, [{"f": {"n": 1}}, {"f": {"n": 1}}]).error_type == "simple_function_checker:wrong_count"


def test_parallel_matching_ignores_order():
    s = spec("spotify.play", artist="string", duration="integer")
    it = item("parallel_function", [s], [
        {"spotify.play_1": {"artist": ["Taylor Swift"], "duration": [20]}},
        {"spotify.play_2": {"artist": ["Maroon 5"], "duration": [15]}},
    ])
    calls = [{"spotify.play": {"artist": "Maroon 5", "duration": 15}},
             {"spotify.play": {"artist": "Taylor Swift", "duration": 20}}]
    assert check_ast(it, calls).valid
    assert check_ast(it, calls[:1]).error_type == "parallel_function_checker_no_order:wrong_count"
    wrong = [calls[0], {"spotify.play": {"artist": "Taylor Swift", "duration": 25}}]
    r = check_ast(it, wrong)
    assert r.error_type == "parallel_function_checker_no_order:cannot_find_match"
    # why each candidate failed: call 0 has another artist, call 1 another duration
    assert [e["error_type"] for e in r.errors[1:]] == ["value_error:string", "value_error:others"]


def test_parallel_matching_is_greedy_in_expected_order():
    # Expected call 0 accepts x=1 or x=2 and takes the first decoded call that passes (x=1);
    # expected call 1 needs x=1, which is used: a one-to-one assignment exists, the greedy fails.
    s = spec("f", x="integer")
    it = item("parallel_function", [s], [{"f_1": {"x": [1, 2]}}, {"f_2": {"x": [1]}}])
    assert not check_ast(it, [{"f": {"x": 1}}, {"f": {"x": 2}}]).valid
    assert check_ast(it, [{"f": {"x": 2}}, {"f": {"x": 1}}]).valid


def test_multiple_function_expects_the_chosen_function():
    fs = [spec("circle.area", r="float"), spec("square.area", side="float")]
    it = item("multiple_function", fs, [{"square.area": {"side": [2.0]}}])
    assert check_ast(it, [{"square.area": {"side": 2}}]).valid
    r = check_ast(it, [{"circle.area": {"r": 2.0}}])
    assert r.error_type == "parallel_function_checker_no_order:cannot_find_match"
    assert r.errors[1]["error_type"] == "simple_function_checker:wrong_func_name"


def test_parallel_multiple_matches_each_expected_call_against_its_spec():
    fs = [spec("a.f", x="integer"), spec("b.g", y="string")]
    it = item("parallel_multiple_function", fs, [{"a.f": {"x": [1]}}, {"b.g": {"y": ["z"]}}])
    assert check_ast(it, [{"b.g": {"y": "Z"}}, {"a.f": {"x": 1}}]).valid


def test_substring_spec_lookup_quirk():
    # V1: the spec of key "get_weather_forecast" is the first spec whose name is contained in
    # the key, i.e. "get_weather": the correct call can never pass (reference behaviour).
    fs = [spec("get_weather", city="string"), spec("get_weather_forecast", city="string")]
    truth = [{"get_weather_forecast": {"city": ["Paris"]}}]
    call = [{"get_weather_forecast": {"city": "Paris"}}]
    r = check_ast(item("multiple_function", fs, truth, rules="v1"), call)
    assert r.error_type == "parallel_function_checker_no_order:cannot_find_match"
    # V3/V4 data is looked up by exact name (whichever rules apply)
    for rules in ("upstream", "v1"):
        assert check_ast(item("multiple_function", fs, truth, rules=rules, version="v4"), call).valid


def test_possible_answer_key_without_a_spec():
    it = item("parallel_multiple_function", [spec("f", x="integer")], [{"g_1": {"x": [1]}}])
    r = check_ast(it, [{"f": {"x": 1}}])
    assert r.error_type == "parallel_function_checker_no_order:cannot_find_description"


def test_empty_output_shapes():
    assert is_empty_output([])
    assert is_empty_output([{}])
    assert is_empty_output("text")
    assert is_empty_output([{"f": "not a dict"}])
    assert not is_empty_output([{"f": {}}])
    assert not is_empty_output([{"f": {"x": 1}}])


# -- upstream bfcl_eval rules where they differ from V1's ----------------------------------------


def test_upstream_dicts_may_omit_optional_keys():
    s = spec(d="dict")
    acceptable = {"d": [{"name": ["Ann"], "age": [30, ""]}]}
    call = {"d": {"name": "Ann"}}
    assert check(s, call, acceptable, rules="upstream").valid
    assert check(s, call, acceptable, rules="v1").error_type == "value_error:dict_items"
    r = check(s, {"d": {"age": 30}}, acceptable, rules="upstream")
    assert (r.error_type, r.errors) == ("value_error:dict_key", ["Missing dict key parameter: 'name'."])
    r = check(s, {"d": {"name": "Ann", "x": 1}}, acceptable, rules="upstream")
    assert r.errors == ["Unexpected dict key parameter: 'x'."]
    # a wrong value and a missing key: upstream reports both and calls it a key error
    r = check(s, {"d": {"age": 31}}, {"d": [{"name": ["Ann"], "age": [30]}]}, rules="upstream")
    assert r.error_type == "value_error:dict_key" and len(r.errors) == 2


def test_upstream_multiple_function_checker():
    fs = [spec("circle.area", r="float"), spec("square.area", side="float")]
    it = item("multiple_function", fs, [{"square.area": {"side": [2.0]}}], rules="upstream", version="v4")
    assert check_ast(it, [{"square.area": {"side": 2}}]).valid
    assert check_ast(it, []).error_type == "multiple_function_checker:wrong_count"
    assert check_ast(it, [{"circle.area": {"r": 2.0}}]).error_type == "simple_function_checker:wrong_func_name"
