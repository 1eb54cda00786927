"""`run_eval_agent`: n seeded trials of every task, episodes in parallel, resumable, summarised.

Two ways to reach the agent under test, one episode loop (`episode.run_episode`):

- an OpenAI-compatible endpoint (`agent:` an LLMConfig): every (task, trial) is one row of
  raypipe's LLM engine (`run_llm_program`): Ray actors, each running many episodes as
  concurrent coroutines against the endpoint (an async loop: the endpoint batches across
  requests itself). The engine's client is the agent's; the user simulator's and the judge's
  clients are built inside the program from their own LLMConfigs. `_run_on_engine` is the only
  function that knows the engine.
- a local model (`generation:` a GenerationConfig, with a raypipe template `format`):
  transformers on CPU or vLLM on GPU; the process (or each of `generation.replicas` Ray tasks)
  holds the model and runs its episodes as coroutines whose prompts go out in one generation
  pass per step over the open episodes (`agents.BatchingGenerator`).

Trial t of every task uses seed `seed + t` for the agent and the user simulator.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from raypipe.config import input_paths, output_path
from raypipe.errors import RaypipeError
from raypipe.infer.config import GenerationConfig


@dataclass
class EvalAgentConfig:
    domain: str = input_paths()  # domain directory: db.json, tasks.json, split_tasks.json, policy.md, tools.json
    out: str = output_path()  # run directory (re-use it to resume)
    user: dict[str, Any] = field(default_factory=dict)  # LLMConfig keys of the user simulator
    agent: dict[str, Any] | None = None  # LLMConfig keys: the agent is an endpoint (FC mode) ...
    generation: GenerationConfig | None = None  # ... or a local model rendered with `format`
    format: str = "tools-dt"  # raypipe template of a local model
    judge: dict[str, Any] | None = None  # LLMConfig keys of the NL-assertion judge (default: user's)
    trials: int = 1
    seed: int = 0  # trial t uses seed + t
    split: str | None = None  # a split of split_tasks.json (train, test, base)
    task_ids: list[str] | None = None
    limit: int | None = None  # first N tasks (after split / task_ids)
    max_steps: int = 100
    max_errors: int = 10
    concurrency: int = 8  # episodes in flight per process for a local model
    executor: Literal["auto", "ray", "local"] = "auto"  # endpoint agents: Ray actors or in-process

    def __post_init__(self) -> None:
        from raypipe.config import load_config
        from raypipe.llm import LLMConfig

        if (self.agent is None) == (self.generation is None):
            raise ValueError("give exactly one of agent (an endpoint) or generation (a local model)")
        if self.trials < 1 or self.max_steps < 1 or self.max_errors < 1 or self.concurrency < 1:
            raise ValueError("trials, max_steps, max_errors and concurrency must be >= 1")
        def llm(value, where):  # dicts from YAML/CLI; LLMConfigs pass through
            return value if isinstance(value, LLMConfig) else load_config(LLMConfig, value, where=where)

        self.user = llm(self.user, "user")
        if self.agent is not None:
            self.agent = llm(self.agent, "agent")
        self.judge = llm(self.judge, "judge") if self.judge is not None else self.user

    def identity(self) -> dict:
        """What makes episodes of two runs the same: resuming into `out` needs it unchanged."""
        agent = ({"endpoint": self.agent.base_url, "model": self.agent.model, "temperature": self.agent.temperature}
                 if self.agent is not None else
                 {"model": self.generation.model, "adapter": self.generation.adapter, "format": self.format,
                  "temperature": self.generation.temperature, "max_new_tokens": self.generation.max_new_tokens})
        return {"domain": str(Path(self.domain).resolve()), "agent": agent, "seed": self.seed,
                "user": {"model": self.user.model, "endpoint": self.user.base_url, "temperature": self.user.temperature},
                "judge": {"model": self.judge.model, "endpoint": self.judge.base_url},
                "max_steps": self.max_steps, "max_errors": self.max_errors}


def run_eval_agent(cfg: EvalAgentConfig, log=print) -> dict:
    from raypipe.agent.records import SUMMARY_NAME, episode_id, markdown_summary, read_episode, summarize_run
    from raypipe.agent.replay import gold_hashes
    from raypipe.agent.tasks import load_domain, load_tasks
    from raypipe.eval.manifest import run_manifest, write_manifest

    out = Path(cfg.out)
    _check_identity(out, cfg.identity())
    domain = load_domain(cfg.domain)
    tasks = load_tasks(cfg.domain, split=cfg.split, task_ids=cfg.task_ids)[: cfg.limit]
    if not tasks:
        raise RaypipeError(f"{cfg.domain}: no tasks selected")
    gold = gold_hashes(domain, tasks)
    todo = [{"id": episode_id(t.id, i), "task_id": t.id, "trial": i, "seed": cfg.seed + i, "gold": gold[t.id]}
            for t in tasks for i in range(cfg.trials) if read_episode(out, t.id, i) is None]
    total = len(tasks) * cfg.trials
    log(f"[eval agent] {len(tasks)} tasks x {cfg.trials} trials: {total - len(todo)} episodes done before, "
        f"{len(todo)} to run")
    started = time.monotonic()
    if todo:
        if cfg.agent is not None:
            _run_on_engine(cfg, todo, log)
        else:
            _run_local_model(cfg, todo, log)
    records = [r for t in tasks for i in range(cfg.trials) if (r := read_episode(out, t.id, i)) is not None]
    summary = summarize_run(records, [t.id for t in tasks], cfg.trials)
    summary["elapsed_s"] = round(time.monotonic() - started, 3)
    summary["domain"] = domain.name
    summary["agent"] = cfg.identity()["agent"]
    with (out / "trajectories.jsonl").open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    (out / SUMMARY_NAME).write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    model = cfg.agent.model if cfg.agent is not None else cfg.generation.model
    sampling = ({"temperature": cfg.agent.temperature, "max_tokens": cfg.agent.max_tokens} if cfg.agent is not None
                else {"temperature": cfg.generation.temperature, "top_p": cfg.generation.top_p,
                      "max_new_tokens": cfg.generation.max_new_tokens})
    from raypipe.agent.agents import system_prompt

    write_manifest(str(out), run_manifest(
        kind="eval_agent", datasets=[str(Path(cfg.domain) / n) for n in ("db.json", "tasks.json", "policy.md", "tools.json")],
        scorer="raypipe.agent (tau2-bench retail rules)", template=None if cfg.agent is not None else cfg.format,
        system_prompt=system_prompt(domain.policy), model=model,
        adapter=cfg.generation.adapter if cfg.generation is not None else None,
        endpoint=cfg.agent.base_url if cfg.agent is not None else None, sampling=sampling,
        seeds=[cfg.seed + i for i in range(cfg.trials)],
        extra={"user_simulator": {"model": cfg.user.model, "endpoint": cfg.user.base_url},
               "judge": {"model": cfg.judge.model, "endpoint": cfg.judge.base_url}}))
    log(markdown_summary(summary))
    return summary


def _check_identity(out: Path, identity: dict) -> None:
    path = out / "run_config.json"
    if path.exists():
        before = json.loads(path.read_text(encoding="utf-8"))
        if before != identity:
            changed = sorted(k for k in set(before) | set(identity) if before.get(k) != identity.get(k))
            raise RaypipeError(f"{out}: holds episodes of another configuration (changed: {', '.join(changed)}); "
                               "use a new --out or delete it")
        return
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(identity, indent=1) + "\n", encoding="utf-8")


# -- one episode, whatever drives it ------------------------------------------------------------


async def play(domain, task, row: dict, agent, user, judge, cfg: EvalAgentConfig, agent_name: str) -> dict:
    from raypipe.agent.episode import run_episode
    from raypipe.agent.reward import score_episode

    started = time.monotonic()
    env = domain.new_env()
    episode = await run_episode(env, agent, user, max_steps=cfg.max_steps, max_errors=cfg.max_errors)
    final = env.db_sha256()
    score = await score_episode(task, episode, final, row["gold"], judge)
    return {
        "id": row["id"], "task_id": task.id, "trial": row["trial"], "seed": row["seed"], "agent": agent_name,
        "reward": score["reward"], "reward_reason": score["reason"], "reward_parts": score["parts"],
        "termination": episode.termination, "termination_reason": episode.reason,
        "steps": episode.steps, "tool_errors": episode.tool_errors,
        "final_db_sha256": final, "gold_db_sha256": row["gold"],
        "messages": episode.messages, "elapsed_s": round(time.monotonic() - started, 3),
    }


_DOMAINS: dict[str, tuple] = {}  # per process: domain dir -> (Domain, {task id: Task})
_CLIENTS: dict[tuple, Any] = {}  # per process and event loop: LLMConfig -> LLMClient


def _domain(directory: str):
    if directory not in _DOMAINS:
        from raypipe.agent.tasks import load_domain, load_tasks

        _DOMAINS[directory] = (load_domain(directory), {t.id: t for t in load_tasks(directory)})
    return _DOMAINS[directory]


def _client(config) -> Any:
    from raypipe.llm import LLMClient

    key = (json.dumps(asdict(config), sort_keys=True, default=str), id(asyncio.get_running_loop()))
    if key not in _CLIENTS:
        _CLIENTS[key] = LLMClient(config)
    return _CLIENTS[key]


@dataclass
class EpisodeProgram:
    """The engine's per-row program: one (task, trial) episode against the endpoint agent."""

    cfg: EvalAgentConfig

    async def __call__(self, row: dict, client: Any) -> dict:
        from raypipe.agent.agents import OpenAIAgent, system_prompt
        from raypipe.agent.records import write_episode
        from raypipe.agent.user_sim import LLMJudge, LLMUser

        domain, tasks = _domain(self.cfg.domain)
        task = tasks[row["task_id"]]
        agent = OpenAIAgent(client, system_prompt(domain.policy), seed=row["seed"])
        user = LLMUser(_client(self.cfg.user), task, seed=row["seed"])
        judge = LLMJudge(_client(self.cfg.judge))
        record = await play(domain, task, row, agent, user, judge, self.cfg, self.cfg.agent.model)
        write_episode(self.cfg.out, record)
        return {"id": row["id"], "task_id": row["task_id"], "trial": row["trial"], "reward": record["reward"]}


