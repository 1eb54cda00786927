"""The BFCL AST check of decoded calls, rule for rule as the reference checker does it.

Two references: ``eval_checker/checker.py`` of the zh-TW leaderboard (a fork of BFCL V1's
``ast_checker``), which produced the published scores of that benchmark (the "v1" rules), and
today's upstream ``bfcl_eval`` ``eval_checker/ast_eval/ast_checker.py`` (2026.3.23, the
"upstream" rules: optional dict keys may be omitted, a multiple_function_checker, upstream's
messages), where the two differ. The rules are in ``shared/design/bfcl-scoring.md``; this
module reproduces them, quirks included, because a "better" checker would not reproduce
published numbers:

- the spec of an expected call is the first spec whose name is *contained in* the key (V1 data,
  whose parallel keys carry a suffix), or whose name equals it (V3/V4 data);
- types compare exactly (``type(v) == int``: a bool is not an int); an int is accepted for a
  ``float`` parameter (top level only, not inside arrays); a tuple becomes a list only for a
  ``tuple`` parameter; arrays check element types one level deep;
- acceptable values of another type than the spec says are variable names: a value of that
  type passes the type check and is then compared as a plain value (``in``, so ``1 == True``);
- strings compare after standardisation (no spaces or ``,./-_*^``, lower case, ``'`` -> ``"``).

Where the reference would crash on malformed input (a string where a dict was expected, a
spec without a type) or on a hostile value (an integer too large for a float, 8,000 digits that
Python refuses to write, nesting deeper than Python's recursion limit), this checker returns a
failure with an error type instead (``value_error:uncomparable`` for the values).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from raypipe.eval.bfcl_arith import TooLarge
from raypipe.eval.values import safe_repr

PYTHON_TYPES = {
    "string": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "any": str,
}
NESTED_TYPES = ("array", "tuple")
_STANDARDISE = re.compile(r"[ ,./\-_*^]")


@dataclass
class CheckResult:
    valid: bool
    error_type: str = ""
    errors: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"valid": self.valid, "error_type": self.error_type, "errors": self.errors}


OK = CheckResult(True)


def _fail(error_type: str, message: Any) -> CheckResult:
    return CheckResult(False, error_type, [message])


def standardize_string(text: str) -> str:
    return _STANDARDISE.sub("", text).lower().replace("'", '"')


def _std(value: Any) -> Any:
    return standardize_string(value) if type(value) is str else value


def convert_func_name(name: str, underscore_to_dot: bool) -> str:
    """The name to look for in the model output: dots become underscores for APIs that forbid them."""
    return name.replace(".", "_") if underscore_to_dot and "." in name else name


def find_spec(functions: list[dict], key: str, exact: bool = False) -> dict | None:
    """The spec of an expected call: for V1 data the first spec whose name is contained in the
    key ("spotify.play" for "spotify.play_1"; also "get_weather" for "get_weather_forecast"
    when listed first), for V3/V4 data (`exact`) the spec whose name equals the key."""
    for spec in functions:
        if (spec["name"] == key) if exact else (spec["name"] in key):
            return spec
    return None


# -- item level ---------------------------------------------------------------------------


def check_ast(item, calls: list[dict], underscore_to_dot: bool = False) -> CheckResult:
    """Check decoded `calls` of one AST-category item (`BfclItem` with ground truth).

    The item's kind picks the check, as upstream's ``ast_checker`` does from the category name:
    simple (exactly one call), multiple (upstream: one call among several functions; V1: the
    no-order check) and parallel (no order)."""
    exact = item.version != "v1"
    if item.kind == "simple":
        if len(calls) != 1:
            return _fail("simple_function_checker:wrong_count", "Wrong number of functions.")
        spec = item.functions[0]
        return check_call(spec, calls[0], item.ground_truth[0], underscore_to_dot, item.rules)
    if item.kind == "multiple" and item.rules == "upstream":
        return check_multiple(item.functions, calls, item.ground_truth, underscore_to_dot, exact)
    return check_no_order(item.functions, calls, item.ground_truth, item.rules, underscore_to_dot, exact)


def check_multiple(functions: list[dict], calls: list[dict], expected: list[dict], underscore_to_dot=False,
                   exact: bool = True):
    """Upstream's multiple_function_checker: one expected call, checked against the first output."""
    if len(calls) != len(expected):
        return _fail("multiple_function_checker:wrong_count", "Wrong number of functions.")
    (key,) = expected[0]
    spec = find_spec(functions, key, exact)
    if spec is None:  # upstream would crash on the missing description
        return _fail("multiple_function_checker:cannot_find_description",
                     f"Function doc description not found for function name: {key!r}.")
    return check_call(spec, calls[0], expected[0], underscore_to_dot, "upstream")


