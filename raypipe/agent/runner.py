"""`run_eval_agent`: n seeded trials of every task, episodes in parallel, resumable, summarised.

Every (task, trial) is one row of `raypipe.agent.stage.EpisodeStage`, run by raypipe's one LLM
executor into the committed dataset `OUT/episodes` (the commit contract of
`raypipe.io.dataset`). Whatever reaches the agent (an OpenAI-compatible endpoint in FC mode, or
a local model: transformers on CPU, vLLM on GPU), the episodes run on the executor's workers,
and resume, `--retry-rejects`, rate limits, spend, cache and key redaction are the executor's.
Everything else the run writes is read from the committed episodes:

    OUT/episodes/          the episodes dataset (data/, rejects/, _manifest.json, summary.json)
    OUT/trajectories.jsonl every committed episode of this selection, in task/trial order
    OUT/AGENT.json         pass^k, pass@k, average reward, per task, missing/rejected episodes,
                           LLM requests and cost (what `raypipe report` reads)
    OUT/manifest.json      what produced it (raypipe.eval.manifest)
    OUT/run_config.json    what must not change to resume into OUT

Trial t of every task uses seed `seed + t` for the agent and the user simulator.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from raypipe.config import input_paths, output_path
from raypipe.errors import RaypipeError
from raypipe.infer.config import GenerationConfig

EPISODES = "episodes"  # the episodes dataset, under OUT
DOMAIN_FILES = ("db.json", "tasks.json", "policy.md", "tools.json")


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
    concurrency: int = 16  # episodes in flight per worker actor (endpoint or local model)
    executor: Literal["auto", "ray", "local"] = "auto"  # Ray actors (auto: when Ray is up) or in-process
    retry_rejects: bool = False  # play the episodes rejected by earlier runs again

    def __post_init__(self) -> None:
        from raypipe.config import load_config
        from raypipe.llm import LLMConfig

        if (self.agent is None) == (self.generation is None):
            raise ValueError("give exactly one of agent (an endpoint) or generation (a local model)")
        if self.trials < 1 or self.max_steps < 1 or self.max_errors < 1 or self.concurrency < 1:
            raise ValueError("trials, max_steps, max_errors and concurrency must be >= 1")

        def llm(value, where):  # dicts from YAML/CLI; LLMConfigs pass through. Greedy unless set.
            cfg = value if isinstance(value, LLMConfig) else load_config(LLMConfig, value, where=where)
            return cfg.with_default_temperature(0.0)

        self.user = llm(self.user, "user")
        if self.agent is not None:
            self.agent = llm(self.agent, "agent")
        self.judge = llm(self.judge, "judge") if self.judge is not None else self.user

    def identity(self) -> dict:
        """What makes episodes of two runs the same: resuming into `out` needs it unchanged."""
        from raypipe.eval.manifest import public_endpoint

        agent = ({"endpoint": public_endpoint(self.agent.base_url), "model": self.agent.model,
                  "temperature": self.agent.temperature}
                 if self.agent is not None else
                 {"model": self.generation.model, "adapter": self.generation.adapter, "format": self.format,
                  "temperature": self.generation.temperature, "max_new_tokens": self.generation.max_new_tokens})
        return {"domain_sha256": domain_sha256(self.domain), "agent": agent, "seed": self.seed,
                "user": {"model": self.user.model, "endpoint": public_endpoint(self.user.base_url),
                         "temperature": self.user.temperature},
                "judge": {"model": self.judge.model, "endpoint": public_endpoint(self.judge.base_url)},
                "max_steps": self.max_steps, "max_errors": self.max_errors}


def domain_sha256(directory: str) -> str:
    """One hash of the domain's files: episodes scored against another database, policy or
    task list are not episodes of this run."""
    digest = hashlib.sha256()
    for name in DOMAIN_FILES:
        path = Path(directory) / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"") + b"\0")
    return digest.hexdigest()


def run_eval_agent(cfg: EvalAgentConfig, log=print) -> dict:
    from raypipe.agent.records import (SUMMARY_NAME, committed_episodes, episode_id, markdown_summary,
                                       split_episode_id, summarize_run)
    from raypipe.agent.replay import gold_hashes
    from raypipe.agent.stage import EpisodeStage
    from raypipe.agent.tasks import load_domain, load_tasks
    from raypipe.io import fs
    from raypipe.llm import PendingRowsError, run_stage

    domain = load_domain(cfg.domain)
    tasks = load_tasks(cfg.domain, split=cfg.split, task_ids=cfg.task_ids)[: cfg.limit]
    if not tasks:
        raise RaypipeError(f"{cfg.domain}: no tasks selected")
    identity = cfg.identity()
    _check_identity(cfg.out, identity)
    episodes_dir = fs.join(cfg.out, EPISODES)
    selected = [(t.id, i) for t in tasks for i in range(cfg.trials)]
    before, rejected_before = committed_episodes(episodes_dir)
    # The episodes dataset keeps every episode ever run into OUT: episodes outside this
    # selection (another --task-ids, fewer --trials) are rows of the stage too, settled, so the
    # dataset's counts stay whole; the summary covers the selection only.
    wanted = set(selected) | {split_episode_id(i) for i in (set(before) | set(rejected_before))}
    by_id = {t.id: t for t in load_tasks(cfg.domain)}
    unknown = sorted(f"{t}#{i}" for t, i in wanted if t not in by_id)
    if unknown:
        raise RaypipeError(f"{episodes_dir}: holds episodes of tasks that {cfg.domain} does not have "
                           f"(e.g. {unknown[0]}); use a new --out")
    gold = gold_hashes(domain, [by_id[t] for t in sorted({t for t, _ in wanted})])
    rows = [{"id": episode_id(t, i), "task_id": t, "trial": i, "seed": cfg.seed + i, "gold": gold[t]}
            for t, i in selected + sorted(wanted - set(selected))]
    done = sum(episode_id(t, i) in before for t, i in selected)
    rejected = sum(episode_id(t, i) in rejected_before for t, i in selected)
    todo = len(selected) - done - (0 if cfg.retry_rejects else rejected)
    log(f"[eval agent] {len(tasks)} tasks x {cfg.trials} trials: {done} episodes done before, "
        + (f"{rejected} rejected before{' (retried)' if cfg.retry_rejects else ''}, " if rejected else "")
        + f"{todo} to run")
    stage = EpisodeStage(cfg, rows, backend=_local_backend(cfg) if cfg.generation is not None else None,
                         identity=identity)
    started = time.monotonic()
    pending = None
    try:
        engine = run_stage(stage, out=episodes_dir, executor=cfg.executor, retry_rejects=cfg.retry_rejects,
                           log=log)
    except PendingRowsError as exc:  # the summary is still written from what is committed
        pending, engine = exc, exc.summary

    records, rejects = committed_episodes(episodes_dir)
    ordered = [records[episode_id(t, i)] for t, i in selected if episode_id(t, i) in records]
    summary = summarize_run(ordered, [t.id for t in tasks], cfg.trials)
    summary["rejected_episodes"] = {episode_id(t, i): rejects[episode_id(t, i)] for t, i in selected
                                    if episode_id(t, i) in rejects}
    summary["elapsed_s"] = round(time.monotonic() - started, 3)
    summary["domain"] = domain.name
    summary["agent"] = identity["agent"]
    summary["llm"] = {k: engine.get(k, 0) for k in ("requests", "responses", "cache_hits", "retries",
                                                     "throttled", "prompt_tokens", "completion_tokens",
                                                     "cost_usd")}
    fs.write_text(fs.join(cfg.out, "trajectories.jsonl"),
                  "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ordered))
    fs.write_text(fs.join(cfg.out, SUMMARY_NAME), json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    _write_manifest(cfg, domain, stage, episodes_dir)
    log(markdown_summary(summary))
    if pending is not None:
        raise pending
    return summary


def _write_manifest(cfg: EvalAgentConfig, domain, stage, episodes_dir: str) -> None:
    from raypipe.agent.agents import system_prompt
    from raypipe.eval.manifest import public_endpoint, run_manifest, write_manifest
    from raypipe.io.dataset import open_dataset

    view = open_dataset(episodes_dir)
    sampling = ({"temperature": cfg.agent.temperature, "max_tokens": cfg.agent.max_tokens} if cfg.agent is not None
                else {"temperature": cfg.generation.temperature, "top_p": cfg.generation.top_p,
                      "max_new_tokens": cfg.generation.max_new_tokens})
    write_manifest(cfg.out, run_manifest(
        kind="eval_agent", datasets=[str(Path(cfg.domain) / n) for n in DOMAIN_FILES],
        scorer="raypipe.agent (tau2-bench retail rules)", template=None if cfg.agent is not None else cfg.format,
        system_prompt=system_prompt(domain.policy),
        model=cfg.agent.model if cfg.agent is not None else cfg.generation.model,
        adapter=cfg.generation.adapter if cfg.generation is not None else None,
        endpoint=cfg.agent.base_url if cfg.agent is not None else None, sampling=sampling,
        seeds=[cfg.seed + i for i in range(cfg.trials)],
        extra={"backend": stage.backend or "endpoint",
               "user_simulator": {"model": cfg.user.model, "endpoint": public_endpoint(cfg.user.base_url)},
               "judge": {"model": cfg.judge.model, "endpoint": public_endpoint(cfg.judge.base_url)},
               "episodes": {"dataset": EPISODES, "generation": (view.manifest or {}).get("generation"),
                            "complete": view.complete, "data_files": len(view.data)}}))


def _check_identity(out: str, identity: dict) -> None:
    from raypipe.io import fs

    path = fs.join(out, "run_config.json")
    if fs.exists(path):
        before = json.loads(fs.read_text(path))
        if before != identity:
            changed = sorted(k for k in set(before) | set(identity) if before.get(k) != identity.get(k))
            raise RaypipeError(f"{out}: holds episodes of another configuration (changed: {', '.join(changed)}); "
                               "use a new --out or delete it")
        return
    fs.write_text(path, json.dumps(identity, indent=1) + "\n")


def _local_backend(cfg: EvalAgentConfig) -> str:
    """vLLM when it is installed and the Ray cluster has GPUs (or when asked), else transformers."""
    import importlib.util

    from raypipe.infer.run import choose_backend

    gpus = 0.0
    if cfg.executor != "local" and importlib.util.find_spec("ray") is not None:
        import ray

        if ray.is_initialized():
            gpus = ray.cluster_resources().get("GPU", 0.0)
    return choose_backend(cfg.generation.backend, vllm_installed=importlib.util.find_spec("vllm") is not None,
                          cluster_gpus=gpus)