def _run_on_engine(cfg: EvalAgentConfig, todo: list[dict], log) -> None:
    """The engine wiring (the one function to port when the engine changes). Episode files are
    the resume state: every episode without one is in `todo`, so the engine re-tries rows it
    rejected or left pending before: the engine's own record of the last attempt (its output
    rows are only small receipts of the episode files) is cleared first, so that the two never
    disagree. Rows left pending by transient failures are reported and the summary is still
    written for the finished episodes."""
    import shutil

    from raypipe.llm import run_llm_program
    from raypipe.llm.executor import PendingRowsError

    engine_dir = Path(cfg.out) / "engine"
    shutil.rmtree(engine_dir, ignore_errors=True)
    try:
        summary = run_llm_program(todo, llm=cfg.agent, program=EpisodeProgram(cfg), out_dir=str(engine_dir),
                                  stage="agent_episodes", executor=cfg.executor, log=log)
    except PendingRowsError as exc:
        log(f"[eval agent] {exc}")
        return
    if summary.get("rejected"):
        log(f"[eval agent] {summary['rejected']} episode(s) rejected (see {cfg.out}/engine rejects); "
            "re-run to try them again")


# -- local model ---------------------------------------------------------------------------------


def _run_local_model(cfg: EvalAgentConfig, todo: list[dict], log) -> None:
    import importlib.util

    from raypipe.infer.run import choose_backend

    gen = cfg.generation
    use_ray = importlib.util.find_spec("ray") is not None and _ray_initialized()
    gpus = 0.0
    if use_ray:
        import ray

        gpus = ray.cluster_resources().get("GPU", 0.0)
    backend = choose_backend(gen.backend, vllm_installed=importlib.util.find_spec("vllm") is not None,
                             cluster_gpus=gpus)
    shards = [todo[i:: gen.replicas] for i in range(min(gen.replicas, len(todo)))]
    if not use_ray or len(shards) == 1 and backend == "transformers":
        done = sum(_local_shard(cfg, backend, s) for s in shards)
    else:
        import ray

        resources = ({"num_gpus": gen.tensor_parallel_size, "num_cpus": 1} if backend == "vllm"
                     else {"num_cpus": gen.cpus_per_replica})
        task = ray.remote(_local_shard).options(**resources)
        done = sum(ray.get([task.remote(cfg, backend, s) for s in shards]))
    log(f"[eval agent] {done} episodes played by {backend} ({len(shards)} replica(s))")


