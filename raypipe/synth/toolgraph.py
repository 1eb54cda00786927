"""The ToolFlow tool graph: tools are nodes, edges say two tools are likely used together.

Two edge kinds, each with a score in [0, 1] (cosine of embeddings) and the fields that matched:

- ``param_param`` (undirected, stored with src < dst in node order): a parameter of one tool is
  semantically close to a parameter of the other (``location`` ~ ``destination``).
- ``return_param`` (directed, src's output feeds dst): what src returns is close to a parameter
  of dst (``check_calendar`` returns an event location, ``navigate`` takes a location). What a
  tool returns comes from its spec's ``response``/``returns`` schema when it has one, otherwise
  from its name: ``get_airport_symbol_by_city`` returns an "airport symbol".

Scores are computed in blocks of tools against all parameters, so memory stays at
``block_tools x params`` floats however large the pool; `edges_for_block` is the unit of work that
`build_tool_graph` runs in a loop and `build_tool_graph_ray` runs as Ray Data tasks. Each tool keeps
its `top_k` best edges of each kind whose score reaches `min_score`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raypipe.errors import RaypipeError
from raypipe.synth.embed import words
from raypipe.synth.toolpool import ToolPool, properties_of, unwrap

_VERBS = {
    "get", "fetch", "find", "search", "lookup", "look", "list", "retrieve", "query", "check",
    "calculate", "calc", "compute", "read", "load", "show", "obtain", "estimate", "convert",
}
_SPLITTERS = {"by", "for", "from", "of", "in", "with", "using", "to", "at", "on"}


@dataclass
class GraphConfig:
    embedder: str = "ngram:512"  # "ngram[:dim]" offline, or "st:<sentence-transformers model>"
    min_score: float = 0.4  # cosine below this is no edge
    top_k: int = 8  # best edges kept per tool and kind
    block_tools: int = 512  # tools per similarity block (memory: block x all parameters)

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be within [0, 1], got {self.min_score}")
        if self.top_k < 1 or self.block_tools < 1:
            raise ValueError("top_k and block_tools must be >= 1")


@dataclass
class ToolGraph:
    """Nodes, edges and lookups. The lookups are indexed once (lazily), so samplers that run
    once per dialog cost O(degree), not O(pool) or O(edges), per call. Edges are not to be
    mutated after the first lookup."""

    node_ids: list[str]
    specs: list[dict[str, Any]]
    edges: list[dict[str, Any]]  # {src, dst, kind, score, via}
    meta: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # node id -> domain (MAGNET)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def _memo(self, key: str, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def index(self) -> dict[str, int]:
        return self._memo("index", lambda: {n: i for i, n in enumerate(self.node_ids)})

    def spec(self, node_id: str) -> dict[str, Any]:
        return self.specs[self.index()[node_id]]

    def name(self, node_id: str) -> str:
        """The function name (node ids of same-name variants are ``name~2``...)."""
        names = self._memo("names", lambda: {
            n: unwrap(s).get("name", n) for n, s in zip(self.node_ids, self.specs)})
        return names[node_id]

    def _adjacency(self) -> dict[str, dict[str, dict[str, float]]]:
        def build():
            adj: dict[str, dict[str, dict[str, float]]] = {}
            for e in self.edges:
                for a, b in ((e["src"], e["dst"]), (e["dst"], e["src"])):
                    slot = adj.setdefault(a, {}).setdefault(e["kind"], {})
                    slot[b] = max(slot.get(b, 0.0), e["score"])
            return adj
        return self._memo("adj", build)

    def neighbours(self, node_id: str, kinds: tuple[str, ...] | None = None) -> dict[str, float]:
        """Adjacent node ids (either direction) with the best score over edge kinds."""
        out: dict[str, float] = {}
        for kind, nbrs in self._adjacency().get(node_id, {}).items():
            if kinds is None or kind in kinds:
                for n, s in nbrs.items():
                    out[n] = max(out.get(n, 0.0), s)
        return out

    def connected(self, kinds: tuple[str, ...] | None = None) -> list[str]:
        """Node ids with at least one edge of the given kinds, in node order."""
        return self._memo(f"connected:{kinds}", lambda: [
            n for n in self.node_ids if self.neighbours(n, kinds)])

    def feeders(self, node_id: str) -> list[tuple[str, float, str]]:
        """Tools whose output feeds a parameter of node_id: (src, score, via), best first."""
        def build():
            by_dst: dict[str, list[tuple[str, float, str]]] = {}
            for e in self.edges:
                if e["kind"] == "return_param":
                    by_dst.setdefault(e["dst"], []).append((e["src"], e["score"], e["via"]))
            return {d: sorted(v, key=lambda x: -x[1]) for d, v in by_dst.items()}
        return self._memo("feeders", build).get(node_id, [])

    def induced_edges(self, node_ids: list[str]) -> list[dict[str, Any]]:
        """The edges among `node_ids`, in the graph's edge order."""
        def build():
            by_node: dict[str, list[int]] = {}
            for i, e in enumerate(self.edges):
                by_node.setdefault(e["src"], []).append(i)
                by_node.setdefault(e["dst"], []).append(i)
            return by_node
        chosen = set(node_ids)
        by_node = self._memo("edges_by_node", build)
        hits = {i for n in chosen for i in by_node.get(n, [])
                if self.edges[i]["src"] in chosen and self.edges[i]["dst"] in chosen}
        return [self.edges[i] for i in sorted(hits)]

    def degrees(self) -> dict[str, int]:
        return {n: len(self.neighbours(n)) for n in self.node_ids}