def check_no_order(
    functions: list[dict],
    calls: list[dict],
    expected: list[dict],
    rules: str = "v1",
    underscore_to_dot: bool = False,
    exact: bool = False,
) -> CheckResult:
    """Each expected call, in order, takes the first unused decoded call that passes."""
    prefix = "parallel_function_checker_no_order"
    if len(calls) != len(expected):
        return _fail(f"{prefix}:wrong_count", "Wrong number of functions.")
    used: set[int] = set()
    for i, answer in enumerate(expected):
        (key,) = answer
        spec = find_spec(functions, key, exact)
        if spec is None:
            return _fail(
                f"{prefix}:cannot_find_description",
                f"Function doc description not found for function name: {key!r}.",
            )
        if not isinstance(answer[key], dict):  # malformed possible answer: nothing can match
            return _fail(f"{prefix}:cannot_find_match", f"Possible answer {key!r} is not {{param: [values]}}.")
        attempts = []
        for index, call in enumerate(calls):
            if index in used:
                continue
            result = check_call(spec, call, answer, underscore_to_dot, rules)
            if result.valid:
                used.add(index)
                break
            attempts.append({"model_index": index, "error_type": result.error_type, "errors": result.errors})
        else:
            left = [j for j in range(len(calls)) if j not in used]
            message = (
                f"Could not find a matching function among index {left} of model output "
                f"for index {i} of possible answers."
            )
            return CheckResult(False, f"{prefix}:cannot_find_match", [message, *attempts])
    return OK


# -- one call -------------------------------------------------------------------------------


def check_call(
    spec: dict, call: dict, answer: dict, underscore_to_dot: bool = False, rules: str = "v1"
) -> CheckResult:
    """The reference's simple_function_checker: one decoded call against one expected call.
    A value that cannot be compared (see the module text) is a failure, never a crash."""
    try:
        return _check_call(spec, call, answer, underscore_to_dot, rules)
    except RecursionError:
        return _fail("value_error:uncomparable", "A value is nested too deeply to compare.")


def _uncomparable(param: str, value: Any, depth: int = 0) -> CheckResult | None:
    """A failure for a value the decoder could not compute (TooLarge), anywhere inside it."""
    if isinstance(value, TooLarge):
        return _fail("value_error:uncomparable", f"Parameter {param!r}: {value!r} cannot be compared.")
    if depth < 100 and isinstance(value, (list, tuple, dict)):
        for inner in (value.values() if isinstance(value, dict) else value):
            found = _uncomparable(param, inner, depth + 1)
            if found is not None:
                return found
    return None