def _ray_initialized() -> bool:
    import ray

    return ray.is_initialized()


def _local_shard(cfg: EvalAgentConfig, backend: str, rows: list[dict]) -> int:
    from raypipe.agent.agents import BatchingGenerator, transformers_generate_batch, vllm_generate_batch

    make = vllm_generate_batch if backend == "vllm" else transformers_generate_batch
    generator = BatchingGenerator(make(cfg.generation), max_batch=cfg.generation.batch_size)
    return asyncio.run(_play_shard(cfg, rows, generator))


async def _play_shard(cfg: EvalAgentConfig, rows: list[dict], generator) -> int:
    from raypipe.agent.agents import TemplateAgent, system_prompt
    from raypipe.agent.records import write_episode
    from raypipe.agent.user_sim import LLMJudge, LLMUser
    from raypipe.llm import RowError

    domain, tasks = _domain(cfg.domain)
    agent = TemplateAgent(generator, cfg.format, system_prompt(domain.policy))
    limit = asyncio.Semaphore(cfg.concurrency)
    name = cfg.generation.model + (f" + {cfg.generation.adapter}" if cfg.generation.adapter else "")

    async def one(row: dict) -> None:
        async with limit:
            generator.open_episodes += 1
            try:
                task = tasks[row["task_id"]]
                user = LLMUser(_client(cfg.user), task, seed=row["seed"])
                record = await play(domain, task, row, agent, user, LLMJudge(_client(cfg.judge)), cfg, name)
            finally:
                generator.open_episodes -= 1
            write_episode(cfg.out, record)

    try:
        results = await asyncio.gather(*(one(r) for r in rows), return_exceptions=True)
    finally:
        loop = asyncio.get_running_loop()
        for key in [k for k in _CLIENTS if k[1] == id(loop)]:
            await _CLIENTS.pop(key).close()
    failures = [r for r in results if isinstance(r, BaseException)]
    for failure in failures:  # a stopped job (bad key, endpoint gone) or a bug: say so, loudly
        if not isinstance(failure, RowError):
            raise failure
    if failures:
        print(f"[eval agent] {len(failures)} episode(s) failed on transport errors (e.g. {failures[0]}); "
              "re-run to retry them", flush=True)
    return len(rows) - len(failures)
