"""Pythonic model output (``[f(a=1), mod.g(b="x")]``) decoded exactly as BFCL's reference
decoders decode it, quirks included, without executing it.

Two references, chosen by the rules in force:

- ``upstream``: today's ``bfcl_eval`` in prompt mode (``default_decode_ast_prompting`` and
  ``ast_parse`` in ``bfcl_eval/model_handler/utils.py``). The output is stripped of backticks,
  newlines and spaces at both ends (so a bare code fence goes, but ```` ```python ```` leaves
  ``python`` behind and the parse fails), wrapped in ``[`` ``]`` where it lacks them, and
  parsed; a body that is one call is that call, else every element of the list must be a call.
  Each call becomes ``{dotted name: {keyword: value}}``.
- ``v1``: the zh-TW leaderboard (BFCL V1's ``ast_parse``, through its open-model handler, which
  adds the brackets where they are missing). Each *element* is decoded like an argument value,
  so a call without keyword arguments (``math.sqrt(2)``, ``get_time()``) becomes its source text
  ``"math.sqrt(2)"``, not a call: an AST item is then ``decoder_wrong_output_format`` and a
  relevance item counts as "no call".

Argument values (``resolve_ast_by_type``, the same code in both):

| node | value |
|---|---|
| literal | itself (``...`` is ``"..."``; bytes and complex numbers are kept) |
| unary operator | ``-operand.value`` whatever the operator: ``+5``, ``~5``, ``not 5`` are -5; fails unless the operand is a literal number |
| list, tuple, dict | element by element (tuples stay tuples); a dict key that cannot be hashed fails |
| binary operator | the reference ``eval``s it: computed by `raypipe.eval.bfcl_arith` |
| name | its identifier as a string |
| call | without keyword arguments its source text; with some, ``{name: {args}}`` |
| subscript | ``"value[slice]"`` from the source |
| anything else (attribute, lambda, set, comparison, f-string, ...) | fails |

A call's name joins the attribute chain down to a plain name (``a.b.c``); when the chain does
not end in a name (``x[0].f``, ``f()()``), only the attribute parts are kept (``f``, ``""``).
Keyword ``**kw`` becomes the parameter ``None``. Positional arguments are ignored.
"""

from __future__ import annotations

import ast
from typing import Any

from raypipe.eval.bfcl_arith import ArithmeticRefused, evaluate

MAX_DEPTH = 400  # beyond: a decode failure (the reference hits Python's recursion limit ~1000)


class ReferenceDecodeError(ValueError):
    """The reference decoder raises on this output."""


def decode_upstream(text: Any) -> list[dict]:
    """``default_decode_ast_prompting`` of today's bfcl_eval (python)."""
    if not isinstance(text, str):
        raise ReferenceDecodeError(f"expected the model output as text, got {type(text).__name__}")
    text = text.strip("`\n ")
    if not text.startswith("["):
        text = "[" + text
    if not text.endswith("]"):
        text = text + "]"
    body = _parse(text.strip().strip("'"))
    if isinstance(body, ast.Call):
        return [resolve_call(body, 0)]
    elements = getattr(body, "elts", None)
    if elements is None:
        raise ReferenceDecodeError(f"expected a list of function calls, got {type(body).__name__}")
    return [resolve_call(_call_element(e, i), 0) for i, e in enumerate(elements)]


def decode_v1(text: Any) -> list:
    """The zh-TW leaderboard's open-model handler + V1 ``ast_parse``. Elements are decoded as
    values, so the list may hold strings (calls without keyword arguments)."""
    if not isinstance(text, str):
        raise ReferenceDecodeError(f"expected the model output as text, got {type(text).__name__}")
    if not text:
        raise ReferenceDecodeError("empty output")
    if text[0] == " ":
        text = text[1:]
    if not text.startswith("["):
        text = "[" + text
    if not text.endswith("]"):
        text = text + "]"
    body = _parse(text)
    elements = getattr(body, "elts", None)
    if elements is None:
        raise ReferenceDecodeError(f"expected a list of function calls, got {type(body).__name__}")
    return [resolve_value(_call_element(e, i), 0) for i, e in enumerate(elements)]


def _parse(source: str) -> ast.expr:
    try:
        return ast.parse(source, mode="eval").body
    except SyntaxError as err:
        raise ReferenceDecodeError(f"invalid syntax: {err.msg}") from None
    except (ValueError, RecursionError, MemoryError, OverflowError) as err:  # e.g. 5,000-digit literals
        raise ReferenceDecodeError(f"cannot parse: {type(err).__name__}: {str(err)[:200]}") from None


def _call_element(node: ast.expr, index: int) -> ast.Call:
    if not isinstance(node, ast.Call):
        raise ReferenceDecodeError(f"element {index} is a {type(node).__name__}, not a function call")
    return node


def call_name(node: ast.Call) -> str:
    parts = []
    func = node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def resolve_call(node: ast.Call, depth: int) -> dict:
    arguments: dict = {}
    for keyword in node.keywords:  # positional arguments are ignored
        arguments[keyword.arg] = resolve_value(keyword.value, depth + 1)
    return {call_name(node): arguments}


def resolve_value(node: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ReferenceDecodeError("output nested too deeply")
    depth += 1
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if isinstance(node, ast.UnaryOp):
        operand = node.operand
        if not isinstance(operand, ast.Constant):  # no `.value`, or an AST node that - refuses
            raise ReferenceDecodeError(f"cannot decode {_source(node)!r}: the operand is not a literal")
        try:
            return -operand.value
        except TypeError as err:
            raise ReferenceDecodeError(f"cannot decode {_source(node)!r}: {err}") from None
    if isinstance(node, ast.List):
        return [resolve_value(e, depth) for e in node.elts]
    if isinstance(node, ast.Dict):
        out = {}
        for key, value in zip(node.keys, node.values):
            if key is None:
                raise ReferenceDecodeError("unsupported '**' inside a dict")
            resolved = resolve_value(key, depth)
            try:
                out[resolved] = resolve_value(value, depth)
            except TypeError:
                raise ReferenceDecodeError(f"unhashable dict key {_source(key)!r}") from None
        return out
    if isinstance(node, ast.BinOp):
        try:
            return evaluate(node)
        except ArithmeticRefused as err:
            raise ReferenceDecodeError(str(err)) from None
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        return _source(node) if not node.keywords else resolve_call(node, depth)
    if isinstance(node, ast.Tuple):
        return tuple(resolve_value(e, depth) for e in node.elts)
    if isinstance(node, ast.Subscript):
        return _source(node.value) + "[" + _source(node.slice) + "]"
    raise ReferenceDecodeError(f"unsupported AST type: {type(node).__name__}")


def _source(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except (RecursionError, ValueError) as err:
        raise ReferenceDecodeError(f"cannot write the expression back: {type(err).__name__}") from None
