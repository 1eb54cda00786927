"""`calculate` without `eval`: a small parser for the arithmetic the benchmark's tool accepts.

tau2-bench's `calculate(expression)` allows only the characters ``0123456789+-*/(). `` and
then evaluates the text as a Python expression, answering ``str(round(float(result), 2))``.
This module gives the same answers without evaluating any text: it tokenises and parses
Python's expression grammar restricted to those characters (numbers, ``...``, ``+ - * / // **``,
unary signs, parentheses, calls) into values and applies Python's own operators to them, so
results, integer-vs-float behaviour and runtime errors (``division by zero``,
``float division by zero``, ``'int' object is not callable``...) are Python's.

Syntax errors answer with the messages Python gives for the common cases (``invalid syntax``,
``'(' was never closed``, ``unmatched ')'``, leading zeros). One deliberate difference: an
integer power whose result would exceed `MAX_POW_BITS` bits is refused (Python would compute a
number of millions of digits and stall the worker).
"""

from __future__ import annotations

import operator
from typing import Any

ALLOWED = frozenset("0123456789+-*/(). ")
MAX_NESTING = 200  # Python's tokenizer limit on nested parentheses
MAX_POW_BITS = 100_000
LEADING_ZEROS = ("leading zeros in decimal integer literals are not permitted; "
                 "use an 0o prefix for octal integers")

_BINARY = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
           "//": operator.floordiv}
_UNARY = {"+": operator.pos, "-": operator.neg}


class CalcSyntaxError(ValueError):
    """Mirrors str(SyntaxError) of an expression compiled from a string."""

    def __init__(self, message: str, line: int = 1):
        super().__init__(f"{message} (<string>, line {line})")


def calculate(expression: Any) -> str:
    """The tool's answer text; raises with the message the benchmark's tool would give."""
    if not isinstance(expression, str):
        # the benchmark iterates over the argument's characters first
        raise TypeError(f"'{type(expression).__name__}' object is not iterable")
    if not all(ch in ALLOWED for ch in expression):
        raise ValueError("Invalid characters in expression")
    return str(round(float(evaluate(expression)), 2))


def evaluate(text: str) -> Any:
    return _evaluate(_Parser(tokenize(text)).parse())


def tokenize(text: str) -> list[str]:
    """Python's tokens for `text`; tokenizer errors (which Python reports before any parse
    error) are raised here."""
    tokens: list[str] = []
    depth = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == " ":
            i += 1
            continue
        if ch.isdigit() or (ch == "." and i + 1 < n and text[i + 1].isdigit()):
            j = i
            while j < n and text[j].isdigit():
                j += 1
            is_float = j < n and text[j] == "."
            if is_float:
                j += 1
                while j < n and text[j].isdigit():
                    j += 1
            literal = text[i:j]
            if not is_float and literal[0] == "0" and literal.strip("0"):
                raise CalcSyntaxError(LEADING_ZEROS)
            tokens.append(literal)
            i = j
            continue
        if text.startswith("...", i):
            tokens.append("...")
            i += 3
            continue
        if text.startswith("**", i) or text.startswith("//", i):
            tokens.append(text[i:i + 2])
            i += 2
            continue
        if ch == "(":
            depth += 1
            if depth >= MAX_NESTING:
                raise CalcSyntaxError("too many nested parentheses")
        elif ch == ")":
            if depth == 0:
                raise CalcSyntaxError("unmatched ')'")
            depth -= 1
        tokens.append(ch)  # + - * / ( ) .
        i += 1
    return tokens


def _is_atom_start(token: str | None) -> bool:
    return token is not None and (token[0].isdigit() or token[0] == "." and token != ".")


