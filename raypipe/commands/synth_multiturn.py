"""`raypipe synth toolflow|magnet`, `raypipe graph magnet`, and their job steps
(`toolflow_synth`, `magnet_graph`, `magnet_synth`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from raypipe.config import input_paths, number, output_path
from raypipe.registry import Command, Step
from raypipe.synth.magnet import PathConfig
from raypipe.synth.toolflow import DialogConfig
from raypipe.synth.trajectories import CORRUPTIONS


def _llm_config(data: Any):
    from raypipe.config import load_config
    from raypipe.llm import LLMConfig

    return data if isinstance(data, LLMConfig) else load_config(LLMConfig, data, where="llm")


@dataclass
class ToolflowStepConfig:
    graph: str = input_paths()  # tool graph directory (`toolpool_graph` / `raypipe graph build`)
    out: str = output_path()
    n: int = number(ge=1)  # dialogs to attempt
    seed: int = 0
    dialog: DialogConfig = field(default_factory=DialogConfig)
    llm: Any = field(default_factory=dict)  # raypipe.llm.LLMConfig keys
    judge: int = 0  # dialogs scored by the LLM judge for naturalness/coherence (0: none)
    executor: Literal["auto", "ray", "local"] = "auto"  # local: in-process, no Ray (debugging)

    def __post_init__(self) -> None:
        self.llm = _llm_config(self.llm)


@dataclass
class MagnetGraphStepConfig:
    tool_graph: str = input_paths()  # tool graph directory: its return->parameter edges serve the insert op
    out: str = output_path()  # writes labels/, judged/ and graph/ here
    candidates: int = 3  # same-label candidate neighbours drawn per function
    seed: int = 0
    domains: list[str] | None = None  # restrict labels to these (None: free labels)
    llm: Any = field(default_factory=dict)
    executor: Literal["auto", "ray", "local"] = "auto"

    def __post_init__(self) -> None:
        self.llm = _llm_config(self.llm)


@dataclass
class MagnetStepConfig:
    graph: str = input_paths()  # MAGNET function graph directory (the `graph/` that magnet_graph writes)
    out: str = output_path()
    n: int = number(ge=1)  # paths (dialogs) to attempt
    seed: int = 0
    path: PathConfig = field(default_factory=PathConfig)
    corruptions: list[str] = field(default_factory=lambda: list(CORRUPTIONS))
    pairs_per_sample: int = 2
    llm: Any = field(default_factory=dict)
    judge: int = 0
    executor: Literal["auto", "ray", "local"] = "auto"

    def __post_init__(self) -> None:
        unknown = [c for c in self.corruptions if c not in CORRUPTIONS]
        if unknown:
            raise ValueError(f"unknown corruptions {unknown}; known: {list(CORRUPTIONS)}")
        self.llm = _llm_config(self.llm)


def _run_toolflow_step(cfg: ToolflowStepConfig, job=None) -> dict:
    from raypipe.synth.multiturn_runs import run_toolflow

    return run_toolflow(cfg)


def _run_magnet_graph_step(cfg: MagnetGraphStepConfig, job=None) -> dict:
    from raypipe.synth.multiturn_runs import run_magnet_graph

    return run_magnet_graph(cfg.tool_graph, cfg.out, cfg.candidates, cfg.seed, cfg.domains, cfg.llm,
                            cfg.executor)


def _run_magnet_step(cfg: MagnetStepConfig, job=None) -> dict:
    from raypipe.synth.multiturn_runs import run_magnet

    return run_magnet(cfg)


# -- CLI -----------------------------------------------------------------------------------

def _add_llm(p) -> None:
    from raypipe.commands._args import add_llm_arguments

    add_llm_arguments(p, required=("base_url", "model"))
    p.add_argument("--executor", choices=["auto", "ray", "local"], default="auto",
                   help="ray: Ray Data actors; local: in this process; auto: ray if Ray is up")


def _llm_from_args(args) -> dict:
    from raypipe.commands._args import llm_data

    return llm_data(args)


def _add_toolflow(p) -> None:
    p.add_argument("--graph", required=True, help="tool graph directory (raypipe graph build)")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, required=True, help="dialogs to attempt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-turns", type=int, default=2)
    p.add_argument("--max-turns", type=int, default=4)
    p.add_argument("--min-tools", type=int, default=2)
    p.add_argument("--max-tools", type=int, default=4)
    p.add_argument("--relatedness", type=float, default=0.9,
                   help="share of sampled tools that follow a graph edge (0 = random tools)")
    p.add_argument("--no-plan", action="store_true",
                   help="skip the planner (ToolFlow's no-plan ablation): free user turns")
    p.add_argument("--judge", type=int, default=0, help="dialogs to score with the LLM judge")
    _add_llm(p)


def _run_toolflow(args) -> int:
    from raypipe.config import load_config

    cfg = load_config(ToolflowStepConfig, {
        "executor": args.executor,
        "graph": args.graph, "out": args.out, "n": args.n, "seed": args.seed, "judge": args.judge,
        "dialog": {"min_turns": args.min_turns, "max_turns": args.max_turns, "plan": not args.no_plan,
                   "sampling": {
            "min_tools": args.min_tools, "max_tools": args.max_tools, "relatedness": args.relatedness}},
        "llm": _llm_from_args(args),
    }, where="raypipe synth toolflow")
    print(json.dumps(_run_toolflow_step(cfg), indent=2))
    return 0


def _add_magnet_graph(p) -> None:
    p.add_argument("--tool-graph", required=True, help="tool graph directory (raypipe graph build)")
    p.add_argument("--out", required=True)
    p.add_argument("--candidates", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--domains", nargs="*", default=None, help="allowed domain labels")
    _add_llm(p)


def _run_magnet_graph(args) -> int:
    from raypipe.config import load_config

    cfg = load_config(MagnetGraphStepConfig, {
        "executor": args.executor,
        "tool_graph": args.tool_graph, "out": args.out, "candidates": args.candidates,
        "seed": args.seed, "domains": args.domains, "llm": _llm_from_args(args),
    }, where="raypipe graph magnet")
    print(json.dumps(_run_magnet_graph_step(cfg), indent=2))
    return 0


def _add_magnet(p) -> None:
    p.add_argument("--graph", required=True, help="MAGNET function graph (raypipe graph magnet)/graph")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, required=True, help="paths (dialogs) to attempt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pairs-per-sample", type=int, default=2)
    p.add_argument("--judge", type=int, default=0)
    _add_llm(p)


def _run_magnet(args) -> int:
    from raypipe.config import load_config

    cfg = load_config(MagnetStepConfig, {
        "executor": args.executor,
        "graph": args.graph, "out": args.out, "n": args.n, "seed": args.seed, "judge": args.judge,
        "pairs_per_sample": args.pairs_per_sample, "llm": _llm_from_args(args),
    }, where="raypipe synth magnet")
    print(json.dumps(_run_magnet_step(cfg), indent=2))
    return 0


COMMANDS = [
    Command(path=("synth", "toolflow"), help="ToolFlow: graph-sampled tools, planned multi-agent dialogs",
            add_arguments=_add_toolflow, run=_run_toolflow),
    Command(path=("graph", "magnet"), help="MAGNET function graph: LLM domain labels + judged edges",
            add_arguments=_add_magnet_graph, run=_run_magnet_graph),
    Command(path=("synth", "magnet"), help="MAGNET: FSP paths, back/forth translation, mDPO pairs",
            add_arguments=_add_magnet, run=_run_magnet),
]

STEPS = [
    Step(kind="toolflow_synth", config=ToolflowStepConfig, run=_run_toolflow_step,
         help="ToolFlow dialogs + quality report"),
    Step(kind="magnet_graph", config=MagnetGraphStepConfig, run=_run_magnet_graph_step,
         help="MAGNET function graph (labels, candidates, judge)"),
    Step(kind="magnet_synth", config=MagnetStepConfig, run=_run_magnet_step,
         help="MAGNET trajectories, mDPO pairs + quality report"),
]