def _check_call(spec: dict, call: dict, answer: dict, underscore_to_dot: bool, rules: str) -> CheckResult:
    acceptable = next(iter(answer.values()))
    parameters = spec.get("parameters", {})
    properties = parameters.get("properties", {})
    name = convert_func_name(spec["name"], underscore_to_dot)
    if name not in call:
        return _fail("simple_function_checker:wrong_func_name", f"Function name {name!r} not found in model output.")
    arguments = call[name]
    for param in parameters.get("required", []):
        if param not in arguments:
            return _fail("simple_function_checker:missing_required", f"Missing required parameter: {param!r}.")

    for param, value in arguments.items():
        if param not in properties or param not in acceptable:
            return _fail("simple_function_checker:unexpected_param", f"Unexpected parameter: {param!r}.")
        type_name = properties[param].get("type")
        if type_name not in PYTHON_TYPES:
            return _fail("type_error:unknown_spec_type", f"Parameter {param!r} has spec type {type_name!r}.")
        expected_type = PYTHON_TYPES[type_name]
        nested_type = None
        if type_name in NESTED_TYPES:
            item_type = (properties[param].get("items") or {}).get("type")
            if item_type not in PYTHON_TYPES:
                return _fail("type_error:unknown_spec_type", f"Items of {param!r} have spec type {item_type!r}.")
            nested_type = PYTHON_TYPES[item_type]
        too_large = _uncomparable(param, value)
        if too_large is not None:
            return too_large
        if type_name == "tuple" and type(value) is tuple:
            value = list(value)
        if type_name == "float" and type(value) is int:
            try:
                value = float(value)  # Python would convert an int where a float is expected
            except OverflowError:  # the reference crashes here
                return _fail("value_error:uncomparable",
                             f"Parameter {param!r}: {safe_repr(value)} is too large for a float.")

        typed = type_check(param, value, acceptable[param], type_name, expected_type, nested_type)
        if not typed.valid:
            return typed.result
        if not typed.is_variable:
            if expected_type is dict:
                result = dict_check(param, value, acceptable[param], rules)
            elif expected_type is list and nested_type is dict:
                result = list_dict_check(param, value, acceptable[param], rules)
            elif expected_type is str:
                result = string_check(param, value, acceptable[param])
            elif expected_type is list:
                result = list_check(param, value, acceptable[param])
            else:
                result = None
            if result is not None:
                if not result.valid:
                    return result
                continue
        if not _member(value, acceptable[param]):
            return _fail(
                "value_error:others",
                f"Invalid value for parameter {param!r}: {safe_repr(value)}. Expected one of {acceptable[param]}.",
            )

    for param, values in acceptable.items():
        if param not in arguments and "" not in values:
            return _fail(
                "simple_function_checker:missing_optional",
                f"Optional parameter {param!r} not provided and not marked as optional.",
            )
    return OK


@dataclass
class _Typed:
    valid: bool
    is_variable: bool = False
    result: CheckResult | None = None


def _answer_type(values: list) -> type | None:
    for value in values:
        if value != "":
            return type(value)
    return None


def type_check(param, value, acceptable: list, type_name, expected_type, nested_type) -> _Typed:
    """The reference's type_checker, including how it reports a failed element check."""
    answer_type = _answer_type(acceptable)
    is_variable = answer_type is not None and answer_type is not expected_type
    nested_failure = None
    if type(value) is expected_type:
        if nested_type is None:
            return _Typed(True, is_variable)
        for alternative in acceptable:
            ok = True
            # Elements are checked only against list alternatives; any other alternative
            # (the optional "" included) passes, as in the reference.
            if type(alternative) is list:
                for element in value:
                    inner = type_check(param, element, alternative, str(nested_type), nested_type, None)
                    if not inner.valid:
                        ok = False
                        break
            if ok:
                return _Typed(True, is_variable)
        nested_failure = _fail(
            "type_error:nested",
            f"Nested type checking failed for parameter {param!r}. Expected outer type "
            f"{type_name} with inner type {nested_type}. Parameter value: {safe_repr(value)}.",
        )
    if answer_type is not None and type(value) is answer_type:
        if nested_failure is not None:  # the reference returns its failed result here
            return _Typed(False, True, nested_failure)
        return _Typed(True, True)
    message = (
        f"Incorrect type for parameter {param!r}. Expected type {type_name}, got "
        f"{type(value).__name__}. Parameter value: {safe_repr(value)}."
    )
    errors = (nested_failure.errors if nested_failure else []) + [message]
    return _Typed(False, False, CheckResult(False, "type_error:simple", errors))


def _member(value: Any, values: list) -> bool:
    return value in values  # `in` compares with ==, so 1 == 1.0 == True, as in the reference


def string_check(param: str, value: str, acceptable: list) -> CheckResult:
    standard = [standardize_string(v) for v in acceptable if type(v) is str]
    if standardize_string(value) not in standard:
        return _fail(
            "value_error:string",
            f"Invalid value for parameter {param!r}: {safe_repr(value)}. Expected one of {acceptable}. Case insensitive.",
        )
    return OK


