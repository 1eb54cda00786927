"""`EpisodeStage`: one (task, trial) episode per row, run by raypipe's one LLM executor.

Each input row is an episode to play: ``{"id": "<task>#<trial>", "task_id", "trial", "seed",
"gold"}`` (gold: the task's gold-replay database hash). The executor (`raypipe.llm.run_stage`)
gives the stage everything a stage gets: Ray Data actors (or one in-process worker), resume
from the episodes dataset's commits, `--retry-rejects`, the job-wide rate limiters, spend booked
on disk before each request, the cache flushed before each commit, keys redacted from rejects.

The endpoints are declared in `llms()` and built by the worker: "default" is the agent under
test when it is an OpenAI-compatible endpoint, "user" the user simulator, "judge" the
NL-assertion judge (absent when it is the user simulator's endpoint: then both share one client
and one limiter). A local model (`generation:`) is no endpoint: there is no "default"; each
worker actor builds the model once, lazily, on first use (it is never pickled), and the
episodes that actor runs as coroutines share one `BatchingGenerator`, so their prompts go out
in one generation pass per step. `actor_options()` gives those actors their GPUs (vLLM) or
CPUs (transformers); `generation.replicas` is the number of actors.

Outcomes, as for every stage: a played episode (whatever its reward) is an output row; a
transport failure of any endpoint (retries spent: `TransientError`) leaves the episode
pending for the next run; a content failure (the judge's answer unusable after re-asks, a 4xx)
rejects it with the reason; a `FatalJobError` (bad key, endpoint down) stops the job.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import replace
from typing import Any

from raypipe.llm.stage import LLMStage

JSON_COLUMNS = ("reward_parts", "messages")  # nested values travel as JSON text
# Episodes in one commit: small, so finished episodes are durable soon after they end.
MAX_BATCH = 16


def output_schema():
    import pyarrow as pa

    return pa.schema([
        ("id", pa.string()), ("task_id", pa.string()), ("trial", pa.int64()), ("seed", pa.int64()),
        ("agent", pa.string()), ("reward", pa.float64()), ("reward_reason", pa.string()),
        ("reward_parts", pa.string()), ("termination", pa.string()), ("termination_reason", pa.string()),
        ("steps", pa.int64()), ("tool_errors", pa.int64()), ("final_db_sha256", pa.string()),
        ("gold_db_sha256", pa.string()), ("messages", pa.string()), ("elapsed_s", pa.float64()),
    ])


def to_row(record: dict) -> dict:
    return {k: json.dumps(v, ensure_ascii=False) if k in JSON_COLUMNS else v for k, v in record.items()}


def from_row(row: dict) -> dict:
    return {k: json.loads(v) if k in JSON_COLUMNS else v for k, v in row.items()}


async def play(domain, task, row: dict, agent, user, judge, *, max_steps: int, max_errors: int,
               agent_name: str) -> dict:
    """One episode, scored: the episode record (messages, tool calls and answers, reward parts)."""
    from raypipe.agent.episode import run_episode
    from raypipe.agent.reward import score_episode

    started = time.monotonic()
    env = domain.new_env()
    episode = await run_episode(env, agent, user, max_steps=max_steps, max_errors=max_errors)
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


def local_generate_batch(generation, backend: str):
    """The batched generate function of a local model (built on the worker)."""
    from raypipe.agent.agents import transformers_generate_batch, vllm_generate_batch

    return (vllm_generate_batch if backend == "vllm" else transformers_generate_batch)(generation)


class _WorkerState:
    """What one worker builds once and its episodes share: the domain, the tasks, the gate
    that bounds episodes in flight, and (local models) the model behind one BatchingGenerator."""

    def __init__(self, domain, tasks: dict, concurrency: int, generator=None):
        self.domain, self.tasks, self.generator = domain, tasks, generator
        self.gate = asyncio.Semaphore(concurrency)


class EpisodeStage(LLMStage):
    name = "agent_episodes"
    reads = ("id", "task_id", "trial", "seed", "gold")

    def __init__(self, cfg, rows: list[dict], *, backend: str | None = None, identity: dict | None = None):
        """`cfg`: an `EvalAgentConfig`; `rows`: the episodes to settle; `backend`: the local
        model's backend (chosen on the driver); `identity`: what the episodes depend on."""
        super().__init__(cfg)
        self.rows = rows
        self.backend = backend
        self.identity = identity or {}
        self._state: _WorkerState | None = None
        self._state_lock: asyncio.Lock | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The rows stay on the driver (the executor streams them); the model, the domain and
        # the asyncio objects are the worker's own, built where they are used.
        return {**super().__getstate__(), "rows": None, "_state": None, "_state_lock": None}

    # -- what the executor asks -----------------------------------------------------------
    def llms(self) -> dict:
        cfg = self.config
        out = {"default": cfg.agent} if cfg.agent is not None else {}
        out["user"] = cfg.user
        if cfg.judge != cfg.user:
            out["judge"] = cfg.judge
        return out

    def llm(self):
        """The run's settings for the executor (actors, batch size, progress, error rate):
        the agent endpoint's, or for a local model the generation's (no endpoint of its own)."""
        from raypipe.llm import LLMConfig

        cfg = self.config
        if cfg.agent is not None:
            base = cfg.agent
        else:
            gen = cfg.generation
            base = LLMConfig(base_url=f"local:{self.backend}", model=self.agent_name(), api_key_env="",
                             num_actors=gen.replicas, progress_interval_s=cfg.user.progress_interval_s)
        return replace(base, concurrency=cfg.concurrency, batch_size=min(cfg.concurrency, MAX_BATCH))

    def actor_options(self) -> dict[str, Any]:
        gen = self.config.generation
        if gen is None:
            return super().actor_options()
        if self.backend == "vllm":
            return {"num_gpus": gen.tensor_parallel_size, "num_cpus": 1}
        return {"num_cpus": gen.cpus_per_replica}

    def output_schema(self):
        return output_schema()

    def source(self, *, use_ray: bool = True, allow_incomplete: bool = False):
        return self.rows

    def inputs(self) -> list[str]:
        return [self.config.domain]

    def source_fingerprint(self) -> str | None:
        spec = [self.name, self.identity, [[r["id"], r["seed"], r["gold"]] for r in self.rows]]
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode("utf-8")).hexdigest()

    def summary_extra(self) -> dict[str, Any]:
        return {"agent": self.agent_name(), "backend": self.backend or "endpoint"}

    def agent_name(self) -> str:
        cfg = self.config
        if cfg.agent is not None:
            return cfg.agent.model
        return cfg.generation.model + (f" + {cfg.generation.adapter}" if cfg.generation.adapter else "")

    # -- one episode ----------------------------------------------------------------------
    async def program(self, row: dict, client) -> dict:
        from raypipe.agent.agents import OpenAIAgent, TemplateAgent, system_prompt
        from raypipe.agent.user_sim import LLMJudge, LLMUser

        cfg = self.config
        state = await self._worker_state()
        async with state.gate:  # `concurrency` episodes in flight per worker; the rest wait here
            task = state.tasks[row["task_id"]]
            system = system_prompt(state.domain.policy)
            if state.generator is None:
                agent = OpenAIAgent(client, system, seed=row["seed"])
            else:
                agent = TemplateAgent(state.generator, cfg.format, system)
            user = LLMUser(self.clients["user"], task, seed=row["seed"])
            judge = LLMJudge(self.clients.get("judge") or self.clients["user"])
            if state.generator is not None:
                state.generator.open_episodes += 1
            try:
                record = await play(state.domain, task, row, agent, user, judge, max_steps=cfg.max_steps,
                                    max_errors=cfg.max_errors, agent_name=self.agent_name())
            finally:
                if state.generator is not None:
                    state.generator.open_episodes -= 1
        return to_row(record)

    async def _worker_state(self) -> _WorkerState:
        if self._state is None:
            if self._state_lock is None:
                self._state_lock = asyncio.Lock()
            async with self._state_lock:  # the first episode builds; the others wait for it
                if self._state is None:
                    self._state = await asyncio.to_thread(self._build_state)
        return self._state

    def _build_state(self) -> _WorkerState:
        from raypipe.agent.agents import BatchingGenerator
        from raypipe.agent.tasks import load_domain, load_tasks

        cfg = self.config
        generator = None
        if cfg.generation is not None:
            generator = BatchingGenerator(local_generate_batch(cfg.generation, self.backend),
                                          max_batch=cfg.generation.batch_size)
        return _WorkerState(load_domain(cfg.domain), {t.id: t for t in load_tasks(cfg.domain)},
                            cfg.concurrency, generator)
