"""The value of a binary operation in model output, as BFCL's reference decoder gets it, without
executing anything.

The reference decoders (``resolve_ast_by_type`` in gorilla's ``model_handler/utils.py``, the same
in the zh-TW fork and in today's ``bfcl_eval``) decode an argument that is a binary operation
with ``eval(ast.unparse(node))``: Python computes the whole expression. raypipe interprets the
syntax tree instead, over a closed set of node types, with Python's own operators, so every
result that the reference gets for these is the same value and every expression it fails on
(an undefined name, ``1 / 0``, ``"a" - 1``, a float overflow) fails here too:

- literals (numbers, strings, bytes, booleans, None, ``...``) and list, tuple, set and dict
  displays of them;
- unary ``- + ~ not``, binary ``+ - * / // % ** << >> & | ^ @``, comparisons, ``and``/``or``,
  ``x if c else y``, subscripts and slices;
- calls of a few pure builtins (`BUILTINS`).

Anything else is refused (`ArithmeticRefused`); the reference would evaluate some of it (a name
its own module defines, such as ``json``; other builtins; attribute calls such as
``"a".upper()``), which raypipe never does. Work is bounded: a result that would take more than
`MAX_BITS` bits or `MAX_ITEMS` items to compute is `TooLarge` (the reference computes it, or runs
out of memory trying), so one hostile output cannot stall the scorer.
"""

from __future__ import annotations

import ast
import operator
import re
from typing import Any

MAX_BITS = 1_000_000  # integers up to ~300,000 digits are computed; larger ones are TooLarge
MAX_ITEMS = 1_000_000  # characters or elements of a computed string, bytes, list or tuple
MAX_DEPTH = 200


class ArithmeticRefused(ValueError):
    """The expression fails in the reference too, or raypipe will not compute it."""


class TooLarge:
    """A value too large to compute here (a decoded argument compares as wrong, never crashes)."""

    def __init__(self, source: str):
        self.source = source if len(source) <= 80 else source[:77] + "..."

    def __repr__(self) -> str:
        return f"<too large to compute: {self.source}>"

    def __eq__(self, other: Any) -> bool:
        return False

    __hash__ = object.__hash__


_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow, ast.LShift: operator.lshift, ast.RShift: operator.rshift,
    ast.BitOr: operator.or_, ast.BitAnd: operator.and_, ast.BitXor: operator.xor,
    ast.MatMult: operator.matmul,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert, ast.Not: operator.not_}
_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
BUILTINS = {"abs": abs, "all": all, "any": any, "bin": bin, "bool": bool, "chr": chr, "divmod": divmod,
            "float": float, "hex": hex, "int": int, "len": len, "list": list, "max": max, "min": min,
            "oct": oct, "ord": ord, "pow": pow, "round": round, "set": set, "sorted": sorted, "str": str,
            "sum": sum, "tuple": tuple}
# printf-style conversions: a width or precision of 7+ digits, or `*`, could ask for gigabytes
# of padding.
_WIDE_FORMAT = re.compile(r"%[#0 +\-]*(\*|\d{7,})|%[#0 +\-]*\d*\.(\*|\d{7,})")


def evaluate(node: ast.expr) -> Any:
    """The value of `node` (an ``ast.BinOp`` in practice); raises ArithmeticRefused."""
    try:
        return _eval(node, 0)
    except _Large as large:
        return TooLarge(large.source)
    except ArithmeticRefused:
        raise
    except (ArithmeticError, TypeError, ValueError, KeyError, IndexError, RecursionError, MemoryError) as exc:
        raise ArithmeticRefused(f"cannot compute {_source(node)!r}: {type(exc).__name__}: {exc}") from None


class _Large(Exception):
    def __init__(self, source: str):
        self.source = source


def _source(node: ast.expr) -> str:
    try:
        text = ast.unparse(node)
    except (RecursionError, ValueError):
        return "<expression>"
    return text if len(text) <= 200 else text[:197] + "..."


def _eval(node: ast.expr, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ArithmeticRefused("expression nested too deeply")
    depth += 1
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, depth))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, depth), _eval(node.right, depth)
        _check_size(node, left, right)
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.BoolOp):
        value = None
        for operand in node.values:
            value = _eval(operand, depth)
            if isinstance(node.op, ast.And) != bool(value):  # `and` stops at falsy, `or` at truthy
                return value
        return value
    if isinstance(node, ast.Compare):
        left = _eval(node.left, depth)
        for op, comparator in zip(node.ops, node.comparators):
            right = _eval(comparator, depth)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _eval(node.body if _eval(node.test, depth) else node.orelse, depth)
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        if any(isinstance(e, ast.Starred) for e in node.elts):
            raise ArithmeticRefused(f"cannot compute {_source(node)!r}: unpacking")
        values = [_eval(e, depth) for e in node.elts]
        return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](values)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise ArithmeticRefused(f"cannot compute {_source(node)!r}: unpacking")
        return {_eval(k, depth): _eval(v, depth) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Subscript):
        return _eval(node.value, depth)[_eval(node.slice, depth)]
    if isinstance(node, ast.Slice):
        return slice(*(None if part is None else _eval(part, depth) for part in (node.lower, node.upper, node.step)))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in BUILTINS:
        return _call(node, depth)
    if isinstance(node, ast.Name):
        raise ArithmeticRefused(f"cannot compute {_source(node)!r}: name {node.id!r} is not defined")
    raise ArithmeticRefused(f"cannot compute {_source(node)!r}: {type(node).__name__} is not evaluated")


def _call(node: ast.Call, depth: int) -> Any:
    if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
        raise ArithmeticRefused(f"cannot compute {_source(node)!r}: unpacking")
    args = [_eval(a, depth) for a in node.args]
    kwargs = {k.arg: _eval(k.value, depth) for k in node.keywords}
    name = node.func.id
    if name == "pow" and len(args) == 2 and not kwargs:
        _check_size(node, args[0], args[1], ast.Pow())
    if any(isinstance(v, TooLarge) for v in [*args, *kwargs.values()]):
        raise _Large(_source(node))
    return BUILTINS[name](*args, **kwargs)


def _check_size(node: ast.expr, left: Any, right: Any, op: ast.operator | None = None) -> None:
    """Raise _Large when computing `left op right` would take unbounded time or memory."""
    op = op or node.op
    if isinstance(left, TooLarge) or isinstance(right, TooLarge):
        raise _Large(_source(node))
    if isinstance(op, ast.Pow) and _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
        if right * left.bit_length() > MAX_BITS:
            raise _Large(_source(node))
    elif isinstance(op, ast.LShift) and _is_int(left) and _is_int(right) and left and right > MAX_BITS:
        raise _Large(_source(node))
    elif isinstance(op, ast.Mult):
        if _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > MAX_BITS:
            raise _Large(_source(node))
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, bytes, list, tuple)) and _is_int(times) and len(seq) * times > MAX_ITEMS:
                raise _Large(_source(node))
    elif isinstance(op, ast.Mod) and isinstance(left, (str, bytes)):
        text = left.decode("latin-1") if isinstance(left, bytes) else left
        if _WIDE_FORMAT.search(text):
            raise _Large(_source(node))


def _is_int(value: Any) -> bool:
    return isinstance(value, int)  # bools too: True * "ab" is "ab" in Python