def _sequence(alternative: Any) -> list | None:
    """An acceptable list as the reference indexes it: a string is its characters."""
    if isinstance(alternative, (list, tuple, str)):
        return [_std(element) for element in alternative]
    return None


def list_check(param: str, value: list, acceptable: list) -> CheckResult:
    standard_value = [_std(element) for element in value]
    standard = [_sequence(alternative) for alternative in acceptable]
    if standard_value not in [s for s in standard if s is not None]:
        return _fail(
            "value_error:list/tuple",
            f"Invalid value for parameter {param!r}: {safe_repr(value)}. Expected one of {acceptable}.",
        )
    return OK


def dict_check(param: str, value: Any, acceptable: list, rules: str = "v1") -> CheckResult:
    """One acceptable dict must match: each value standardised and acceptable, nested dicts
    recurse. V1 needs as many keys as the acceptable dict; V3 lets optional keys be omitted."""
    result = _fail("dict_checker:unclear", f"No acceptable dict for parameter {param!r}.")
    if not isinstance(value, dict):
        return _fail("value_error:dict_value", f"Parameter {param!r} is not a dict: {safe_repr(value)}.")
    for alternative in acceptable:
        if alternative == "":
            continue
        if not isinstance(alternative, dict):
            result = _fail("dict_checker:unclear", f"Acceptable value {alternative!r} is not a dict.")
            continue
        if rules == "v1" and len(value) != len(alternative):
            result = _fail("value_error:dict_items", "Wrong number of parameters for dictionary.")
            continue
        result = _dict_matches(param, value, alternative, rules)
        if result.valid:
            return OK
    return result


def _dict_matches(param: str, value: dict, alternative: dict, rules: str) -> CheckResult:
    result = OK
    for key, item in value.items():
        if key not in alternative:
            word = "parameter" if rules == "v1" else "dict key parameter"
            key = key if isinstance(key, str) else safe_repr(key)  # a huge int key has no str
            result = _fail("value_error:dict_key", f"Unexpected {word}: '{key}'.")
            break
        expected = alternative[key]
        if isinstance(expected, dict):
            nested = dict_check(param, item, [expected], rules)
            if not nested.valid:
                result = nested
                break
            continue
        standard = [_std(v) for v in expected] if isinstance(expected, (list, tuple, str)) else [expected]
        if not _member(_std(item), standard):
            result = _fail(
                "value_error:dict_value",
                f"Invalid value for parameter {safe_repr(key)}: {safe_repr(item)}. Expected one of {standard}.",
            )
            break
    if rules == "upstream":  # upstream also reports a missing key, even after a failure above
        for key, values in alternative.items():
            if key not in value and "" not in values:
                errors = (result.errors if not result.valid else []) + [f"Missing dict key parameter: '{key}'."]
                result = CheckResult(False, "value_error:dict_key", errors)
                break
    return result


def list_dict_check(param: str, value: list, acceptable: list, rules: str = "v1") -> CheckResult:
    """A list of dicts: same length as one acceptable list, dict by dict in order."""
    result = _fail("list_dict_checker:unclear", f"No acceptable list of dicts for parameter {param!r}.")
    for alternative in acceptable:
        if not isinstance(alternative, (list, str)):
            continue
        if len(value) != len(alternative):
            result = _fail("value_error:list_dict_count", "Wrong number of dictionaries in the list.")
            continue
        ok = True
        for element, expected in zip(value, alternative):
            result = dict_check(param, element, [expected], rules)
            if not result.valid:
                ok = False
                break
        if ok:
            return OK
    return result


# -- output shape ---------------------------------------------------------------------------


def is_call_list(decoded: Any) -> bool:
    """A list of ``{name: {args}}`` (one name per element, arguments a dict)."""
    return isinstance(decoded, list) and all(
        isinstance(c, dict) and len(c) == 1 and isinstance(next(iter(c.values())), dict) for c in decoded
    )


def is_empty_output(decoded: Any) -> bool:
    """No call: ``[]``, ``[{}]`` or anything that is not a list of ``{name: dict}``."""
    return not is_call_list(decoded) or len(decoded) == 0
