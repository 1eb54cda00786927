"""Function calls written as a Python list: ``[f(a=1, b="x"), mod.g(c=[1, 2])]``.

`format_calls` writes them; `parse_pythonic` reads them back with the decoding rules of the
BFCL reference checker (see shared/design/bfcl-scoring.md), using `ast` only. The reference
evaluates arithmetic with `eval`; here the same values are computed by folding the syntax
tree of numeric literals, so model output is never executed.

Decoded values: literals as themselves, tuples as lists (lists are JSON, which is what
`ToolCall.arguments` must hold), a bare name as its identifier string, a nested call without
keywords as its source text (`ast.unparse`, like the reference), a nested call with keywords
as ``{name: {args}}``, ``...`` as the string ``"..."``.

With ``bfcl_quirks=True`` (the BFCL scorer, `raypipe.eval.decoders`) values are what the
reference decoder makes of them (gorilla ``berkeley-function-call-leaderboard``,
``model_handler/utils.py``, ``resolve_ast_by_type``), even where that is wrong Python, because
published scores were computed that way: tuples stay tuples (the checker accepts a tuple only
for a ``tuple`` parameter), a unary operator is decoded as ``-operand.value`` (see
`_reference_unary`), and ``**kw`` in a call becomes the argument named None.
"""

from __future__ import annotations

import ast
import json
import math
import operator
from typing import Any, Iterable

from raypipe.templates.errors import ParseError

# Arithmetic the reference would compute with eval, folded here over numeric literals only.
_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_MAX_EXPONENT = 4096  # 2**4096 is fine; 10**10**9 would hang the worker
_MAX_DEPTH = 100
_MAX_INT_BITS = 65536


# -- writing ------------------------------------------------------------------------------


def format_calls(calls: Iterable[Any]) -> str:
    """``[f(a=1), g(b="x")]`` from ToolCall objects (or ``(name, arguments)`` pairs).

    Argument order is kept as given. Raises ValueError for what the pythonic form cannot
    express (a name that is not a dotted identifier, NaN/infinity).
    """
    parts = []
    for call in calls:
        name, arguments = (call.name, call.arguments) if hasattr(call, "name") else call
        _check_dotted_name(name)
        args = []
        for key, value in (arguments or {}).items():
            if not (isinstance(key, str) and key.isidentifier()) or _is_keyword(key):
                raise ValueError(f"argument name {key!r} of {name} is not a Python identifier")
            args.append(f"{key}={format_value(value)}")
        parts.append(f"{name}({', '.join(args)})")
    return "[" + ", ".join(parts) + "]"


