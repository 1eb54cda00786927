"""Trajectory pairs for multi-turn DPO (MAGNET): controlled corruptions of a positive dialog.

A positive MAGNET sample carries ``meta["actions"]``: one record per assistant message,
``{"message": index, "kind": "ask"|"call"|"reply", "op": <fsp op>, "calls": [names],
"missing": [function, argument] | None, "prerequisite": bool}``. A corruption replaces the
assistant message at one such index with a plausible but wrong action:

- ``guess_missing_argument``: at an ask turn, call the function with a guessed value instead
  of asking the user for it;
- ``unrelated_function``: call another function of the dialog (get_weather instead of asking
  for the origin, or instead of the right call);
- ``drop_prerequisite``: skip the prerequisite call and call the main function with a guessed
  value where the prerequisite's output should go;
- ``wrong_argument_value``: the right calls with one argument value changed.

Every corrupted turn is still a well-formed call (it passes the validator), so the pair teaches
behaviour, not syntax. A pair is ``chosen`` = the whole positive trajectory and ``rejected`` =
the same messages up to ``turn`` followed by the corrupted assistant message: what happens after
a wrong action is unknown, so the negative trajectory ends there. Rows follow
`raypipe.schema.dpo_pair_schema()`.
"""

from __future__ import annotations

import copy
import hashlib
import random
from typing import Any, Callable

from raypipe.schema import Message, Sample, ToolCall, canonical_json
from raypipe.synth.toolpool import properties_of, required_of, unwrap
from raypipe.validate import validate_sample

CORRUPTIONS = (
    "guess_missing_argument", "unrelated_function", "drop_prerequisite", "wrong_argument_value",
)

_STRING_GUESSES = {
    "date": ["2024-01-01", "2023-12-31", "tomorrow"],
    "time": ["09:00", "18:30"],
    "city": ["Paris", "Tokyo", "Chicago"],
    "loc": ["Paris", "Tokyo", "Chicago"],
    "email": ["user@example.com"],
    "id": ["12345", "A-001"],
    "name": ["John Smith", "Acme"],
    "symbol": ["XYZ", "AAA"],
}
_GENERIC = ["example", "default", "unknown", "test"]


def guess_value(name: str, schema: dict[str, Any], rng: random.Random, avoid: Any = None) -> Any:
    """A value of the declared type that is not `avoid`: what a model would make up."""
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        others = [v for v in enum if v != avoid]
        return rng.choice(others or enum)
    t = schema.get("type")
    t = t[0] if isinstance(t, list) and t else t
    for _ in range(10):
        if t in ("integer", "int"):
            value: Any = rng.randint(1, 100)
        elif t in ("number", "float", "double"):
            value = round(rng.uniform(1, 100), 2)
        elif t in ("boolean", "bool"):
            value = (not avoid) if isinstance(avoid, bool) else rng.random() < 0.5
        elif t in ("array", "tuple", "list"):
            item = schema.get("items") if isinstance(schema.get("items"), dict) else {}
            value = [guess_value(name, item, rng)]
        elif t in ("object", "dict"):
            value = {p: guess_value(p, s, rng) for p, s in properties_of({"parameters": schema}).items()
                     if p in (schema.get("required") or [])}
        else:
            pool = next((v for k, v in _STRING_GUESSES.items() if k in name.lower()), _GENERIC)
            value = rng.choice(pool)
        if value != avoid:
            return value
    return value


def _calls_of(sample: Sample, idx: int) -> list[ToolCall]:
    return sample.messages[idx].tool_calls


def _later_call(sample: Sample, start: int, function: str) -> ToolCall | None:
    for m in sample.messages[start:]:
        for c in m.tool_calls:
            if c.name == function:
                return c
    return None


def _spec(sample: Sample, name: str) -> dict[str, Any]:
    return next(unwrap(f) for f in sample.functions if unwrap(f).get("name") == name)


def _guess_missing(sample: Sample, action: dict, rng: random.Random) -> Message | None:
    if action["kind"] != "ask" or not action.get("missing"):
        return None
    function, argument = action["missing"]
    later = _later_call(sample, action["message"] + 1, function)
    if later is None:
        return None
    schema = properties_of(_spec(sample, function)).get(argument, {})
    args = dict(later.arguments)
    args[argument] = guess_value(argument, schema, rng, avoid=later.arguments.get(argument))
    return Message("assistant", tool_calls=[ToolCall(function, args, id="call_0")])