class _Parser:
    """Recursive descent over Python's grammar for these tokens, building a small tree that
    is evaluated only once the whole text parsed (Python reports syntax errors first):

        sum    := term (('+' | '-') term)*
        term   := factor (('*' | '/' | '//') factor)*
        factor := ('+' | '-')* power
        power  := primary ['**' factor]
        primary:= atom ('(' [sum] ')')*
        atom   := NUMBER | '...' | '(' [sum] ')'        ('()' is the empty tuple)
    """

    def __init__(self, tokens: list[str]):
        self.tokens = tokens
        self.pos = 0
        self.open = 0  # parentheses open at the current position

    def peek(self, ahead: int = 0) -> str | None:
        i = self.pos + ahead
        return self.tokens[i] if i < len(self.tokens) else None

    def take(self) -> str:
        token = self.tokens[self.pos]
        self.pos += 1
        if token == "(":
            self.open += 1
        elif token == ")":
            self.open -= 1
        return token

    def fail(self, atom_position: bool = False) -> CalcSyntaxError:
        """The message Python gives where parsing stopped (its common cases)."""
        token = self.peek()
        unclosed = self.open + sum(1 if t == "(" else -1 if t == ")" else 0
                                   for t in self.tokens[self.pos:]) > 0
        if token is None and self.open > 0:
            return CalcSyntaxError("'(' was never closed")
        # Python's parser reads one token past a '.' (attribute), and past '*' or '**'
        # where an expression may start (unpacking); reaching the end there with a '('
        # open is its "never closed" error.
        consumes = token == "." or (atom_position and token in ("*", "**"))
        if consumes and self.peek(1) is None and self.open > 0:
            return CalcSyntaxError("'(' was never closed")
        if _is_atom_start(token):  # two expressions side by side
            if unclosed:
                return CalcSyntaxError("'(' was never closed")
            if self.open > 0:
                return CalcSyntaxError("invalid syntax. Perhaps you forgot a comma?")
        return CalcSyntaxError("invalid syntax")

    def parse(self) -> tuple:
        if not self.tokens:
            raise CalcSyntaxError("invalid syntax", line=0)
        tree = self.sum()
        if self.peek() is not None:
            raise self.fail()
        return tree

    def sum(self) -> tuple:
        tree = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            tree = ("bin", op, tree, self.term())
        return tree

    def term(self) -> tuple:
        tree = self.factor()
        while self.peek() in ("*", "/", "//"):
            op = self.take()
            tree = ("bin", op, tree, self.factor())
        return tree

    def factor(self) -> tuple:
        signs = []
        while self.peek() in ("+", "-"):
            signs.append(self.take())
        tree = self.power()
        for sign in reversed(signs):  # innermost sign first
            tree = ("unary", sign, tree)
        return tree

    def power(self) -> tuple:
        base = self.primary()
        if self.peek() != "**":
            return base
        self.take()
        return ("bin", "**", base, self.factor())

    def primary(self) -> tuple:
        tree = self.atom()
        while self.peek() == "(":
            self.take()
            arg = None if self.peek() == ")" else self.sum()
            if self.peek() != ")":
                raise self.fail()
            self.take()
            tree = ("call", tree, arg)
        return tree

    def atom(self) -> tuple:
        token = self.peek()
        if token == "(":
            self.take()
            if self.peek() == ")":
                self.take()
                return ("value", ())
            tree = self.sum()
            if self.peek() != ")":
                raise self.fail()
            self.take()
            return tree
        if token == "...":
            self.take()
            return ("value", ...)
        if _is_atom_start(token):
            self.take()
            return ("value", float(token) if "." in token else int(token))
        raise self.fail(atom_position=True)


def _evaluate(tree: tuple) -> Any:
    """Left to right, as Python evaluates; iterative over left-nested chains (a + b + c ...)
    so that a long expression cannot exhaust the stack."""
    kind = tree[0]
    if kind == "value":
        return tree[1]
    if kind == "unary":
        return _UNARY[tree[1]](_evaluate(tree[2]))
    if kind == "call":
        callee = _evaluate(tree[1])
        if tree[2] is not None:
            _evaluate(tree[2])  # the argument is evaluated before the call fails
        raise TypeError(f"'{type(callee).__name__}' object is not callable")
    chain = []
    while tree[0] == "bin" and tree[1] != "**":
        chain.append(tree)
        tree = tree[2]
    value = _evaluate(tree) if tree[0] != "bin" else _power(_evaluate(tree[2]), _evaluate(tree[3]))
    for node in reversed(chain):
        value = _BINARY[node[1]](value, _evaluate(node[3]))
    return value


def _power(base: Any, exponent: Any) -> Any:
    if (isinstance(base, int) and isinstance(exponent, int) and exponent > 0
            and abs(base) > 1 and exponent * abs(base).bit_length() > MAX_POW_BITS):
        raise OverflowError("integer power too large to compute")
    return operator.pow(base, exponent)
