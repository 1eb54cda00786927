"""Running the multi-turn methods end to end: inputs -> LLM engine -> samples, pairs, report.

Every LLM call goes through `raypipe.llm.run_llm_program` (cache, limits, retries, rejects,
row-level resume by input id). Inputs are derived deterministically from (graph, seed, index),
so re-running a step with the same config resumes it: finished dialogs are skipped, nothing is
paid for twice, and outputs are read back deduplicated by id.

Layout of a ToolFlow run dir: ``dialogs/`` (engine output: data/, rejects/, summary.json),
``judge/`` (optional), ``quality.json``, ``quality.md``. A MAGNET run adds ``pairs/`` (one
Parquet file of `dpo_pair_schema()` rows per trajectory shard). A MAGNET function graph dir
holds ``labels/`` and ``judged/`` (engine outputs) and ``graph/`` (nodes/edges Parquet).
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any, Iterator

from raypipe.schema import Sample, arrow_schema, dpo_pair_schema

CHUNK_ROWS = 50_000  # inputs made and handed to the engine per call (bounds driver memory)


def read_rows(folder: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for f in sorted(folder.glob("*.parquet")) if folder.exists() else []:
        rows.extend(pq.read_table(f).to_pylist())
    return rows


def read_outputs(stage_dir: Path) -> tuple[list[dict], list[dict]]:
    """(outputs, rejects) of one engine run, each id once; a reject later retried and produced
    counts as produced."""
    outputs = list({r["id"]: r for r in read_rows(stage_dir / "data")}.values())
    done = {r["id"] for r in outputs}
    rejects = list({r.get("id"): r for r in read_rows(stage_dir / "rejects")
                    if r.get("id") not in done}.values())
    return outputs, rejects


def iter_produced(stage_dir: Path) -> Iterator[Sample]:
    """The samples an engine run wrote, shard by shard, each id once (memory: one shard)."""
    import pyarrow.parquet as pq

    seen: set[str] = set()
    folder = stage_dir / "data"
    for f in sorted(folder.glob("*.parquet")) if folder.exists() else []:
        for row in pq.read_table(f).to_pylist():
            if row["id"] not in seen:
                seen.add(row["id"])
                yield Sample.from_row(row)


def final_rejects(stage_dir: Path) -> list[dict[str, Any]]:
    """Rejects of an engine run, each id once, minus ids that were produced after all."""
    import pyarrow.parquet as pq

    folder = stage_dir / "data"
    produced = {i for f in (sorted(folder.glob("*.parquet")) if folder.exists() else [])
                for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()}
    return list({r.get("id"): r for r in read_rows(stage_dir / "rejects")
                 if r.get("id") not in produced}.values())


def _engine(inputs, llm, program, out_dir: Path, stage: str, output_schema=None,
            executor: str = "auto") -> dict:
    from raypipe.llm import run_llm_program

    return run_llm_program(inputs, llm=llm, program=program, out_dir=str(out_dir), stage=stage,
                           output_schema=output_schema, executor=executor) or {}


def _judge(stage_dir: Path, llm, out: Path, limit: int, executor: str) -> list[dict]:
    from raypipe.synth.quality import judge_inputs, make_judge_program

    chosen = list(islice(iter_produced(stage_dir), limit)) if limit > 0 else []
    if not chosen:
        return []
    _engine(judge_inputs(chosen), llm, make_judge_program(), out / "judge", "multiturn_judge",
            executor=executor)
    return read_outputs(out / "judge")[0]


def _report(stage_dir: Path, attempted: int, llm, out: Path, judge: int, executor: str,
            title: str, extra: dict | None = None) -> dict[str, Any]:
    from raypipe.synth.quality import quality_report, write_report

    scores = _judge(stage_dir, llm, out, judge, executor)
    report = quality_report(iter_produced(stage_dir), final_rejects(stage_dir), attempted, scores)
    report.update(extra or {})
    write_report(report, out, title)
    return report


def run_toolflow(graph_dir: str, out_dir: str, n: int, seed: int, dialog, llm,
                 judge: int = 0, executor: str = "auto") -> dict[str, Any]:
    from raypipe.synth import toolflow
    from raypipe.synth.toolgraph import load_graph

    out = Path(out_dir)
    graph = load_graph(graph_dir)
    program = toolflow.make_program(dialog, toolflow.specs_by_node(graph))
    engine: dict = {}
    for start in range(0, n, CHUNK_ROWS):
        rows = toolflow.make_inputs(graph, min(CHUNK_ROWS, n - start), seed, dialog, start)
        engine = _engine(rows, llm, program, out / "dialogs", toolflow.STAGE, arrow_schema(), executor)
    report = _report(out / "dialogs", n, llm, out, judge, executor, "ToolFlow")
    return {"attempted": n, "produced": report["produced"], "rejected": report["rejected"],
            "engine": _scalars(engine), "out": str(out)}


def run_magnet_graph(tool_graph_dir: str, out_dir: str, candidates: int, seed: int,
                     domains: list[str] | None, llm, executor: str = "auto") -> dict[str, Any]:
    from raypipe.synth import magnet_graph as mg
    from raypipe.synth.toolgraph import load_graph, save_graph

    out = Path(out_dir)
    tool_graph = load_graph(tool_graph_dir)
    _engine(mg.label_inputs(tool_graph), llm, mg.make_label_program(domains), out / "labels",
            "magnet_label", executor=executor)
    labelled, label_rejects = read_outputs(out / "labels")
    labels = {r["id"]: r["domain"] for r in labelled}
    pairs = mg.candidate_pairs(tool_graph, labels, candidates, seed)
    _engine(pairs, llm, mg.make_judge_program(), out / "judged", "magnet_judge", executor=executor)
    judged, judge_rejects = read_outputs(out / "judged")
    graph = mg.function_graph(tool_graph, labels, judged)
    save_graph(graph, out / "graph")
    return {"functions": len(tool_graph.node_ids), "labelled": len(labels),
            "label_rejects": len(label_rejects), "candidate_pairs": len(pairs),
            "judged": len(judged), "judge_rejects": len(judge_rejects),
            "approved_edges": graph.meta["approved"], "graph": str(out / "graph")}


def run_magnet(graph_dir: str, out_dir: str, n: int, seed: int, path_cfg, llm,
               corruptions: list[str], pairs_per_sample: int, judge: int = 0,
               executor: str = "auto") -> dict[str, Any]:
    from raypipe.synth import magnet
    from raypipe.synth.toolflow import specs_by_node
    from raypipe.synth.toolgraph import load_graph

    out = Path(out_dir)
    graph = load_graph(graph_dir)
    program = magnet.make_program(specs_by_node(graph))
    engine: dict = {}
    for start in range(0, n, CHUNK_ROWS):
        rows = magnet.make_inputs(graph, min(CHUNK_ROWS, n - start), seed, path_cfg, start)
        engine = _engine(rows, llm, program, out / "trajectories", magnet.STAGE, arrow_schema(), executor)
    pair_counts = write_pairs(out / "trajectories" / "data", out / "pairs", seed, corruptions,
                              pairs_per_sample)
    report = _report(out / "trajectories", n, llm, out, judge, executor, "MAGNET",
                     {"pairs": pair_counts})
    return {"attempted": n, "produced": report["produced"], "rejected": report["rejected"],
            "pairs": sum(pair_counts.values()), "engine": _scalars(engine), "out": str(out)}


def write_pairs(data_dir: Path, pairs_dir: Path, seed: int, corruptions: list[str],
                per_sample: int) -> dict[str, int]:
    """One pairs file per trajectory shard (skipped when already written: resumable); a
    trajectory seen in an earlier shard is not paired twice. Returns pairs per corruption."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raypipe.synth.trajectories import make_pairs

    pairs_dir.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    counts: dict[str, int] = {}
    for shard in sorted(data_dir.glob("*.parquet")) if data_dir.exists() else []:
        target = pairs_dir / f"{shard.stem}.pairs.parquet"
        if target.exists():
            for c in pq.read_table(target, columns=["corruption"]).column("corruption").to_pylist():
                counts[c] = counts.get(c, 0) + 1
            seen.update(pq.read_table(shard, columns=["id"]).column("id").to_pylist())
            continue
        rows = []
        for row in pq.read_table(shard).to_pylist():
            if row["id"] in seen:
                continue
            seen.add(row["id"])
            rows.extend(make_pairs(Sample.from_row(row), seed, corruptions, per_sample))
        for r in rows:
            counts[r["corruption"]] = counts.get(r["corruption"], 0) + 1
        tmp = target.with_suffix(".tmp")
        pq.write_table(pa.Table.from_pylist(rows, schema=dpo_pair_schema()), tmp)
        tmp.rename(target)
    return dict(sorted(counts.items()))


def _scalars(d: dict) -> dict:
    return {k: v for k, v in d.items() if isinstance(v, (int, float, str, bool))}
