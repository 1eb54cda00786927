"""Model-decoded values shown safely: in error messages and in REPORT.json.

Decoded arguments are hostile input: an integer of 8,000 digits (``10**4000 * 10**4000``) cannot
be written with `repr` (Python refuses more than 4,300 digits), JSON has no form for bytes,
complex numbers, tuple keys or infinities, and a value nested 900 levels deep overflows the JSON
encoder. These helpers never raise on any of them.
"""

from __future__ import annotations

import math
from typing import Any

MAX_SHOWN_DEPTH = 64
MAX_SHOWN_CHARS = 20_000  # a longer string is cut in reports
_BIG_INT_BITS = 14_000  # ~4,200 decimal digits: below Python's int-to-str limit


def big_int_text(value: int) -> str:
    digits = int(value.bit_length() * math.log10(2)) + 1
    return f"<int of about {digits} digits>"


def safe_repr(value: Any, limit: int = 2000) -> str:
    """`repr(value)`, or a placeholder where repr would fail, cut at `limit` characters."""
    try:
        text = repr(value)
    except (ValueError, RecursionError, MemoryError):  # huge ints inside, or nested too deeply
        text = big_int_text(value) if isinstance(value, int) else _fallback(value)
    if len(text) > limit:
        text = text[: limit - 30] + f"... ({len(text) - limit + 30} more characters)"
    return text


def _fallback(value: Any) -> str:
    try:
        return repr(json_safe(value))  # huge ints shown as placeholders, tuples as lists
    except (ValueError, RecursionError, MemoryError):
        return f"<{type(value).__name__} that cannot be shown>"


def json_safe(value: Any, depth: int = 0) -> Any:
    """`value` as JSON can hold it: tuples and sets become lists; bytes, complex numbers,
    non-finite floats and other objects their repr; a dict key JSON has no form for its repr;
    integers too long to write and parts nested deeper than 64 levels a placeholder text; strings
    longer than 20,000 characters are cut."""
    if depth > MAX_SHOWN_DEPTH:
        return "<nested too deeply to show>"
    if isinstance(value, str):
        return value if len(value) <= MAX_SHOWN_CHARS else (
            value[:MAX_SHOWN_CHARS] + f"... ({len(value) - MAX_SHOWN_CHARS} more characters)")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return big_int_text(value) if value.bit_length() > _BIG_INT_BITS else value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {_key(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v, depth + 1) for v in value]
    return safe_repr(value)


def _key(key: Any) -> Any:
    if key is None or isinstance(key, (str, bool)):
        return key
    if isinstance(key, int):
        return big_int_text(key) if key.bit_length() > _BIG_INT_BITS else key
    if isinstance(key, float) and math.isfinite(key):
        return key
    return safe_repr(key)
