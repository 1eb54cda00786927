"""Running the multi-turn methods end to end: inputs -> LLM engine -> samples, pairs, report.

Every LLM call goes through the engine's one executor (`raypipe.llm.run_stage`: cache, limits,
retries, rejects, pending rows, row-level resume by input id). ToolFlow and MAGNET run as one
lazy dataset whose rows are derived from (graph, seed, index), so re-running a step with the
same config resumes it: finished dialogs are skipped and nothing is paid for twice. Outputs are
read back through the commit contract (`raypipe.io.dataset`).

Layout of a ToolFlow run dir: ``dialogs/`` (a dataset: data/, rejects/, commits, summary.json),
``judge/`` (optional), ``quality.json``, ``quality.md``. A MAGNET run adds ``pairs/`` (a dataset
of `dpo_pair_schema()` rows, one commit per trajectory file). A MAGNET function graph dir holds
``labels/`` and ``judged/`` (engine outputs) and ``graph/`` (nodes/edges Parquet).
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any, Iterator

from raypipe.schema import Sample, dpo_pair_schema


def read_outputs(stage_dir: Path) -> tuple[list[dict], list[dict]]:
    """(outputs, rejects) of one engine run, as committed."""
    from raypipe.io.dataset import read_committed

    data, rejects = read_committed(str(stage_dir), "data"), read_committed(str(stage_dir), "rejects")
    return (data.to_pylist() if data is not None else [],
            rejects.to_pylist() if rejects is not None else [])


def iter_produced(stage_dir: Path) -> Iterator[Sample]:
    """The samples an engine run committed, file by file (memory: one file)."""
    import pyarrow.parquet as pq

    from raypipe.io import fs
    from raypipe.io.dataset import open_dataset

    for path in open_dataset(str(stage_dir)).data:
        filesystem, inner = fs.resolve(path)
        for row in pq.read_table(inner, filesystem=filesystem).to_pylist():
            yield Sample.from_row(row)


def final_rejects(stage_dir: Path) -> list[dict[str, Any]]:
    return read_outputs(stage_dir)[1]


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


def run_toolflow(cfg) -> dict[str, Any]:
    """`cfg`: graph, out, n, seed, dialog, llm, judge, executor (the `toolflow_synth` step)."""
    from raypipe.llm import run_stage
    from raypipe.synth import toolflow
    from raypipe.synth.toolgraph import load_graph

    out = Path(cfg.out)
    stage = toolflow.ToolflowStage(cfg, toolflow.specs_by_node(load_graph(cfg.graph)))
    engine = run_stage(stage, out=str(out / "dialogs"), executor=cfg.executor)
    report = _report(out / "dialogs", cfg.n, cfg.llm, out, cfg.judge, cfg.executor, "ToolFlow")
    return {"attempted": cfg.n, "produced": report["produced"], "rejected": report["rejected"],
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


def run_magnet(cfg) -> dict[str, Any]:
    """`cfg`: graph, out, n, seed, path, llm, corruptions, pairs_per_sample, judge, executor."""
    from raypipe.llm import run_stage
    from raypipe.synth import magnet
    from raypipe.synth.toolflow import specs_by_node
    from raypipe.synth.toolgraph import load_graph

    out = Path(cfg.out)
    stage = magnet.MagnetStage(cfg, specs_by_node(load_graph(cfg.graph)))
    engine = run_stage(stage, out=str(out / "trajectories"), executor=cfg.executor)
    pair_counts = write_pairs(out / "trajectories", out / "pairs", cfg.seed, cfg.corruptions,
                              cfg.pairs_per_sample)
    report = _report(out / "trajectories", cfg.n, cfg.llm, out, cfg.judge, cfg.executor, "MAGNET",
                     {"pairs": pair_counts})
    return {"attempted": cfg.n, "produced": report["produced"], "rejected": report["rejected"],
            "pairs": sum(pair_counts.values()), "engine": _scalars(engine), "out": str(out)}


def write_pairs(trajectories: Path, pairs_dir: Path, seed: int, corruptions: list[str],
                per_sample: int) -> dict[str, int]:
    """mDPO pairs of every committed trajectory, one commit per trajectory file (named after
    it), in a new generation of `pairs_dir`. Returns pairs per corruption."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raypipe.io import fs
    from raypipe.io.dataset import begin_write, open_dataset
    from raypipe.synth.trajectories import make_pairs

    counts: dict[str, int] = {}
    with begin_write(str(pairs_dir), "magnet_pairs", [str(trajectories)]) as writer:
        for path in open_dataset(str(trajectories)).require_complete().data:
            filesystem, inner = fs.resolve(path)
            rows = [p for row in pq.read_table(inner, filesystem=filesystem).to_pylist()
                    for p in make_pairs(Sample.from_row(row), seed, corruptions, per_sample)]
            for r in rows:
                counts[r["corruption"]] = counts.get(r["corruption"], 0) + 1
            name = Path(path).stem.split("-", 1)[-1]  # the trajectory commit's name
            writer.commit(name, data=pa.Table.from_pylist(rows, schema=dpo_pair_schema()))
        writer.finalize(rows_in=None, summary={"stage": "magnet_pairs", "pairs": dict(sorted(counts.items()))})
    return dict(sorted(counts.items()))


def _scalars(d: dict) -> dict:
    return {k: v for k, v in d.items() if isinstance(v, (int, float, str, bool))}
