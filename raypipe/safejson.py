"""JSON parsing for hostile input: the one `loads` every reader of user data goes through.

Python's `json` recurses once per nesting level, so a row nested ~1000 deep raises
`RecursionError` (inside a Ray task, with less stack left, sooner) and takes the whole file
down with it. Here a text nested deeper than `MAX_DEPTH` is refused before it is parsed, with
`nesting deeper than 100`, and so are values that cannot be written back out: NaN/Infinity
(not JSON), numbers beyond float range (`1e999`), integers beyond Python's digit limit, and
strings holding a lone surrogate (`"\\ud800"`: not Unicode, so Arrow/Parquet cannot store it).

Every error is a `ValueError` whose message is a reason fit for a reject.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# Real function-calling data nests a dozen levels (a sample, its messages, a call, JSON-schema
# parameters); 100 leaves room for deep schemas and stays far below the interpreter's limit.
MAX_DEPTH = 100

_TOKENS = re.compile(r'[\[\]{}"\\]')
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONValueError(ValueError):
    """A JSON text that parses (or would) but is refused; the message is the reject reason."""


def nesting_depth(text: str, stop_above: int | None = None) -> int:
    """Deepest bracket nesting of a JSON text, skipping brackets inside strings. Iterative:
    any depth is measured without recursion. Stops early once deeper than `stop_above`."""
    depth = deepest = 0
    in_string = False
    skip = -1
    for m in _TOKENS.finditer(text):
        pos, ch = m.start(), m.group()
        if in_string:
            if pos == skip:
                continue
            if ch == "\\":
                skip = pos + 1
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def end_of_value(text: str, start: int) -> int | None:
    """Index just past the JSON array/object starting at `start` (brackets matched, strings
    skipped), or None when it never closes. Lets a reader step over a value it refused."""
    depth = 0
    in_string = False
    skip = -1
    for m in _TOKENS.finditer(text, start):
        pos, ch = m.start(), m.group()
        if in_string:
            if pos == skip:
                continue
            if ch == "\\":
                skip = pos + 1
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                return pos + 1
    return None


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    # Counting openers is a C-speed scan; only texts with more openers than the limit can be
    # too deep, and only those pay for the exact measure.
    if text.count("[") + text.count("{") <= limit:
        return False
    return nesting_depth(text, stop_above=limit) > limit


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JSONValueError(f"number out of range: {text[:40]}")
    return value


def _no_constant(name: str) -> Any:
    raise JSONValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant)


def check_text(text: str, limit: int = MAX_DEPTH) -> None:
    if too_deep(text, limit):
        raise JSONValueError(f"nesting deeper than {limit}")


def check_unicode(value: Any, text: str) -> None:
    """A lone surrogate can only come from a `\\udXXX` escape; only texts with one are checked."""
    if not _SURROGATE_ESCAPE.search(text):
        return
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise JSONValueError("a string holds a lone surrogate escape (\\ud800-\\udfff): not valid "
                             "Unicode") from None


def loads(text: str, limit: int = MAX_DEPTH) -> Any:
    """`json.loads` that refuses (JSONValueError) what raypipe cannot safely carry. Syntax errors
    stay `json.JSONDecodeError` (also a ValueError)."""
    check_text(text, limit)
    try:
        value = _DECODER.decode(text)
    except RecursionError:  # only reachable with a limit raised near the interpreter's
        raise JSONValueError(f"nesting deeper than {limit}") from None
    except JSONValueError:
        raise
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        raise JSONValueError(f"number out of range: {exc}") from None
    check_unicode(value, text)
    return value


def raw_decode(text: str, pos: int, limit: int = MAX_DEPTH) -> tuple[Any, int]:
    """Like `JSONDecoder.raw_decode` (one value starting at `pos`), with the checks of `loads`.
    On a JSONValueError the caller can step over the value with `end_of_value`."""
    try:
        value, end = _DECODER.raw_decode(text, pos)
    except RecursionError:
        raise JSONValueError(f"nesting deeper than {limit}") from None
    except (JSONValueError, json.JSONDecodeError):
        raise
    except ValueError as exc:
        raise JSONValueError(f"number out of range: {exc}") from None
    raw = text[pos:end]
    check_text(raw, limit)
    check_unicode(value, raw)
    return value, end


def dumps(value: Any, **kwargs: Any) -> str:
    """`json.dumps(ensure_ascii=False)` whose text can always be written as UTF-8: a lone
    surrogate (hostile model output can carry one) is written as its `\\udXXX` escape, which
    reads back as the same string."""
    text = json.dumps(value, ensure_ascii=False, **kwargs)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
