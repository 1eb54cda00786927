"""`raypipe eval bfcl | mtbench | passk` and the job steps `eval_bfcl`, `eval_mtbench`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raypipe.config import input_paths, output_path
from raypipe.infer.bfcl import EvalBfclConfig, check_run_meta
from raypipe.infer.config import GenerationConfig
from raypipe.registry import Command, Step


def _add_generation(p) -> None:
    g = p.add_argument_group("generation")
    g.add_argument("--model", required=False, help="model path or hub name (base or merged)")
    g.add_argument("--adapter", default=None, help="PEFT LoRA adapter directory")
    g.add_argument("--backend", choices=["auto", "vllm", "transformers", "openai"], default="auto",
                   help="auto: vLLM when installed and the cluster has GPUs, else transformers on CPU; "
                   "openai: a hosted model behind --base-url (eval bfcl)")
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
    if args.backend == "openai":
        raise RaypipeError("--backend openai answers BFCL items only (raypipe eval bfcl); give answers with --answers")
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
    p.add_argument("--data", required=True, help="V1 / zh-TW (en/, zhtw/, possible_answer/) or V3/V4 "
                   "(BFCL_v4_*.json with possible_answer/) data directory")
    p.add_argument("--lang", choices=["en", "zhtw"], default="zhtw", help="V1 / zh-TW question language")
    p.add_argument("--bfcl-version", choices=["v1", "v3", "v4"], default=None,
                   help="data version to evaluate (default: V1 if present, else V4, else V3)")
    p.add_argument("--format", default="tools-dt", help="local backends: raypipe template preset (docs/templates.md)")
    p.add_argument("--out", required=True, help="run directory (re-use it to resume)")
    p.add_argument("--categories", nargs="+", default=None,
                   help="default: V1's five categories, or every V3/V4 single-turn category with a file")
    p.add_argument("--limit", type=int, default=None, help="first N items of each category")
    p.add_argument("--decoder", choices=["decision-token", "pythonic", "openai", "json"], default=None,
                   help="default: the one that reads the format's (or hosted mode's) output")
    p.add_argument("--underscore-to-dot", action="store_true", default=None,
                   help="names were sent with '.' as '_' (default: on for --backend openai --mode fc)")
    p.add_argument("--rules", choices=["v1", "upstream"], default=None,
                   help="scoring rules (default: v1 for V1 data, upstream for V3/V4)")
    _add_generation(p)
    h = p.add_argument_group("hosted model (--backend openai)")
    h.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint, e.g. https://api.openai.com/v1")
    h.add_argument("--api-key-env", default="OPENAI_API_KEY", help="name of the env var holding the key")
    h.add_argument("--mode", choices=["fc", "prompt"], default="fc",
                   help="fc: functions as tools=, answers from tool_calls; prompt: BFCL-style system prompt")
    h.add_argument("--system-prompt-file", default=None, help="prompt mode: system prompt text with {functions}")
    h.add_argument("--concurrency", type=int, default=None, help="requests in flight per actor")
    h.add_argument("--requests-per-minute", type=float, default=None, help="job-wide rate limit")
    h.add_argument("--cache-dir", default=None, help="request cache (a re-run costs nothing)")


def _hosted(args):
    from raypipe.infer.hosted import HostedConfig

    llm = {"model": args.model, "api_key_env": args.api_key_env, "temperature": args.temperature,
           "max_tokens": args.max_new_tokens}
    for key, value in (("base_url", args.base_url), ("concurrency", args.concurrency),
                       ("requests_per_minute", args.requests_per_minute), ("cache_dir", args.cache_dir)):
        if value is not None:
            llm[key] = value
    return HostedConfig(llm=llm, mode=args.mode, system_prompt_file=args.system_prompt_file)


def _run_bfcl(args) -> int:
    from raypipe.config import ConfigError
    from raypipe.errors import RaypipeError
    from raypipe.infer.bfcl import run_eval_bfcl

    hosted = args.backend == "openai"
    if hosted and not args.model:
        raise RaypipeError("--model is required (the model name at the endpoint)")
    try:
        cfg = EvalBfclConfig(
            data=args.data, out=args.out, generation=None if hosted else _generation(args),
            hosted=_hosted(args) if hosted else None, format=args.format, lang=args.lang,
            version=args.bfcl_version, categories=args.categories, limit=args.limit, decoder=args.decoder,
            underscore_to_dot=args.underscore_to_dot, rules=args.rules,
        )
    except (ValueError, ConfigError) as exc:
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
    _write_mtbench_manifest(cfg, answers, out)
    return {k: summary[k] for k in ("score", "judgments", "rated")} | {"unrated": len(summary["unrated"])}


def _write_mtbench_manifest(cfg: EvalMtbenchConfig, answers: str, out: Path) -> None:
    """manifest.json: questions and answers hashed, the judge (model, endpoint, prompt), the
    model under test with its sampling, versions and hardware."""
    from raypipe.eval.judge import JUDGE_SYSTEM
    from raypipe.eval.manifest import run_manifest, write_manifest

    gen = cfg.generation
    judge = cfg.judge
    manifest = run_manifest(
        kind="eval_mtbench", datasets=[cfg.questions, answers],
        scorer={"name": "raypipe.eval.judge", "method": "single-answer grading, Rating: [[x]]",
                "judge_model": judge.model, "judge_temperature": judge.temperature,
                "judge_max_tokens": judge.max_tokens},
        template={"format": cfg.format} if gen else None, system_prompt=JUDGE_SYSTEM,
        model=gen.model if gen else None, adapter=gen.adapter if gen else None, endpoint=judge.base_url,
        sampling=({"temperature": gen.temperature, "top_p": gen.top_p, "max_new_tokens": gen.max_new_tokens}
                  if gen else {}),
        seeds=gen.seed if gen else None,
        extra={"judge_api_key_env": judge.api_key_env, "answers_given": cfg.answers is not None})
    write_manifest(str(out), manifest)


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