def format_value(value: Any) -> str:
    """A Python literal that `parse_pythonic` decodes back to `value` (JSON-like values)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write non-finite float {value!r} as a literal")
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a valid Python string literal with the same value, and double
        # quotes are what models see in most training data.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{format_value(k)}: {format_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise ValueError(f"cannot write {type(value).__name__} value {value!r} as a literal")


def _check_dotted_name(name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"function name {name!r} is not a dotted identifier")
    for part in name.split("."):
        if not part.isidentifier() or _is_keyword(part):
            raise ValueError(f"function name {name!r} is not a dotted identifier")


def _is_keyword(word: str) -> bool:
    import keyword

    return keyword.iskeyword(word)


# -- reading ------------------------------------------------------------------------------


def strip_code_fence(text: str) -> str:
    """The inside of a ```python ... ``` (or bare ```) fence; text without a fence unchanged."""
    text = text.strip()
    if text.startswith("```"):
        first_newline = text.find("\n")
        text = text[first_newline + 1 :] if first_newline != -1 else text[3:]
        if text.rstrip().endswith("```"):
            text = text.rstrip()[:-3]
    return text.strip()


def parse_pythonic(text: str, *, bfcl_quirks: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """Calls from ``[f(a=1), g(b=2)]``, a bare ``f(a=1)`` or ``f(a=1), g(b=2)``.

    Returns ``[(name, arguments), ...]``. Raises ParseError for anything else.
    `bfcl_quirks`: decode values as the BFCL reference decoder does (tuples kept, its unary
    operator rule), for scoring only; by default the arguments are JSON values.
    """
    if not isinstance(text, str):
        raise ParseError(f"expected text, got {type(text).__name__}")
    source = strip_code_fence(text)
    if not source:
        raise ParseError("empty output: no function calls")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as err:
        raise ParseError(f"not a Python call list: {err.msg} at column {err.offset}") from None
    except (ValueError, RecursionError, MemoryError) as err:
        raise ParseError(f"not a Python call list: {err}") from None
    body = tree.body
    # The reference wraps text without brackets in [...]; parsing the bare form and
    # accepting a call or a tuple of calls gives the same result without string surgery.
    if isinstance(body, ast.Call):
        elements = [body]
    elif isinstance(body, (ast.List, ast.Tuple)):
        elements = body.elts
    else:
        raise ParseError(f"expected a list of function calls, got {type(body).__name__}")
    calls = []
    for i, element in enumerate(elements):
        if not isinstance(element, ast.Call):
            raise ParseError(f"element {i} is {ast.unparse(element)!r}, not a function call")
        name, arguments = _resolve_call(element, 0, bfcl_quirks)
        calls.append((name, arguments))
    return calls


def _resolve_call(node: ast.Call, depth: int, quirks: bool) -> tuple[str, dict[str, Any]]:
    name = _dotted_name(node.func)
    arguments: dict[str, Any] = {}
    for keyword in node.keywords:  # positional arguments are ignored, as in the reference
        if keyword.arg is None and not quirks:
            raise ParseError(f"{name}: **kwargs unpacking is not a keyword argument")
        # With quirks, ``**kw`` becomes the parameter None, as in the reference (keyword.arg),
        # which its checker then reports as an unexpected parameter.
        arguments[keyword.arg] = _resolve_value(keyword.value, depth + 1, quirks)
    return name, arguments


def _dotted_name(node: ast.expr) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise ParseError(f"function name {ast.unparse(node)!r} is not a dotted identifier")
    parts.append(node.id)
    return ".".join(reversed(parts))


def _resolve_value(node: ast.expr, depth: int, quirks: bool) -> Any:
    if depth > _MAX_DEPTH:
        raise ParseError("argument value nested too deeply")
    if isinstance(node, ast.Constant):
        value = node.value
        if value is Ellipsis:
            return "..."
        if isinstance(value, (bytes, complex)):
            raise ParseError(f"unsupported literal {ast.unparse(node)!r}")
        return value
    if isinstance(node, ast.UnaryOp) and quirks:
        return _reference_unary(node)
    if isinstance(node, (ast.UnaryOp, ast.BinOp)):
        # The reference evaluates a BinOp whole (eval), so unary operators inside one are
        # computed correctly there too: only a UnaryOp at value level takes the quirk.
        return _fold(node, depth)
    if isinstance(node, ast.Tuple) and quirks:
        return tuple(_resolve_value(v, depth + 1, quirks) for v in node.elts)
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_resolve_value(v, depth + 1, quirks) for v in node.elts]
    if isinstance(node, ast.Dict):
        out = {}
        for key, value in zip(node.keys, node.values):
            if key is None:
                raise ParseError("**unpacking inside a dict literal is not supported")
            resolved_key = _resolve_value(key, depth + 1, quirks)
            try:
                hash(resolved_key)  # a list, a dict, or a tuple holding one
            except TypeError:
                raise ParseError(f"unhashable dict key {ast.unparse(key)!r}") from None
            out[resolved_key] = _resolve_value(value, depth + 1, quirks)
        return out
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        if not node.keywords:
            return ast.unparse(node)
        name, arguments = _resolve_call(node, depth, quirks)
        return {name: arguments}
    if isinstance(node, ast.Subscript):
        return ast.unparse(node)
    raise ParseError(f"unsupported argument value {ast.unparse(node)!r} ({type(node).__name__})")


def _reference_unary(node: ast.UnaryOp) -> Any:
    """A unary operation as the BFCL reference decodes it: ``-node.operand.value``.

    The reference (``resolve_ast_by_type`` in gorilla's ``model_handler/utils.py``, the same in
    the 2024 leaderboard the zh-TW fork copied and in today's ``bfcl_eval``) ignores which
    operator it is and negates the operand's ``.value``. So ``+5``, ``~5`` and ``not 5`` decode
    to -5 and ``-True`` / ``not True`` to -1, and an operand that is not a literal (``-(2*3)``,
    ``-2**2``, ``--5``, ``-x``) has no number there, so decoding fails. Reproduced on purpose,
    for scoring only, so verdicts match the published ones; the template parser computes these
    correctly. (Complex literals, which the reference would negate, are refused everywhere.)
    """
    operand = node.operand
    if isinstance(operand, ast.Constant) and type(operand.value) in (int, float, bool):
        return -operand.value
    raise ParseError(f"cannot decode {ast.unparse(node)!r}: the reference negates literal numbers only")


def _fold(node: ast.expr, depth: int) -> Any:
    """The value of arithmetic over numeric literals (and str + str), computed on the tree."""
    if depth > _MAX_DEPTH:
        raise ParseError("expression nested too deeply")
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float, str)):
            raise ParseError(f"cannot compute with {ast.unparse(node)!r}")
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        operand = _fold(node.operand, depth + 1)
        if isinstance(operand, str):
            raise ParseError(f"cannot compute {ast.unparse(node)!r}")
        return _UNARY[type(node.op)](operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _fold(node.left, depth + 1)
        right = _fold(node.right, depth + 1)
        if isinstance(left, str) or isinstance(right, str):
            if isinstance(left, str) and isinstance(right, str) and isinstance(node.op, ast.Add):
                return left + right
            raise ParseError(f"cannot compute {ast.unparse(node)!r}")
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT and abs(left) > 1:
            raise ParseError(f"exponent too large in {ast.unparse(node)!r}")
        try:
            result = _BINARY[type(node.op)](left, right)
        except (ArithmeticError, ValueError) as err:
            raise ParseError(f"cannot compute {ast.unparse(node)!r}: {err}") from None
        if isinstance(result, int) and result.bit_length() > _MAX_INT_BITS:
            raise ParseError(f"number too large in {ast.unparse(node)!r}")
        if isinstance(result, complex):  # (-8) ** 0.5
            raise ParseError(f"complex result of {ast.unparse(node)!r}")
        return result
    raise ParseError(f"cannot compute {ast.unparse(node)!r}: only arithmetic on numbers")
