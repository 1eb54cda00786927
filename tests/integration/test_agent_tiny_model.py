"""The same episode loop against a local model: the conversation is rendered with raypipe's
template, the completion parsed with raypipe's parser, the user simulator answers over HTTP,
and the episodes run on the LLM executor's workers, which hold the model.

- a tiny random model through the transformers backend, on a Ray actor of the executor (the
  model is built there, never pickled); it shows the machinery, not a good agent;
- a scripted generate function standing in for the model (in-process executor): the episodes
  of one worker share one generation pass per step.
"""

import json
import os
from pathlib import Path

import raypipe.agent.stage as episode_stage
from raypipe.agent.runner import EvalAgentConfig, run_eval_agent
from raypipe.infer.config import GenerationConfig
from raypipe.io.dataset import read_committed
from raypipe.mockllm.server import MockLLMServer
from raypipe.tiny import save_tiny_model

os.environ["RAYPIPE_TEST_AGENT_KEY"] = "sk-test-agent-0000"
MINI = Path(__file__).resolve().parents[1] / "fixtures" / "agent_mini"


def respond(body):
    if body["model"] == "judge":
        return json.dumps({"results": [{"index": 0, "met": False, "reason": "no confirmation"}]})
    turns = len(body["messages"]) - 1
    return "Please cancel order #W1." if turns < 3 else "###STOP###"


def test_tiny_model_agent_runs_episodes_on_the_executors_actors(local_ray, tmp_path):
    texts = [(MINI / "policy.md").read_text(), (MINI / "tools.json").read_text(), "Hello, cancel my order #W1."] * 3
    model = save_tiny_model(tmp_path / "tiny", texts)

    with MockLLMServer(responder=respond) as srv:
        llm = dict(base_url=srv.base_url, api_key_env="RAYPIPE_TEST_AGENT_KEY")
        cfg = EvalAgentConfig(
            domain=str(MINI), out=str(tmp_path / "run"), user={**llm, "model": "user-sim"},
            judge={**llm, "model": "judge"}, format="tools", trials=2, max_steps=12, executor="ray",
            generation=GenerationConfig(model=str(model), backend="transformers", max_new_tokens=8, batch_size=8))
        summary = run_eval_agent(cfg)
        served = srv.stats.requests
    assert summary["episodes"] == 6 and summary["missing_episodes"] == []
    assert set(summary["pass_hat_k"]) == {"1", "2"}
    # the user simulator's and the judge's requests are the executor's (spend booked on disk)
    assert summary["llm"]["requests"] == served > 0
    engine = json.loads((tmp_path / "run" / "episodes" / "summary.json").read_text())
    assert engine["backend"] == "transformers" and engine["rows_in"] == 6 and engine["completed"] == 6
    assert read_committed(str(tmp_path / "run" / "episodes")).num_rows == 6
    records = [json.loads(x) for x in (tmp_path / "run" / "trajectories.jsonl").read_text().splitlines()]
    for r in records:
        assert r["agent"] == str(model)
        assert r["termination"] in ("user_stop", "agent_error", "max_steps", "too_many_errors")
        agent_turns = [m for m in r["messages"][1:] if m["role"] == "assistant"]
        assert agent_turns or r["termination"] == "agent_error"
        assert r["reward"] in (0.0, 1.0) and "DB" in r["reward_parts"]
    # a random model does nothing useful: the tasks that need a change fail DB
    assert all(r["reward"] == 0.0 for r in records if r["task_id"] == "cancel_w1")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["template"] == "tools" and manifest["model"] == str(model)
    assert manifest["backend"] == "transformers"


def test_episodes_of_a_worker_share_one_generation_pass_per_step(tmp_path, monkeypatch):
    passes = []
    built = []

    def scripted_model(generation, backend):
        built.append(backend)

        def generate(prompts):
            passes.append(len(prompts))
            return ["<|answer|>Let me check that for you." for _ in prompts]

        return generate

    monkeypatch.setattr(episode_stage, "local_generate_batch", scripted_model)
    with MockLLMServer(responder=respond) as srv:
        llm = dict(base_url=srv.base_url, api_key_env="RAYPIPE_TEST_AGENT_KEY")
        cfg = EvalAgentConfig(
            domain=str(MINI), out=str(tmp_path / "run"), user={**llm, "model": "user-sim"},
            judge={**llm, "model": "judge"}, format="tools-dt", trials=2, executor="local", concurrency=8,
            generation=GenerationConfig(model="scripted", backend="transformers", batch_size=8))
        summary = run_eval_agent(cfg)
    assert built == ["transformers"]  # one model for the worker, built once
    records = [json.loads(x) for x in (tmp_path / "run" / "trajectories.jsonl").read_text().splitlines()]
    agent_turns = [sum(m["role"] == "assistant" for m in r["messages"][1:]) for r in records]
    assert summary["episodes"] == 6 and agent_turns == [1] * 6  # greeting, user, agent, user stops
    assert sum(passes) == 6
    assert passes == [6]  # the six open episodes' prompts in one pass
