"""MAGNET's function graph: domain labels from an LLM, same-label candidates, judge-approved edges.

1. every function gets a domain label (one cached LLM call each: `make_label_program`);
2. each function draws up to `candidates` random neighbours with the same label
   (`candidate_pairs`, pure and seeded);
3. an LLM judge keeps the pairs a user could plausibly need in one conversation
   (`make_judge_program`).

The result (`function_graph`) is a `ToolGraph` whose ``magnet`` edges are the approved pairs
(what FSP random walks follow), plus the tool graph's ``return_param`` edges (what the insert
operation uses to find a prerequisite whose output feeds a call).
"""

from __future__ import annotations

import json
import re
from typing import Any

from raypipe.synth.sampling import dialog_rng
from raypipe.synth.toolgraph import ToolGraph
from raypipe.synth.toolpool import unwrap

LABEL_SYSTEM = (
    "You label software functions with the application domain they belong to (for example "
    "travel, finance, weather, calendar, email, maps, shopping, health, math, sports, "
    "entertainment, education, science). Use a short lower-case label of one or two words. "
    "{choices}Reply with one JSON object and nothing else: {{\"domain\": \"<label>\"}}."
)

JUDGE_SYSTEM = (
    "You judge whether two functions belong together in one realistic multi-turn conversation: "
    "would one user plausibly need both while pursuing a single goal (for example, first finding "
    "an airport code, then the flights landing there)? Functions that merely share a domain but "
    "serve unrelated goals do not belong together. Reply with one JSON object and nothing else: "
    '{"related": true or false, "reason": "<one sentence>"}.'
)


def normalise_label(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", label.lower()).strip()


def label_inputs(graph: ToolGraph) -> list[dict[str, Any]]:
    return [{"id": n, "spec": json.dumps(unwrap(s), ensure_ascii=False)}
            for n, s in zip(graph.node_ids, graph.specs)]


def make_label_program(domains: list[str] | None = None):
    allowed = [normalise_label(d) for d in domains or []]
    choices = f"Choose one of: {', '.join(allowed)}. " if allowed else ""

    def check(obj: Any) -> None:
        label = obj.get("domain") if isinstance(obj, dict) else None
        if not isinstance(label, str) or not normalise_label(label):
            raise ValueError('expected {"domain": "<label>"}')
        if allowed and normalise_label(label) not in allowed:
            raise ValueError(f"domain must be one of {allowed}")

    async def program(row: dict[str, Any], client) -> dict[str, Any]:
        got = await client.chat_json([
            {"role": "system", "content": LABEL_SYSTEM.format(choices=choices)},
            {"role": "user", "content": f"FUNCTION:\n{row['spec']}"},
        ], validate=check)
        return {"id": row["id"], "domain": normalise_label(got["domain"])}

    return program


def candidate_pairs(graph: ToolGraph, labels: dict[str, str], candidates: int,
                    seed: int) -> list[dict[str, Any]]:
    """Up to `candidates` same-label partners per function, as unordered pairs (a < b)."""
    by_label: dict[str, list[str]] = {}
    for n in graph.node_ids:
        if n in labels:
            by_label.setdefault(labels[n], []).append(n)
    names = {n: unwrap(s).get("name") for n, s in zip(graph.node_ids, graph.specs)}
    pairs: dict[tuple[str, str], None] = {}
    for n in graph.node_ids:
        if n not in labels:
            continue
        peers = [p for p in by_label[labels[n]] if names[p] != names[n]]
        rng = dialog_rng(seed, n)
        for p in rng.sample(peers, min(candidates, len(peers))):
            pairs[(min(n, p), max(n, p))] = None
    return [
        {"id": f"{a}||{b}", "a": a, "b": b, "domain": labels[a],
         "spec_a": json.dumps(unwrap(graph.spec(a)), ensure_ascii=False),
         "spec_b": json.dumps(unwrap(graph.spec(b)), ensure_ascii=False)}
        for a, b in sorted(pairs)
    ]


def make_judge_program():
    def check(obj: Any) -> None:
        if not isinstance(obj, dict) or not isinstance(obj.get("related"), bool):
            raise ValueError('expected {"related": true|false, "reason": "..."}')

    async def program(row: dict[str, Any], client) -> dict[str, Any]:
        got = await client.chat_json([
            {"role": "system", "content": JUDGE_SYSTEM},
            {"role": "user", "content": f"FUNCTION A:\n{row['spec_a']}\n\nFUNCTION B:\n{row['spec_b']}"},
        ], validate=check)
        return {"id": row["id"], "a": row["a"], "b": row["b"], "approved": got["related"],
                "reason": str(got.get("reason", ""))}

    return program


def function_graph(tool_graph: ToolGraph, labels: dict[str, str],
                   judged: list[dict[str, Any]]) -> ToolGraph:
    """Approved pairs become ``magnet`` edges; the tool graph's return->parameter edges stay."""
    edges = [e for e in tool_graph.edges if e["kind"] == "return_param"]
    for j in sorted(judged, key=lambda r: r["id"]):
        if j["approved"]:
            edges.append({"src": j["a"], "dst": j["b"], "kind": "magnet", "score": 1.0,
                          "via": labels.get(j["a"], "")})
    meta = {**tool_graph.meta, "labels": len(labels), "judged": len(judged),
            "approved": sum(1 for j in judged if j["approved"])}
    return ToolGraph(list(tool_graph.node_ids), list(tool_graph.specs), edges, meta, dict(labels))