def _unrelated(sample: Sample, action: dict, rng: random.Random) -> Message | None:
    if action["kind"] not in ("ask", "call"):
        return None
    expected = set(action.get("calls") or []) | {c.name for c in _calls_of(sample, action["message"])}
    if action.get("missing"):
        expected.add(action["missing"][0])
    others = sorted(n for n in sample.function_names() if n not in expected)
    if not others:
        return None
    name = rng.choice(others)
    spec = _spec(sample, name)
    props = properties_of(spec)
    args = {p: guess_value(p, props.get(p, {}), rng) for p in required_of(spec)}
    return Message("assistant", tool_calls=[ToolCall(name, args, id="call_0")])


def _drop_prerequisite(sample: Sample, action: dict, rng: random.Random) -> Message | None:
    if action["kind"] != "call" or not action.get("prerequisite"):
        return None
    main_name = (action.get("calls") or [None])[-1]
    main = _later_call(sample, action["message"] + 1, main_name) if main_name else None
    if main is None:
        return None
    fed = (action.get("feeds") or "").split("->")[-1]
    props = properties_of(_spec(sample, main.name))
    args = dict(main.arguments)
    if fed in props:
        args[fed] = guess_value(fed, props[fed], rng, avoid=main.arguments.get(fed))
    return Message("assistant", tool_calls=[ToolCall(main.name, args, id="call_0")])


def _wrong_value(sample: Sample, action: dict, rng: random.Random) -> Message | None:
    if action["kind"] != "call":
        return None
    calls = copy.deepcopy(_calls_of(sample, action["message"]))
    options = [(i, k) for i, c in enumerate(calls) for k in sorted(c.arguments)]
    if not options:
        return None
    i, key = rng.choice(options)
    schema = properties_of(_spec(sample, calls[i].name)).get(key, {})
    calls[i].arguments[key] = guess_value(key, schema, rng, avoid=calls[i].arguments[key])
    if calls[i].arguments[key] == _calls_of(sample, action["message"])[i].arguments[key]:
        return None  # a one-value enum or a bool with nothing else to pick
    return Message("assistant", tool_calls=calls)


_MAKERS: dict[str, Callable[[Sample, dict, random.Random], Message | None]] = {
    "guess_missing_argument": _guess_missing,
    "unrelated_function": _unrelated,
    "drop_prerequisite": _drop_prerequisite,
    "wrong_argument_value": _wrong_value,
}


def corrupt(sample: Sample, action: dict, corruption: str, rng: random.Random) -> Sample | None:
    """The negative trajectory for one (turn, corruption), or None where it does not apply."""
    bad = _MAKERS[corruption](sample, action, rng)
    if bad is None:
        return None
    idx = action["message"]
    rejected = sample.derive(f"magnet_{corruption}", messages=[*sample.messages[:idx], bad])
    rejected.meta = {"corruption": corruption, "turn": idx}
    if validate_sample(rejected):  # a negative must differ in behaviour only, never in syntax
        return None
    return rejected


def make_pairs(sample: Sample, seed: int, corruptions: list[str], per_sample: int) -> list[dict]:
    """Up to `per_sample` pairs per positive, spread over corruptions (seeded by sample id)."""
    unknown = [c for c in corruptions if c not in _MAKERS]
    if unknown:
        raise ValueError(f"unknown corruption(s) {unknown}; known: {list(CORRUPTIONS)}")
    rng = random.Random(int(hashlib.sha256(f"{seed}:{sample.id}".encode()).hexdigest()[:12], 16))
    options = [(a, c) for a in sample.meta.get("actions", []) for c in corruptions]
    rng.shuffle(options)
    pairs: list[dict] = []
    used: set[str] = set()  # one pair per corruption kind per sample keeps the mix varied
    for action, corruption in options:
        if len(pairs) >= per_sample:
            break
        if corruption in used:
            continue
        rejected = corrupt(sample, action, corruption, rng)
        if rejected is None:
            continue
        used.add(corruption)
        pairs.append(pair_row(sample, rejected, action["message"], corruption))
    return pairs


def pair_row(chosen: Sample, rejected: Sample, turn: int, corruption: str) -> dict[str, Any]:
    pid = hashlib.sha256(f"{chosen.id}:{turn}:{corruption}".encode()).hexdigest()[:24]
    return {
        "id": pid,
        "chosen": chosen.to_row(),
        "rejected": rejected.to_row(),
        "turn": turn,
        "corruption": corruption,
        "source": chosen.source,
        "meta": canonical_json({"chosen_id": chosen.id, "rejected_id": rejected.id}),
    }
