"""`raypipe eval agent replay | run` and the job step `eval_agent` (tau2-bench-style episodes)."""

from __future__ import annotations

import json

from raypipe.agent.runner import EvalAgentConfig
from raypipe.registry import Command, Step

# -- eval agent replay ---------------------------------------------------------------------------


def _add_replay(p) -> None:
    p.add_argument("--domain", required=True,
                   help="domain directory (db.json, tasks.json, policy.md, tools.json; e.g. tau2-bench retail)")
    p.add_argument("--out", required=True, help="JSONL to write: one line per task")
    p.add_argument("--split", default=None, help="only the tasks of this split of split_tasks.json")
    p.add_argument("--task-ids", nargs="+", default=None, help="only these task ids")


def _run_replay(args) -> int:
    from raypipe.agent.replay import write_replay
    from raypipe.agent.tasks import load_domain, load_tasks

    domain = load_domain(args.domain)
    tasks = load_tasks(args.domain, split=args.split, task_ids=args.task_ids)
    print(json.dumps(write_replay(domain, tasks, args.out)))
    return 0


# -- eval agent run ------------------------------------------------------------------------------


def _add_run(p) -> None:
    p.add_argument("--domain", required=True, help="domain directory (see `eval agent replay`)")
    p.add_argument("--out", required=True, help="run directory (re-use it to resume)")
    a = p.add_argument_group("agent under test: an OpenAI-compatible endpoint (function calling)")
    a.add_argument("--model", default=None, help="model name at the endpoint")
    a.add_argument("--base-url", default=None, help="endpoint URL (default: OpenAI's)")
    a.add_argument("--api-key-env", default="OPENAI_API_KEY", help="env var holding the endpoint's key")
    a.add_argument("--temperature", type=float, default=0.0)
    a.add_argument("--concurrency", type=int, default=16, help="episodes in flight per actor")
    a.add_argument("--num-actors", type=int, default=2, help="Ray actors running episodes")
    a.add_argument("--cache-dir", default=None, help="LLM response cache (agent, user, judge)")
    m = p.add_argument_group("... or a local raypipe model (transformers on CPU, vLLM on GPU)")
    m.add_argument("--local-model", default=None, help="model path or hub name (base or merged)")
    m.add_argument("--adapter", default=None, help="PEFT LoRA adapter directory")
    m.add_argument("--format", default="tools-dt", help="raypipe template preset the model was trained with")
    m.add_argument("--backend", choices=["auto", "vllm", "transformers"], default="auto")
    m.add_argument("--max-new-tokens", type=int, default=512)
    m.add_argument("--batch-size", type=int, default=16, help="prompts per generation pass")
    m.add_argument("--replicas", type=int, default=1, help="model copies (Ray tasks), episodes split among them")
    u = p.add_argument_group("user simulator and judge")
    u.add_argument("--user-model", required=True, help="user simulator model name")
    u.add_argument("--user-base-url", default=None)
    u.add_argument("--user-api-key-env", default="OPENAI_API_KEY")
    u.add_argument("--judge-model", default=None, help="NL-assertion judge (default: the user simulator's)")
    u.add_argument("--judge-base-url", default=None)
    u.add_argument("--judge-api-key-env", default=None)
    t = p.add_argument_group("tasks and trials")
    t.add_argument("--trials", type=int, default=1, help="seeded trials per task (pass^k for k = 1..trials)")
    t.add_argument("--seed", type=int, default=0, help="trial t uses seed + t")
    t.add_argument("--split", default=None, help="a split of split_tasks.json (train, test, base)")
    t.add_argument("--task-ids", nargs="+", default=None)
    t.add_argument("--limit", type=int, default=None, help="first N selected tasks")
    t.add_argument("--max-steps", type=int, default=100)
    t.add_argument("--max-errors", type=int, default=10, help="tool errors that end an episode")
    p.add_argument("--executor", choices=["auto", "ray", "local"], default="auto",
                   help="endpoint agents: Ray actors (auto when Ray is up) or in this process")
    p.add_argument("--address", default=None, help="Ray cluster to join (default: local Ray)")


def _llm(model, base_url, key_env, **extra) -> dict:
    out = {"model": model, "api_key_env": key_env, **{k: v for k, v in extra.items() if v is not None}}
    if base_url:
        out["base_url"] = base_url
    return out


def config_from_args(args):
    from raypipe.config import ConfigError
    from raypipe.errors import RaypipeError
    from raypipe.infer.config import GenerationConfig

    if (args.model is None) == (args.local_model is None):
        raise RaypipeError("give the agent under test: --model (an endpoint) or --local-model (a raypipe model)")
    user = _llm(args.user_model, args.user_base_url, args.user_api_key_env, cache_dir=args.cache_dir,
                temperature=0.0)
    judge = None
    if args.judge_model or args.judge_base_url or args.judge_api_key_env:
        judge = _llm(args.judge_model or args.user_model, args.judge_base_url or args.user_base_url,
                     args.judge_api_key_env or args.user_api_key_env, cache_dir=args.cache_dir, temperature=0.0)
    try:
        agent = generation = None
        if args.model:
            agent = _llm(args.model, args.base_url, args.api_key_env, temperature=args.temperature,
                         concurrency=args.concurrency, num_actors=args.num_actors, cache_dir=args.cache_dir)
        else:
            generation = GenerationConfig(model=args.local_model, adapter=args.adapter, backend=args.backend,
                                          max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                                          replicas=args.replicas, temperature=args.temperature, seed=args.seed)
        return EvalAgentConfig(
            domain=args.domain, out=args.out, user=user, agent=agent, generation=generation, format=args.format,
            judge=judge, trials=args.trials, seed=args.seed, split=args.split, task_ids=args.task_ids,
            limit=args.limit, max_steps=args.max_steps, max_errors=args.max_errors, executor=args.executor)
    except (ValueError, ConfigError) as exc:
        raise RaypipeError(str(exc)) from None


def _run_run(args) -> int:
    from raypipe.agent.runner import run_eval_agent

    cfg = config_from_args(args)
    if cfg.agent is not None and cfg.executor != "local" or cfg.generation is not None and cfg.generation.replicas > 1:
        from raypipe.jobs import RayConfig, init_ray

        init_ray(RayConfig(), args.address)
    summary = run_eval_agent(cfg)
    print(json.dumps({k: summary[k] for k in ("tasks", "trials", "episodes", "avg_reward", "pass_hat_k")}))
    return 0


def _step(cfg, job) -> dict:
    from raypipe.agent.runner import run_eval_agent

    summary = run_eval_agent(cfg)
    return {k: summary[k] for k in ("tasks", "trials", "episodes", "avg_reward", "pass_hat_k")} | {"out": cfg.out}


COMMANDS = [
    Command(path=("eval", "agent", "replay"),
            help="replay every task's gold actions on a fresh database: answers and final DB hash per task",
            add_arguments=_add_replay, run=_run_replay),
    Command(path=("eval", "agent", "run"),
            help="tau2-bench-style episodes (agent, simulated user, tools): rewards, pass^k, trajectories",
            add_arguments=_add_run, run=_run_run),
]

STEPS = [Step(kind="eval_agent", config=EvalAgentConfig, run=_step,
              help="tau2-bench-style agent episodes: trials, rewards, pass^k (resumable per task and trial)")]
