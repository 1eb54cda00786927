"""`raypipe eval bfcl | mtbench | passk` and the job steps `eval_bfcl`, `eval_mtbench`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raypipe.config import input_paths, output_path
from raypipe.infer.bfcl import DEFAULT_CATEGORIES, EvalBfclConfig, check_run_meta
from raypipe.infer.config import GenerationConfig
from raypipe.registry import Command, Step


def _add_generation(p) -> None:
    g = p.add_argument_group("generation")
    g.add_argument("--model", required=False, help="model path or hub name (base or merged)")
    g.add_argument("--adapter", default=None, help="PEFT LoRA adapter directory")
    g.add_argument("--backend", choices=["auto", "vllm", "transformers"], default="auto",
                   help="auto: vLLM when installed and the cluster has GPUs, else transformers on CPU")
    g.add_argument("--batch-size", type=int, default=16)
    g.add_argument("--max-new-tokens", type=int, default=512)
    g.add_argument("--replicas", type=int, default=1, help="engine/generation actors")
    g.add_argument("--tensor-parallel-size", type=int, default=1, help="GPUs per vLLM replica")
    g.add_argument("--max-model-len", type=int, default=None, help="vLLM context length")
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy; > 0 samples (pass^k trials)")
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=None, help="sampling seed (one per trial)")
    g.add_argument("--address", default=None, help="Ray cluster to join (default: local Ray)")


def _generation(args) -> GenerationConfig:
    from raypipe.errors import RaypipeError

    if not args.model:
        raise RaypipeError("--model is required")
    try:
        return GenerationConfig(
            model=args.model, adapter=args.adapter, backend=args.backend, batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens, replicas=args.replicas,
            tensor_parallel_size=args.tensor_parallel_size, max_model_len=args.max_model_len,
            temperature=args.temperature, top_p=args.top_p, seed=args.seed,
        )
    except ValueError as exc:
        raise RaypipeError(str(exc)) from None


def _init_ray(address: str | None) -> None:
    from raypipe.jobs import RayConfig, init_ray

    init_ray(RayConfig(), address)


# -- eval bfcl ---------------------------------------------------------------------------------


def _add_bfcl(p) -> None:
    p.add_argument("--data", required=True, help="directory holding en/, zhtw/ and possible_answer/")
    p.add_argument("--lang", choices=["en", "zhtw"], default="zhtw")
    p.add_argument("--format", default="tools-dt", help="raypipe template preset (see docs/templates.md)")
    p.add_argument("--out", required=True, help="run directory (re-use it to resume)")
    p.add_argument("--categories", nargs="+", default=None, help=f"default: {' '.join(DEFAULT_CATEGORIES)}")
    p.add_argument("--limit", type=int, default=None, help="first N items of each category")
    p.add_argument("--decoder", choices=["decision-token", "pythonic", "openai", "json"], default=None,
                   help="default: the one that reads the format's output")
    p.add_argument("--underscore-to-dot", action="store_true")
    _add_generation(p)


def _run_bfcl(args) -> int:
    from raypipe.errors import RaypipeError
    from raypipe.infer.bfcl import run_eval_bfcl

    try:
        cfg = EvalBfclConfig(
            data=args.data, out=args.out, generation=_generation(args), format=args.format,
            lang=args.lang, categories=args.categories, limit=args.limit, decoder=args.decoder,
            underscore_to_dot=args.underscore_to_dot,
        )
    except ValueError as exc:
        raise RaypipeError(str(exc)) from None
    _init_ray(args.address)
    summary = run_eval_bfcl(cfg)
    print((Path(args.out) / "report.md").read_text(encoding="utf-8"))
    print(json.dumps(summary))
    return 0


def _step_bfcl(cfg: EvalBfclConfig, job) -> dict:
    from raypipe.infer.bfcl import run_eval_bfcl

    return run_eval_bfcl(cfg)


# -- eval mtbench ------------------------------------------------------------------------------


@dataclass
class EvalMtbenchConfig:
    questions: str = input_paths()  # MT-Bench-layout JSONL (question_id, category, turns[, reference])
    out: str = output_path()
    judge: dict[str, Any] = field(default_factory=dict)  # raypipe.llm.LLMConfig keys
    answers: str | None = input_paths(default=None)  # existing answers JSONL; else generated with `generation`
    generation: GenerationConfig | None = None
    format: str = "tools-dt"  # template used to prompt the model under test

    def __post_init__(self) -> None:
        if (self.answers is None) == (self.generation is None):
            raise ValueError("give exactly one of answers (a file) or generation (a model to answer)")
        from raypipe.config import load_config
        from raypipe.llm import LLMConfig

        self.judge = load_config(LLMConfig, self.judge, where="judge")  # all key errors at once


def run_eval_mtbench(cfg: EvalMtbenchConfig) -> dict:
    from raypipe.eval.judge import load_questions, run_judge

    out = Path(cfg.out)
    answers = cfg.answers
    model = ""
    if answers is None:
        from raypipe.infer.mtbench import answers_complete, generate_answers

        gen = cfg.generation
        check_run_meta(out, {"model": gen.model, "adapter": gen.adapter, "format": cfg.format,
                             "max_new_tokens": gen.max_new_tokens, "temperature": gen.temperature,
                             "seed": gen.seed})
        questions = load_questions(cfg.questions)
        answers = str(out / "answers.jsonl")
        if not answers_complete(questions, answers):  # a re-run (e.g. after a judge outage) reuses them
            generate_answers(questions, gen, cfg.format, answers)
        model = gen.model
    summary = run_judge(cfg.questions, answers, cfg.judge, out, model_name=model)
    return {k: summary[k] for k in ("score", "judgments", "rated")} | {"unrated": len(summary["unrated"])}


def _add_mtbench(p) -> None:
    p.add_argument("--questions", required=True, help="MT-Bench-layout JSONL (question_id, category, turns)")
    p.add_argument("--answers", default=None, help="answers JSONL to judge (else --model answers first)")
    p.add_argument("--out", required=True)
    p.add_argument("--format", default="tools-dt", help="template used to prompt --model")
    p.add_argument("--judge-model", required=True, help="judge model name at the endpoint (e.g. gpt-4o)")
    p.add_argument("--judge-base-url", default=None, help="OpenAI-compatible endpoint (default: OpenAI's)")
    p.add_argument("--judge-api-key-env", default="OPENAI_API_KEY", help="env var holding the judge's key")
    p.add_argument("--judge-concurrency", type=int, default=None, help="requests in flight per actor")
    p.add_argument("--cache-dir", default=None, help="judge response cache (re-runs cost nothing)")
    _add_generation(p)


def _run_mtbench(args) -> int:
    from raypipe.errors import RaypipeError

    judge = {"model": args.judge_model, "api_key_env": args.judge_api_key_env, "temperature": 0.0}
    for key, value in (("base_url", args.judge_base_url), ("concurrency", args.judge_concurrency),
                       ("cache_dir", args.cache_dir)):
        if value is not None:
            judge[key] = value
    try:
        cfg = EvalMtbenchConfig(
            questions=args.questions, out=args.out, judge=judge, answers=args.answers,
            generation=_generation(args) if args.model else None, format=args.format,
        )
    except ValueError as exc:
        raise RaypipeError(str(exc)) from None
    _init_ray(args.address)
    print(json.dumps(run_eval_mtbench(cfg)))
    return 0


def _step_mtbench(cfg: EvalMtbenchConfig, job) -> dict:
    return run_eval_mtbench(cfg)


# -- eval passk --------------------------------------------------------------------------------


def _add_passk(p) -> None:
    p.add_argument("trials", nargs="*", help='JSONL files, one trial per line: {"task_id": ..., "success": bool}')
    p.add_argument("--bfcl-runs", nargs="+", default=[], metavar="RUN_DIR",
                   help="`eval bfcl` run directories, one trial each (e.g. sampled with different seeds)")
    p.add_argument("--k", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--out", default=None, help="write the summary JSON here too")


def _run_passk(args) -> int:
    from raypipe.errors import RaypipeError
    from raypipe.eval.passk import count_trials, read_trials, summarize, trials_from_bfcl_runs

    if not args.trials and not args.bfcl_runs:
        raise RaypipeError("give trial JSONL files or --bfcl-runs RUN_DIR...")
    trials = [t for path in args.trials for t in read_trials(path)] + trials_from_bfcl_runs(args.bfcl_runs)
    summary = summarize(count_trials(trials), sorted(set(args.k)))
    print(f"{summary['tasks']} tasks, {summary['trials']} trials")
    print("| k | pass^k | pass@k |\n|---:|---:|---:|")
    for k, v in summary["k"].items():
        print(f"| {k} | {v['pass^k']:.4f} | {v['pass@k']:.4f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


COMMANDS = [
    Command(path=("eval", "bfcl"), help="generate on BFCL (Ray Data: vLLM or transformers), write result files, score",
            add_arguments=_add_bfcl, run=_run_bfcl),
    Command(path=("eval", "mtbench"), help="MT-Bench-style single-answer grading with an LLM judge",
            add_arguments=_add_mtbench, run=_run_mtbench),
    Command(path=("eval", "passk"), help="pass^k and pass@k from repeated trials",
            add_arguments=_add_passk, run=_run_passk),
]

STEPS = [
    Step(kind="eval_bfcl", config=EvalBfclConfig, run=_step_bfcl,
         help="BFCL generation + scoring (resumable by id)"),
    Step(kind="eval_mtbench", config=EvalMtbenchConfig, run=_step_mtbench,
         help="MT-Bench-style judging (answers generated or given)"),
]
