"""Graph-based tool sampling (ToolFlow): the tools one dialog may use.

Random tools rarely combine into one task; neighbours in the tool graph do. Two samplers:

- ``walk``: a random walk; each next tool is, with probability `relatedness`, a neighbour of the
  tool picked last (weighted by edge score), else a uniform jump anywhere in the pool.
- ``neighbourhood``: grows a connected set; each next tool is, with probability `relatedness`,
  a neighbour of any tool picked so far.

`relatedness=0` gives ToolFlow's random-sampling baseline. Both are pure functions of the graph
and a seeded `random.Random`; `dialog_rng(seed, key)` gives every dialog its own stable stream, so
a resumed or re-sharded run samples the same tools for the same dialog.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any, Literal

from raypipe.synth.toolgraph import ToolGraph


@dataclass
class SamplingConfig:
    method: Literal["walk", "neighbourhood"] = "walk"
    min_tools: int = 2
    max_tools: int = 4
    relatedness: float = 0.9  # share of picks that follow an edge (0 = random sampling)

    def __post_init__(self) -> None:
        if not 1 <= self.min_tools <= self.max_tools:
            raise ValueError(f"need 1 <= min_tools <= max_tools, got {self.min_tools}, {self.max_tools}")
        if not 0.0 <= self.relatedness <= 1.0:
            raise ValueError(f"relatedness must be within [0, 1], got {self.relatedness}")


def dialog_rng(seed: int, key: str | int) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _weighted(rng: random.Random, options: dict[str, float]) -> str:
    names = sorted(options)  # sorted: dict order must not change what a seed picks
    return rng.choices(names, weights=[max(options[n], 1e-6) for n in names], k=1)[0]


def sample_tools(graph: ToolGraph, rng: random.Random, cfg: SamplingConfig) -> dict[str, Any]:
    """Pick tools for one dialog. Returns {"tools": [node ids], "linked": picks that followed
    an edge, "edges": the subgraph induced on the picked tools}."""
    if not graph.node_ids:
        raise ValueError("the tool graph has no nodes")
    size = rng.randint(cfg.min_tools, min(cfg.max_tools, len(graph.node_ids)))
    connected = graph.connected()
    start_pool = connected if cfg.relatedness > 0 and connected else graph.node_ids
    picked = [rng.choice(start_pool)]
    linked = 0
    attempts = 0
    while len(picked) < size and attempts < 20 * size:
        attempts += 1
        taken = {graph.name(p) for p in picked}
        if rng.random() < cfg.relatedness:
            sources = [picked[-1]] if cfg.method == "walk" else picked
            options: dict[str, float] = {}
            for src in sources:
                for n, s in graph.neighbours(src).items():
                    if graph.name(n) not in taken:
                        options[n] = max(options.get(n, 0.0), s)
            if not options and cfg.method == "walk":  # dead end: continue from any picked tool
                for src in picked:
                    for n, s in graph.neighbours(src).items():
                        if graph.name(n) not in taken:
                            options[n] = max(options.get(n, 0.0), s)
            if options:
                picked.append(_weighted(rng, options))
                linked += 1
                continue
        choice = rng.choice(graph.node_ids)
        if graph.name(choice) not in taken:
            picked.append(choice)
    return {"tools": picked, "linked": linked, "edges": graph.induced_edges(picked)}
