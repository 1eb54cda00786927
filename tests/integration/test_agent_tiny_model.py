"""The same episode loop against a tiny random model through the transformers backend: the
conversation is rendered with raypipe's template, the completion parsed with raypipe's parser,
the user simulator answers over HTTP. It shows the machinery, not a good agent."""

import json
import os
from pathlib import Path

from raypipe.agent.runner import EvalAgentConfig, run_eval_agent
from raypipe.infer.config import GenerationConfig
from raypipe.mockllm.server import MockLLMServer
from raypipe.tiny import save_tiny_model

os.environ["RAYPIPE_TEST_AGENT_KEY"] = "sk-test-agent-0000"
MINI = Path(__file__).resolve().parents[1] / "fixtures" / "agent_mini"


def test_tiny_model_agent_runs_episodes_end_to_end(tmp_path):
    texts = [(MINI / "policy.md").read_text(), (MINI / "tools.json").read_text(), "Hello, cancel my order #W1."] * 3
    model = save_tiny_model(tmp_path / "tiny", texts)

    def respond(body):
        if body["model"] == "judge":
            return json.dumps({"results": [{"index": 0, "met": False, "reason": "no confirmation"}]})
        turns = len(body["messages"]) - 1
        return "Please cancel order #W1." if turns < 3 else "###STOP###"

    with MockLLMServer(responder=respond) as srv:
        llm = dict(base_url=srv.base_url, api_key_env="RAYPIPE_TEST_AGENT_KEY")
        cfg = EvalAgentConfig(
            domain=str(MINI), out=str(tmp_path / "run"), user={**llm, "model": "user-sim"},
            judge={**llm, "model": "judge"}, format="tools", trials=2, max_steps=12,
            generation=GenerationConfig(model=str(model), backend="transformers", max_new_tokens=8, batch_size=8))
        summary = run_eval_agent(cfg)
    assert summary["episodes"] == 6 and summary["missing_episodes"] == []
    assert set(summary["pass_hat_k"]) == {"1", "2"}
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