# -- texts ---------------------------------------------------------------------------------

def param_fields(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(parameter name, text to embed) per parameter: the name's words weigh double."""
    out = []
    for name, schema in properties_of(spec).items():
        w = " ".join(words(name))
        out.append((name, f"{w} {w} {schema.get('description') or ''}".strip()))
    return out


def return_fields(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(return field name, text) from an explicit response schema, else from the tool's name."""
    spec = unwrap(spec)
    for key in ("response", "returns", "return", "output"):
        value = spec.get(key)
        if isinstance(value, dict):
            props = value.get("properties")
            if isinstance(props, dict) and props:
                out = []
                for name, schema in props.items():
                    w = " ".join(words(name))
                    desc = schema.get("description", "") if isinstance(schema, dict) else ""
                    out.append((f"{key}.{name}", f"{w} {w} {desc}".strip()))
                return out
            if value.get("description"):
                return [(key, str(value["description"]))]
        elif isinstance(value, str) and value.strip():
            return [(key, value)]
    noun = returned_noun(spec.get("name", ""))
    return [("name", f"{noun} {noun}")] if noun else []


def returned_noun(name: str) -> str:
    """What a getter's name says it returns: get_airport_symbol_by_city -> 'airport symbol',
    games.price.find -> 'games price' (the namespace names the thing when the verb is last)."""
    *namespace, function = name.split(".")

    def noun(ws: list[str]) -> list[str]:
        while ws and ws[0] in _VERBS:
            ws = ws[1:]
        for i, w in enumerate(ws):
            if w in _SPLITTERS:
                return ws[:i]
        return [w for w in ws if w not in _VERBS]

    return " ".join(noun(words(function)) or noun(words(" ".join(namespace))))


# -- building ------------------------------------------------------------------------------

@dataclass
class _Matrices:
    """Embedded fields of every tool, rows grouped by tool (offsets into the rows)."""

    params: Any  # (n_param_rows, dim) float32, unit rows; a tool without params has a zero row
    param_offsets: Any  # (n_tools,) int64: first row of each tool
    returns: Any
    return_offsets: Any
    base_ids: Any  # (n_tools,) int64: tools sharing a name (name~2 variants) never link
    param_names: list[list[str]]  # field names per tool, for an edge's `via`
    return_names: list[list[str]]


def embed_pool(specs: list[dict[str, Any]], embedder) -> _Matrices:
    import numpy as np

    def grouped(fields_of):
        texts, offsets, names = [], [], []
        for spec in specs:
            fields = fields_of(spec)
            names.append([f for f, _ in fields])
            offsets.append(len(texts))
            texts.extend([t for _, t in fields] or [""])  # keep one (zero) row per tool
        return texts, np.asarray(offsets, dtype=np.int64), names

    p_texts, p_off, p_names = grouped(param_fields)
    r_texts, r_off, r_names = grouped(return_fields)
    if hasattr(embedder, "fit"):
        embedder.fit(p_texts + r_texts)
    p = embedder.embed(p_texts)
    r = embedder.embed(r_texts)
    p[[i for i, t in enumerate(p_texts) if not t]] = 0.0
    r[[i for i, t in enumerate(r_texts) if not t]] = 0.0
    ids: dict[str, int] = {}
    bases = np.asarray([ids.setdefault(unwrap(s).get("name", ""), len(ids)) for s in specs], dtype=np.int64)
    return _Matrices(p, p_off, r, r_off, bases, p_names, r_names)


def _tool_max(rows_by_cols, row_offsets, col_offsets):
    """Max over each (tool, tool) group of a (rows x cols) similarity matrix."""
    import numpy as np

    cols = np.maximum.reduceat(rows_by_cols, col_offsets, axis=1)
    return np.maximum.reduceat(cols, row_offsets, axis=0)


def edges_for_block(m: _Matrices, start: int, stop: int, min_score: float, top_k: int) -> dict:
    """Candidate edges whose source tool is in [start, stop): columns src, dst, kind, score."""
    import numpy as np

    n = len(m.param_offsets)
    out: dict[str, list] = {"src": [], "dst": [], "kind": [], "score": []}
    bases = m.base_ids
    for kind, left, left_off in (
        ("param_param", m.params, m.param_offsets),
        ("return_param", m.returns, m.return_offsets),
    ):
        lo = left_off[start]
        hi = left_off[stop] if stop < n else len(left)
        sims = left[lo:hi] @ m.params.T
        scores = _tool_max(sims, left_off[start:stop] - lo, m.param_offsets)
        for i in range(stop - start):
            src = start + i
            row = np.round(scores[i], 4)  # rounded: float noise must not reorder ties
            row[bases == bases[src]] = -1.0  # itself, and its same-name variants
            for dst in _top_k(row, top_k, min_score):
                out["src"].append(src)
                out["dst"].append(int(dst))
                out["kind"].append(kind)
                out["score"].append(float(row[dst]))
    return out


def _top_k(row, k: int, min_score: float):
    """Indices of the k best scores >= min_score; ties at the cut go to the lowest indices, so
    the result does not depend on how the pool was blocked or on which machine."""
    import numpy as np

    cand = np.flatnonzero(row >= min_score)
    if len(cand) <= k:
        return cand
    kth = np.partition(row[cand], len(cand) - k)[len(cand) - k]  # the k-th largest
    above = cand[row[cand] > kth]
    ties = cand[row[cand] == kth][: k - len(above)]
    return np.concatenate([above, ties])


def _finish(specs, node_ids, candidates: list[dict], m: _Matrices, name: str, cfg) -> ToolGraph:
    """Merge block outputs: undirected param edges deduplicated, `via` filled in."""
    best: dict[tuple, float] = {}
    for block in candidates:
        for s, d, k, sc in zip(block["src"], block["dst"], block["kind"], block["score"]):
            key = (min(s, d), max(s, d), k) if k == "param_param" else (s, d, k)
            best[key] = max(best.get(key, 0.0), sc)
    edges = []
    for (s, d, kind), score in sorted(best.items()):
        edges.append({
            "src": node_ids[s], "dst": node_ids[d], "kind": kind, "score": round(score, 4),
            "via": _via(m, s, d, kind),
        })
    meta = {"embedder": name, "min_score": cfg.min_score, "top_k": cfg.top_k}
    return ToolGraph(list(node_ids), list(specs), edges, meta)


def _rows(matrix, offsets, i: int):
    stop = offsets[i + 1] if i + 1 < len(offsets) else len(matrix)
    return matrix[offsets[i]:stop]


def _via(m: _Matrices, s: int, d: int, kind: str) -> str:
    """The pair of fields that matched best, e.g. 'location~destination'."""
    import numpy as np

    if kind == "param_param":
        left, lrows, sep = m.param_names[s], _rows(m.params, m.param_offsets, s), "~"
    else:
        left, lrows, sep = m.return_names[s], _rows(m.returns, m.return_offsets, s), "->"
    right, rrows = m.param_names[d], _rows(m.params, m.param_offsets, d)
    if not left or not right:
        return ""
    i, j = np.unravel_index(int(np.argmax(lrows @ rrows.T)), (len(left), len(right)))
    return f"{left[i]}{sep}{right[j]}"


def build_tool_graph(pool: ToolPool, cfg: GraphConfig | None = None, embedder=None) -> ToolGraph:
    """Build in this process, block by block."""
    from raypipe.synth.embed import make_embedder

    cfg = cfg or GraphConfig()
    embedder = embedder or make_embedder(cfg.embedder)
    specs, node_ids = pool.specs(), pool.ids()
    m = embed_pool(specs, embedder)
    blocks = [
        edges_for_block(m, s, min(s + cfg.block_tools, len(specs)), cfg.min_score, cfg.top_k)
        for s in range(0, len(specs), cfg.block_tools)
    ]
    return _finish(specs, node_ids, blocks, m, embedder.name, cfg)


def build_tool_graph_ray(pool: ToolPool, cfg: GraphConfig | None = None, embedder=None) -> ToolGraph:
    """The same graph with the similarity blocks run as Ray Data tasks (for large pools on a
    cluster); the embedded fields travel once through the object store."""
    import ray

    from raypipe.synth.embed import make_embedder

    cfg = cfg or GraphConfig()
    embedder = embedder or make_embedder(cfg.embedder)
    specs, node_ids = pool.specs(), pool.ids()
    m = embed_pool(specs, embedder)
    m_ref = ray.put(m)
    starts = list(range(0, len(specs), cfg.block_tools))
    n, bt, ms, k = len(specs), cfg.block_tools, cfg.min_score, cfg.top_k

    def run_blocks(batch):
        mats = ray.get(m_ref)
        out: dict[str, list] = {"src": [], "dst": [], "kind": [], "score": []}
        for s in batch["start"]:
            got = edges_for_block(mats, int(s), min(int(s) + bt, n), ms, k)
            for key in out:
                out[key].extend(got[key])
        return out

    ds = ray.data.from_items([{"start": s} for s in starts], override_num_blocks=len(starts))
    rows = ds.map_batches(run_blocks, batch_size=1, batch_format="numpy").take_all()
    merged = {"src": [r["src"] for r in rows], "dst": [r["dst"] for r in rows],
              "kind": [r["kind"] for r in rows], "score": [r["score"] for r in rows]}
    return _finish(specs, node_ids, [merged], m, embedder.name, cfg)


# -- Parquet -------------------------------------------------------------------------------

def save_graph(graph: ToolGraph, out_dir: str | Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    nodes = pa.table({
        "id": graph.node_ids,
        "name": [unwrap(s).get("name", "") for s in graph.specs],
        "spec": [json.dumps(s, ensure_ascii=False, sort_keys=True) for s in graph.specs],
        "label": [graph.labels.get(n) for n in graph.node_ids],
    })
    cols = ("src", "dst", "kind", "score", "via")
    edges = pa.table(
        {c: [e[c] for e in graph.edges] for c in cols},
        schema=pa.schema([("src", pa.string()), ("dst", pa.string()), ("kind", pa.string()),
                          ("score", pa.float32()), ("via", pa.string())]),
    )
    pq.write_table(nodes, out / "nodes.parquet")
    pq.write_table(edges, out / "edges.parquet")
    (out / "graph.json").write_text(json.dumps(
        {**graph.meta, "nodes": len(graph.node_ids), "edges": len(graph.edges)}, indent=2))


def load_graph(path: str | Path) -> ToolGraph:
    import pyarrow.parquet as pq

    path = Path(path)
    for f in ("nodes.parquet", "edges.parquet"):
        if not (path / f).exists():
            raise RaypipeError(f"{path}: not a tool graph (no {f}); build one with `raypipe graph build`")
    nodes = pq.read_table(path / "nodes.parquet").to_pylist()
    edges = pq.read_table(path / "edges.parquet").to_pylist()
    for e in edges:
        e["score"] = round(float(e["score"]), 4)
    meta = json.loads((path / "graph.json").read_text()) if (path / "graph.json").exists() else {}
    return ToolGraph(
        node_ids=[n["id"] for n in nodes],
        specs=[json.loads(n["spec"]) for n in nodes],
        edges=edges,
        meta=meta,
        labels={n["id"]: n["label"] for n in nodes if n.get("label")},
    )
