"""`raypipe graph build|stats` (the ToolFlow tool graph), `raypipe bench toolgraph`, and the
`toolpool_graph` job step."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field

from raypipe.config import input_paths, output_path
from raypipe.registry import Command, Step
from raypipe.synth.toolgraph import GraphConfig


@dataclass
class ToolGraphStepConfig:
    tools: list[str] = input_paths(format_prefix=True)  # tool files: JSON list of specs, BFCL question files, sample JSONL/Parquet,
    #                   or FORMAT:PATH for any `raypipe convert` format
    out: str = output_path()  # directory for nodes.parquet, edges.parquet, graph.json, stats.json, graph.png
    graph: GraphConfig = field(default_factory=GraphConfig)
    use_ray: bool | None = None  # None: Ray Data when the pool has >= ray_threshold tools
    ray_threshold: int = 5000


def build_graph(cfg: ToolGraphStepConfig) -> dict:
    from raypipe.synth.graphstats import draw_graph, graph_stats
    from raypipe.synth.toolgraph import build_tool_graph, build_tool_graph_ray, save_graph
    from raypipe.synth.toolpool import load_tool_pool

    pool = load_tool_pool(cfg.tools)
    use_ray = cfg.use_ray if cfg.use_ray is not None else len(pool) >= cfg.ray_threshold
    started = time.perf_counter()
    graph = (build_tool_graph_ray if use_ray else build_tool_graph)(pool, cfg.graph)
    took = time.perf_counter() - started
    save_graph(graph, cfg.out)
    stats = graph_stats(graph)
    from pathlib import Path

    (Path(cfg.out) / "stats.json").write_text(json.dumps(stats, indent=2))
    draw_graph(graph, Path(cfg.out) / "graph.png")
    return {"pool": pool.summary(), "nodes": stats["nodes"], "edges": stats["edges"],
            "edges_by_kind": stats["edges_by_kind"], "build_s": round(took, 2), "ray": use_ray,
            "out": cfg.out}


def _run_step(cfg: ToolGraphStepConfig, job) -> dict:
    return build_graph(cfg)


# -- CLI -----------------------------------------------------------------------------------

def _add_build(p) -> None:
    p.add_argument("--tools", nargs="+", required=True,
                   help="tool files: JSON list of specs, BFCL question files, sample JSONL/Parquet, "
                   "or FORMAT:PATH for any `raypipe convert` format (xlam:data.json)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--embedder", default="ngram:512", help="'ngram[:dim]' (offline) or 'st:<model>'")
    p.add_argument("--min-score", type=float, default=0.4, help="edge threshold (cosine)")
    p.add_argument("--top-k", type=int, default=8, help="edges kept per tool and kind")
    p.add_argument("--ray", action="store_true", help="run the similarity blocks on Ray Data")


def _run_build(args) -> int:
    cfg = ToolGraphStepConfig(
        tools=args.tools, out=args.out, use_ray=args.ray or None,
        graph=GraphConfig(embedder=args.embedder, min_score=args.min_score, top_k=args.top_k),
    )
    print(json.dumps(build_graph(cfg), indent=2))
    return 0


def _add_stats(p) -> None:
    p.add_argument("graph", help="graph directory (nodes.parquet, edges.parquet)")
    p.add_argument("--png", default=None, help="write degree distribution + sample subgraph here")
    p.add_argument("--nodes", type=int, default=20, help="tools in the drawn subgraph")


def _run_stats(args) -> int:
    from raypipe.synth.graphstats import draw_graph, graph_stats
    from raypipe.synth.toolgraph import load_graph

    graph = load_graph(args.graph)
    print(json.dumps(graph_stats(graph), indent=2))
    if args.png:
        drawn = draw_graph(graph, args.png, args.nodes)
        print(f"wrote {args.png} ({len(drawn)} tools drawn)")
    return 0


# -- benchmark -----------------------------------------------------------------------------

_NOUNS = ["city", "airport", "flight", "hotel", "date", "price", "currency", "amount", "stock",
          "symbol", "user", "email", "address", "location", "destination", "distance", "route",
          "event", "calendar", "temperature", "unit", "product", "order", "cart", "account",
          "balance", "doctor", "patient", "recipe", "ingredient", "movie", "genre", "song",
          "artist", "team", "player", "score", "language", "text", "file", "folder", "device"]
_VERBS = ["get", "find", "search", "create", "update", "delete", "list", "book", "send", "convert"]


def synthetic_pool(n: int, seed: int = 0) -> list[dict]:
    """n distinct specs with 1-5 parameters from a shared vocabulary, a third with returns."""
    rng = random.Random(seed)
    specs = []
    for i in range(n):
        verb, obj = rng.choice(_VERBS), rng.choice(_NOUNS)
        params = rng.sample(_NOUNS, rng.randint(1, 5))
        spec = {
            "name": f"{verb}_{obj}_{rng.choice(_NOUNS)}_{i}",
            "description": f"{verb.title()} a {obj} given {', '.join(params)}.",
            "parameters": {"type": "object", "properties": {
                f"{p}_{rng.choice(['id', 'name', 'code', 'value'])}":
                    {"type": "string", "description": f"The {p} {rng.choice(_NOUNS)}"}
                for p in params}, "required": []},
        }
        if rng.random() < 0.33:
            ret = rng.choice(_NOUNS)
            spec["returns"] = {"type": "object", "properties": {
                ret: {"type": "string", "description": f"the {ret} found"}}}
        specs.append(spec)
    return specs


def bench_toolgraph(sizes: list[int], dense_max: int) -> dict:
    """Blocked build per size, side by side with the same build in one block (one dense
    all-parameters matrix, the obvious alternative) where that fits; time ratio and memory."""
    from raypipe.synth.toolgraph import build_tool_graph
    from raypipe.synth.toolpool import pool_from_specs

    rows = []
    base = None
    for n in sizes:
        pool = pool_from_specs(synthetic_pool(n))
        n_params = sum(max(1, len(s["parameters"]["properties"])) for s in pool.specs())
        cfg = GraphConfig()
        t0 = time.perf_counter()
        graph = build_tool_graph(pool, cfg)
        blocked_s = time.perf_counter() - t0
        per_block = n_params * min(cfg.block_tools, n) / n
        row = {
            "tools": n, "parameters": n_params, "edges": len(graph.edges),
            "blocked_s": round(blocked_s, 2),
            "blocked_matrix_mb": round(per_block * n_params * 4 / 2**20, 1),
            "one_block_matrix_mb": round(n_params * n_params * 4 / 2**20, 1),
        }
        if n <= dense_max:
            t0 = time.perf_counter()
            dense = build_tool_graph(pool, GraphConfig(block_tools=n))
            row["one_block_s"] = round(time.perf_counter() - t0, 2)
            row["blocked_over_one_block"] = round(blocked_s / max(row["one_block_s"], 1e-9), 2)
            key = lambda e: (e["src"], e["dst"], e["kind"], e["via"])  # noqa: E731 (scores: float noise)
            row["same_edges"] = [key(e) for e in dense.edges] == [key(e) for e in graph.edges]
        base = base or (n, blocked_s)
        row["time_growth_vs_first"] = round(blocked_s / base[1], 2)
        row["quadratic_growth_vs_first"] = round((n / base[0]) ** 2, 2)
        rows.append(row)
    import os

    return {"benchmark": "toolgraph", "embedder": GraphConfig().embedder,
            "block_tools": GraphConfig().block_tools, "cpus": os.cpu_count(),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 1), "sizes": rows}


def _add_bench(p) -> None:
    p.add_argument("--sizes", default="1000,3000,10000", help="pool sizes, comma separated")
    p.add_argument("--dense-max", type=int, default=3000,
                   help="largest pool also built in one block (its matrix grows quadratically)")
    p.add_argument("--json", action="store_true", help="print JSON only")


def _run_bench(args) -> int:
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    result = bench_toolgraph(sizes, args.dense_max)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"tool graph build ({result['embedder']}, {result['block_tools']} tools per block) "
          f"vs the same build in one block; {result['cpus']} CPUs, load {result['load_avg_1m_at_end']}")
    for r in result["sizes"]:
        one = (f"one block {r['one_block_s']:.2f}s, {r['one_block_matrix_mb']} MB "
               f"(blocked/one = {r['blocked_over_one_block']}, same edges: {r['same_edges']})"
               if "one_block_s" in r else f"one block skipped (would need {r['one_block_matrix_mb']} MB)")
        print(f"{r['tools']:>6} tools {r['parameters']:>6} params: blocked {r['blocked_s']:.2f}s, "
              f"{r['blocked_matrix_mb']} MB (time x{r['time_growth_vs_first']}, n^2 "
              f"x{r['quadratic_growth_vs_first']}), {r['edges']} edges | {one}")
    return 0


COMMANDS = [
    Command(path=("graph", "build"), help="build the ToolFlow tool graph from tool files",
            add_arguments=_add_build, run=_run_build),
    Command(path=("graph", "stats"), help="tool graph statistics, degree distribution, drawn subgraph",
            add_arguments=_add_stats, run=_run_stats),
    Command(path=("bench", "toolgraph"), help="tool graph build time at growing pool sizes",
            add_arguments=_add_bench, run=_run_bench),
]

STEPS = [Step(kind="toolpool_graph", config=ToolGraphStepConfig, run=_run_step,
              help="build the ToolFlow tool graph (nodes/edges Parquet, stats, PNG)")]
