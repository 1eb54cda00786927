"""MAGNET function signature paths (FSP) and the node operations that make them multi-turn.

An FSP is a list of turns; each turn lists the functions the assistant calls to serve one user
turn, in order. A random walk over the function graph gives fs_1..fs_H, one call per turn; the
operations then reshape it (each is pure: it returns a new path and leaves its input alone):

- ``insert_prerequisite``: the turn also needs an earlier call whose output feeds the next
  ({get_airport_symbol_by_city, get_flight_by_airport}); the user never names the prerequisite.
- ``merge_turns``: two neighbouring turns become one user turn asking for both calls
  ({get_distance, set_navigation}).
- ``split_turn``: the user leaves out a required argument (get_distance(?, to_loc)); the turn
  becomes an ``ask`` turn (the assistant must ask, no call) and an ``answer`` turn (the user gives
  the value, then the calls are made).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, replace
from typing import Any

from raypipe.synth.toolgraph import ToolGraph
from raypipe.synth.toolpool import required_of, unwrap


@dataclass(frozen=True)
class FspTurn:
    calls: tuple[str, ...]  # node ids called in this turn, in order (empty for "ask")
    op: str = "walk"
    missing: tuple[str, str] | None = None  # (function, argument) for "ask"/"answer"
    feeds: str | None = None  # "insert": "<prereq output>-><main parameter>", e.g. "name->city"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["calls"] = list(self.calls)
        d["missing"] = list(self.missing) if self.missing else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FspTurn":
        return cls(tuple(d["calls"]), d.get("op", "walk"),
                   tuple(d["missing"]) if d.get("missing") else None, d.get("feeds"))


def random_walk_fsp(graph: ToolGraph, rng: random.Random, length: int,
                    kinds: tuple[str, ...] | None = None) -> list[FspTurn]:
    """fs_1..fs_H: a walk that never revisits a function (nor a same-name variant of one:
    a dialog cannot offer two functions with one name); shorter if it gets stuck."""
    connected = graph.connected(kinds)
    if not connected:
        raise ValueError("the function graph has no edges to walk")
    path = [rng.choice(connected)]
    while len(path) < length:
        taken = {_name(graph, p) for p in path}
        options = {n: s for n, s in graph.neighbours(path[-1], kinds).items()
                   if _name(graph, n) not in taken}
        if not options:  # dead end: step from any function on the path instead
            options = {n: s for p in path for n, s in graph.neighbours(p, kinds).items()
                       if _name(graph, n) not in taken}
        if not options:
            break
        names = sorted(options)
        path.append(rng.choices(names, weights=[max(options[n], 1e-6) for n in names])[0])
    return [FspTurn((n,)) for n in path]


def _name(graph: ToolGraph, node: str) -> str:
    return graph.name(node)


def insert_prerequisite(fsp: list[FspTurn], h: int, prereq: str, feeds: str) -> list[FspTurn]:
    turn = fsp[h]
    if turn.op in ("ask",) or not turn.calls:
        raise ValueError(f"turn {h} makes no call; nothing to prepend a prerequisite to")
    if prereq in turn.calls:
        raise ValueError(f"turn {h} already calls {prereq!r}")
    new = replace(turn, calls=(prereq, *turn.calls), op="insert", feeds=feeds)
    return [*fsp[:h], new, *fsp[h + 1:]]


def merge_turns(fsp: list[FspTurn], h: int) -> list[FspTurn]:
    if h + 1 >= len(fsp):
        raise ValueError(f"turn {h} has no next turn to merge with")
    a, b = fsp[h], fsp[h + 1]
    if a.op in ("ask", "answer") or b.op in ("ask", "answer"):
        raise ValueError("ask/answer turns belong together and cannot be merged")
    if set(a.calls) & set(b.calls):
        raise ValueError(f"turns {h} and {h + 1} call the same function")
    merged = FspTurn(calls=(*a.calls, *b.calls), op="merge", feeds=a.feeds or b.feeds)
    return [*fsp[:h], merged, *fsp[h + 2:]]


def split_turn(fsp: list[FspTurn], h: int, function: str, argument: str,
               spec: dict[str, Any]) -> list[FspTurn]:
    turn = fsp[h]
    if function not in turn.calls:
        raise ValueError(f"turn {h} does not call {function!r}")
    if turn.op in ("ask", "answer"):
        raise ValueError(f"turn {h} is already split")
    if argument not in required_of(spec):
        raise ValueError(f"{argument!r} is not a required argument of {unwrap(spec).get('name')}")
    ask = FspTurn(calls=(), op="ask", missing=(function, argument))
    answer = FspTurn(calls=turn.calls, op="answer", missing=(function, argument), feeds=turn.feeds)
    return [*fsp[:h], ask, answer, *fsp[h + 1:]]


@dataclass
class OpsConfig:
    p_insert: float = 0.3  # per turn, when the graph knows a tool whose output feeds it
    p_merge: float = 0.2  # per pair of neighbouring single-call turns
    p_split: float = 0.3  # per turn with a required argument


def apply_random_ops(fsp: list[FspTurn], graph: ToolGraph, rng: random.Random,
                     cfg: OpsConfig) -> list[FspTurn]:
    """Insert, then merge, then split at random (seeded); the order keeps each op valid."""
    out = list(fsp)
    used = {_name(graph, c) for t in out for c in t.calls}
    for h in range(len(out)):
        if rng.random() >= cfg.p_insert:
            continue
        main = out[h].calls[-1]
        feeders = [(src, via) for src, _, via in graph.feeders(main) if _name(graph, src) not in used]
        if feeders:
            src, via = feeders[0] if rng.random() < 0.5 else rng.choice(feeders)
            out = insert_prerequisite(out, h, src, via)
            used.add(_name(graph, src))
    h = 0
    while h + 1 < len(out):
        if out[h].op == "walk" and out[h + 1].op == "walk" and rng.random() < cfg.p_merge:
            out = merge_turns(out, h)
        h += 1
    h = 0
    while h < len(out):
        turn = out[h]
        if turn.op not in ("ask", "answer") and rng.random() < cfg.p_split:
            main = turn.calls[-1]
            spec = graph.spec(main)
            fed = turn.feeds.split("->")[-1] if turn.feeds else None  # the prerequisite gives it
            required = sorted(r for r in required_of(spec) if r != fed)
            if required:
                out = split_turn(out, h, main, rng.choice(required), spec)
                h += 1
        h += 1
    return out


def fsp_functions(fsp: list[FspTurn]) -> list[str]:
    seen: list[str] = []
    for t in fsp:
        for c in t.calls:
            if c not in seen:
                seen.append(c)
    return seen
