"""Inspecting a tool graph: counts, degree distribution, components, and a drawn sample subgraph."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from raypipe.synth.toolgraph import ToolGraph


def graph_stats(graph: ToolGraph) -> dict[str, Any]:
    degrees = graph.degrees()
    values = sorted(degrees.values())
    n = len(values)
    scores = sorted(e["score"] for e in graph.edges)

    def quantile(xs, q):
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None

    buckets = Counter(_bucket(d) for d in values)
    return {
        "nodes": n,
        "edges": len(graph.edges),
        "edges_by_kind": dict(Counter(e["kind"] for e in graph.edges)),
        "isolated_nodes": sum(1 for d in values if d == 0),
        "components": _components(graph),
        "degree": {"mean": round(sum(values) / n, 3) if n else 0, "median": quantile(values, 0.5),
                   "p90": quantile(values, 0.9), "max": values[-1] if values else 0},
        "degree_histogram": {k: buckets[k] for k in sorted(buckets, key=_bucket_order)},
        "score": {"min": scores[0] if scores else None, "median": quantile(scores, 0.5),
                  "max": scores[-1] if scores else None},
        "top_degree": sorted(degrees.items(), key=lambda kv: (-kv[1], kv[0]))[:10],
        "labels": dict(Counter(graph.labels.values()).most_common(20)) if graph.labels else {},
        **{k: v for k, v in graph.meta.items() if k in ("embedder", "min_score", "top_k")},
    }


def _bucket(d: int) -> str:
    if d <= 3:
        return str(d)
    lo = 2 ** int(math.log2(d))
    return f"{lo}-{2 * lo - 1}"


def _bucket_order(key: str) -> int:
    return int(key.split("-")[0])


def _components(graph: ToolGraph) -> int:
    parent = {n: n for n in graph.node_ids}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for e in graph.edges:
        a, b = find(e["src"]), find(e["dst"])
        if a != b:
            parent[a] = b
    return len({find(n) for n in graph.node_ids})


def sample_subgraph(graph: ToolGraph, max_nodes: int = 20, start: str | None = None) -> list[str]:
    """A breadth-first neighbourhood around `start` (default: the best-connected tool)."""
    if not graph.node_ids:
        return []
    degrees = graph.degrees()
    start = start or max(graph.node_ids, key=lambda n: (degrees[n], n))
    seen, frontier = [start], [start]
    while frontier and len(seen) < max_nodes:
        nxt = []
        for node in frontier:
            for nb, _ in sorted(graph.neighbours(node).items(), key=lambda kv: -kv[1]):
                if nb not in seen and len(seen) < max_nodes:
                    seen.append(nb)
                    nxt.append(nb)
        frontier = nxt
    return seen


def draw_graph(graph: ToolGraph, path, max_nodes: int = 20) -> list[str]:
    """PNG: the degree distribution and a drawn sample subgraph (edges coloured by kind)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = graph_stats(graph)
    nodes = sample_subgraph(graph, max_nodes)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 7), gridspec_kw={"width_ratios": [1, 2]})
    hist = stats["degree_histogram"]
    ax1.bar(list(hist), list(hist.values()), color="#4a7ab5")
    ax1.set_xlabel("degree")
    ax1.set_ylabel("tools")
    ax1.set_title(f"degree distribution ({stats['nodes']} tools, {stats['edges']} edges)")
    pos = {n: (math.cos(2 * math.pi * i / len(nodes)), math.sin(2 * math.pi * i / len(nodes)))
           for i, n in enumerate(nodes)}
    colours = {"param_param": "#4a7ab5", "return_param": "#d9822b", "magnet": "#3a9a4a"}
    chosen = set(nodes)
    for e in graph.edges:
        if e["src"] in chosen and e["dst"] in chosen:
            (x1, y1), (x2, y2) = pos[e["src"]], pos[e["dst"]]
            if e["kind"] == "return_param":
                ax2.annotate("", (x2, y2), (x1, y1), arrowprops={
                    "arrowstyle": "->", "color": colours["return_param"], "alpha": 0.8})
            else:
                ax2.plot([x1, x2], [y1, y2], color=colours.get(e["kind"], "grey"),
                         alpha=0.3 + 0.6 * float(e["score"]), lw=1)
    for n, (x, y) in pos.items():
        ax2.scatter([x], [y], s=40, color="black", zorder=3)
        ax2.text(x * 1.08, y * 1.08, n, fontsize=7, ha="left" if x >= 0 else "right", va="center")
    for kind, c in colours.items():
        ax2.plot([], [], color=c, label=kind)
    ax2.legend(loc="lower right", fontsize=8)
    ax2.set_title(f"sample subgraph around {nodes[0] if nodes else '-'}")
    ax2.set_xlim(-1.9, 1.9)
    ax2.set_ylim(-1.3, 1.3)
    ax2.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return nodes
