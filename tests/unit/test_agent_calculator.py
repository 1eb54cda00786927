"""`calculate` without eval: the answers of the benchmark's eval-based tool (Python's own
results and messages, recorded from Python 3.11), produced by a parser."""

import pytest

from raypipe.agent.calculator import MAX_POW_BITS, calculate

CASES = [
    ("2 + 2", "4.0"), ("(1.5+2.25)*3", "11.25"), ("10/3", "3.33"), ("2**10", "1024.0"), ("-2**2", "-4.0"),
    ("2**-1", "0.5"), ("2 ** 3 ** 2", "512.0"), ("2**3**-1", "1.26"), ("7//2.0", "3.0"), ("3 // 2", "1.0"),
    ("+-1", "-1.0"), ("2--3", "5.0"), ("1.", "1.0"), (".5", "0.5"), ("00", "0.0"), ("0001.5", "1.5"),
    ("0.1+0.2", "0.3"), ("2/3*3", "2.0"), ("100 - 33.333", "66.67"), ("-(2)**2", "-4.0"),
    ("12345678901234567890*98765432109876543210", "1.219326311370218e+39"), ("2**1000", "1.0715086071862673e+301"),
    ("1/0", "Error: division by zero"), ("1.0/0", "Error: float division by zero"),
    ("1//0", "Error: integer division or modulo by zero"), ("0**-1", "Error: 0.0 cannot be raised to a negative power"),
    ("10**400", "Error: int too large to convert to float"), ("10.0**400", "Error: (34, 'Numerical result out of range')"),
    ("(-8)**0.5", "Error: float() argument must be a string or a real number, not 'complex'"),
    ("...", "Error: float() argument must be a string or a real number, not 'ellipsis'"),
    ("()", "Error: float() argument must be a string or a real number, not 'tuple'"),
    ("() / 1", "Error: unsupported operand type(s) for /: 'tuple' and 'int'"),
    ("-()", "Error: bad operand type for unary -: 'tuple'"),
    ("(1)(2)", "Error: 'int' object is not callable"), ("(1/0)(2)", "Error: division by zero"),
    ("(1)(2 + 1/0)", "Error: division by zero"),
    ("2+", "Error: invalid syntax (<string>, line 1)"), ("2 3", "Error: invalid syntax (<string>, line 1)"),
    ("", "Error: invalid syntax (<string>, line 0)"), ("   ", "Error: invalid syntax (<string>, line 0)"),
    ("(2+3", "Error: '(' was never closed (<string>, line 1)"), ("(2 3", "Error: '(' was never closed (<string>, line 1)"),
    (")", "Error: unmatched ')' (<string>, line 1)"), ("2 3 )", "Error: unmatched ')' (<string>, line 1)"),
    ("01", "Error: leading zeros in decimal integer literals are not permitted; use an 0o prefix for octal integers "
           "(<string>, line 1)"),
    ("2 * 01", "Error: leading zeros in decimal integer literals are not permitted; use an 0o prefix for octal "
               "integers (<string>, line 1)"),
    ("1..2", "Error: invalid syntax (<string>, line 1)"), ("2*/3", "Error: invalid syntax (<string>, line 1)"),
    ("9//...1", "Error: invalid syntax (<string>, line 1)"),  # a syntax error wins over evaluation
    ("1e5", "Error: Invalid characters in expression"), ("__import__('os')", "Error: Invalid characters in expression"),
    ("2\t+2", "Error: Invalid characters in expression"),
]


def answer(expression):
    try:
        return calculate(expression)
    except Exception as exc:  # noqa: BLE001 - the environment turns this into "Error: ..."
        return f"Error: {exc}"


@pytest.mark.parametrize("expression,expected", CASES)
def test_answers_like_the_benchmark(expression, expected):
    assert answer(expression) == expected


def test_hostile_input_is_refused_not_computed():
    assert answer("9**9**9") == "Error: integer power too large to compute"
    assert answer(f"2**{MAX_POW_BITS + 1}") == "Error: integer power too large to compute"
    assert answer("1+" * 20000 + "1") == "20001.0"  # long chains are iterative
    assert answer(5) == "Error: 'int' object is not iterable"
