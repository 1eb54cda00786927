"""End to end on tau2-bench's retail data: 5 tasks x 3 trials, the agent, the user simulator and
the judge all served by raypipe's test server (real HTTP, real openai client), episodes run by
raypipe's LLM executor (Ray actors, or in-process) into the committed dataset OUT/episodes.

The scripted agent that follows each task's gold actions (failing ones included) earns reward 1
on every trial; the one that only talks earns 0; both get a pass^k table. The user simulator's
requests go through the job-wide limiter and the spend accounting; a transient failure of the
user endpoint leaves its episode pending (a re-run plays it), an unusable judge answer rejects
the episode (--retry-rejects plays it again).
"""

import json
import os
import re
import time
from pathlib import Path

import pytest

from raypipe.agent.runner import EvalAgentConfig, run_eval_agent
from raypipe.cli import main
from raypipe.io.dataset import read_committed
from raypipe.llm import PendingRowsError
from raypipe.mockllm.server import MockLLMServer, ResponderError

os.environ["RAYPIPE_TEST_AGENT_KEY"] = "sk-test-agent-0000"  # before the session's ray.init
RETAIL = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks" / "tau2-retail"
TASK_IDS = ["0", "2", "19", "30", "36"]  # writes, a failing gold lookup (2), communicate info, NL assertions


@pytest.fixture(scope="module")
def retail():
    if not RETAIL.exists():
        pytest.skip(f"tau2-bench retail data not found at {RETAIL} (shared/ is absent)")
    tasks = {str(t["id"]): t for t in json.loads((RETAIL / "tasks.json").read_text())}
    return {tid: tasks[tid] for tid in TASK_IDS}


def make_responder(tasks, agent_follows_gold: bool, faults: dict | None = None, user_times: list | None = None):
    """`faults` (mutable, read per request): {"user_down": (task, seed)} answers that episode's
    user requests with 503; {"judge_garbage": task} answers that task's judge with non-JSON."""
    by_reason = {t["user_scenario"]["instructions"]["reason_for_call"]: tid for tid, t in tasks.items()}
    faults = faults if faults is not None else {}

    def user(body):
        system = body["messages"][0]["content"]
        task_id = next(tid for reason, tid in by_reason.items() if reason in system)
        if user_times is not None:
            user_times.append(time.monotonic())
        if faults.get("user_down") == (task_id, body.get("seed")):
            raise ResponderError(503, "user simulator overloaded")
        if len(body["messages"]) == 2:  # only the agent's greeting so far
            return f"Hello, I need help with my order. (case {task_id})"
        return "Thank you, that is all. ###STOP###"

    def judge(body):
        prompt = next(m["content"] for m in body["messages"] if "Expected outcomes (JSON list): " in (m["content"] or ""))
        if faults.get("judge_garbage") and f"(case {faults['judge_garbage']})" in prompt:
            return "I think the agent did fine."
        listed = prompt.split("Expected outcomes (JSON list): ", 1)[1]
        return json.dumps({"results": [{"index": i, "met": True, "reason": "shown"}
                                       for i, _ in enumerate(json.loads(listed))]})

    def agent(body):
        assert body.get("tools") and len(body["tools"]) == 16  # function-calling mode
        first_user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        task = tasks[re.search(r"\(case (\w+)\)", first_user).group(1)]
        actions = task["evaluation_criteria"]["actions"]
        done = sum(m["role"] == "tool" for m in body["messages"])
        if agent_follows_gold and done < len(actions):
            a = actions[done]
            return {"content": None, "tool_calls": [{"name": a["name"], "arguments": a["arguments"]}]}
        info = task["evaluation_criteria"]["communicate_info"]
        return "All done. " + " ; ".join(info) if agent_follows_gold else "Sorry, I cannot help with that."

    def respond(body):
        return {"user-sim": user, "judge": judge}.get(body["model"], agent)(body)

    return respond


def config(srv, out, executor="ray", trials=3, user_rpm=None, **kw):
    llm = dict(base_url=srv.base_url, api_key_env="RAYPIPE_TEST_AGENT_KEY", num_actors=2, concurrency=8,
               max_retries=2, backoff_base_s=0.01)
    return EvalAgentConfig(domain=str(RETAIL), out=str(out), agent={**llm, "model": "agent-under-test"},
                           user={**llm, "model": "user-sim", "requests_per_minute": user_rpm},
                           judge={**llm, "model": "judge"}, trials=trials, task_ids=TASK_IDS,
                           executor=executor, **kw)


def test_gold_following_agent_scores_1_and_talking_agent_0(local_ray, retail, tmp_path):
    user_times = []
    with MockLLMServer(responder=make_responder(retail, agent_follows_gold=True, user_times=user_times)) as srv:
        summary = run_eval_agent(config(srv, tmp_path / "good", user_rpm=120))
        served = srv.stats.requests
    assert summary["episodes"] == 15 and summary["missing_episodes"] == []
    assert summary["avg_reward"] == 1.0
    assert summary["pass_hat_k"] == {"1": 1.0, "2": 1.0, "3": 1.0}
    # Episodes are a committed dataset, one row per (task, trial); nothing rejected.
    episodes = read_committed(str(tmp_path / "good" / "episodes"))
    assert sorted(episodes.column("id").to_pylist()) == sorted(f"{t}#{i}" for t in TASK_IDS for i in range(3))
    assert read_committed(str(tmp_path / "good" / "episodes"), "rejects") is None
    # Every request (agent, user simulator, judge) is booked by the executor's spend accounting ...
    agent_requests = sum(3 * (len(t["evaluation_criteria"]["actions"]) + 1) for t in retail.values())
    assert summary["llm"]["requests"] == served > agent_requests + 30
    # ... and the user simulator's go through the job-wide limiter shared by both actors: 120/min
    assert len(user_times) == 30
    assert (len(user_times) - 1) / (max(user_times) - min(user_times)) <= 2.0 * 1.1
    records = [json.loads(line) for line in (tmp_path / "good" / "trajectories.jsonl").read_text().splitlines()]
    assert [(r["task_id"], r["trial"]) for r in records] == [(t, i) for t in TASK_IDS for i in range(3)]
    rec = next(r for r in records if r["task_id"] == "2")
    errors = [m["content"] for m in rec["messages"] if m["role"] == "tool" and m["error"]]
    assert errors == ["Error: Product not found"]  # the gold action that fails on purpose
    assert rec["termination"] == "user_stop" and rec["final_db_sha256"] == rec["gold_db_sha256"]
    assert rec["reward_parts"]["NL_ASSERTION"]["checks"][0]["met"] is True
    assert rec["seed"] == rec["trial"]
    manifest = json.loads((tmp_path / "good" / "manifest.json").read_text())
    assert manifest["kind"] == "eval_agent" and manifest["seeds"] == [0, 1, 2]
    assert manifest["episodes"]["complete"] is True
    assert "sk-test" not in (tmp_path / "good" / "manifest.json").read_text()

    with MockLLMServer(responder=make_responder(retail, agent_follows_gold=False)) as srv:
        code = main(["eval", "agent", "run", "--domain", str(RETAIL), "--out", str(tmp_path / "bad"),
                     "--model", "agent-under-test", "--base-url", srv.base_url, "--api-key-env", "RAYPIPE_TEST_AGENT_KEY",
                     "--user-model", "user-sim", "--user-base-url", srv.base_url,
                     "--user-api-key-env", "RAYPIPE_TEST_AGENT_KEY", "--judge-model", "judge",
                     "--trials", "3", "--task-ids", *TASK_IDS, "--executor", "local"])
    assert code == 0
    bad = json.loads((tmp_path / "bad" / "AGENT.json").read_text())
    assert bad["avg_reward"] == 0.0 and bad["pass_hat_k"] == {"1": 0.0, "2": 0.0, "3": 0.0}
    assert bad["part_pass_rate"]["DB"] == 0.0

    # `raypipe report` draws the pass^k curves and tables of both runs
    assert main(["report", str(tmp_path / "good"), str(tmp_path / "bad"), "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Agent episodes (pass^k)" in report and "| 3 | 1.0000 |" in report and "| 3 | 0.0000 |" in report
    assert (tmp_path / "report" / "passk.png").stat().st_size > 1000


def test_pending_rejected_and_resumed_episodes(retail, tmp_path):
    """A 503 storm on one episode's user simulator leaves that episode pending (not rejected);
    a judge whose answers are unusable rejects its episodes; a re-run plays only the pending
    one, and --retry-rejects the rejected ones. Counts and spend add up over the three runs."""
    faults = {"user_down": ("19", 1), "judge_garbage": "36"}
    run = tmp_path / "run"
    with MockLLMServer(responder=make_responder(retail, agent_follows_gold=True, faults=faults)) as srv:
        with pytest.raises(PendingRowsError, match="1 of 10 rows are pending"):
            run_eval_agent(config(srv, run, executor="local", trials=2))
        summary = json.loads((run / "AGENT.json").read_text())
        assert summary["missing_episodes"] == ["19#1", "36#0", "36#1"]
        assert set(summary["rejected_episodes"]) == {"36#0", "36#1"}  # 19#1 is pending, not rejected
        assert summary["rejected_episodes"]["36#0"].startswith("parse error")
        rejects = read_committed(str(run / "episodes"), "rejects")
        assert sorted(rejects.column("id").to_pylist()) == ["36#0", "36#1"]
        assert summary["llm"]["requests"] == srv.stats.requests  # the 503s are counted too

        faults.clear()
        served, logs = srv.stats.requests, []
        second = run_eval_agent(config(srv, run, executor="local", trials=2), log=logs.append)
        one_episode = len(retail["19"]["evaluation_criteria"]["actions"]) + 1 + 2 + 1  # agent, user, judge
        assert srv.stats.requests - served == one_episode  # that episode's requests only
        assert "7 episodes done before, 2 rejected before, 1 to run" in logs[0]
        assert second["missing_episodes"] == ["36#0", "36#1"] and second["pass_hat_k"]["1"] == 1.0

        served, logs = srv.stats.requests, []
        third = run_eval_agent(config(srv, run, executor="local", trials=2, retry_rejects=True), log=logs.append)
        assert "2 rejected before (retried), 2 to run" in logs[0]
        # agent and user per trial, and the judge (its two identical requests may be sent once)
        talk = 2 * (len(retail["36"]["evaluation_criteria"]["actions"]) + 1 + 2)
        assert talk + 1 <= srv.stats.requests - served <= talk + 2
        assert third["missing_episodes"] == [] and third["rejected_episodes"] == {}
        assert third["pass_hat_k"] == {"1": 1.0, "2": 1.0}
        assert third["llm"]["requests"] == srv.stats.requests
        episodes = read_committed(str(run / "episodes"))
        assert episodes.num_rows == 10 and read_committed(str(run / "episodes"), "rejects") is None

        # a run that is up to date plays nothing; another configuration is refused
        served = srv.stats.requests
        assert run_eval_agent(config(srv, run, executor="local", trials=2))["episodes"] == 10
        assert srv.stats.requests == served
        with pytest.raises(Exception, match="another configuration"):
            run_eval_agent(config(srv, run, executor="local", trials=2, seed=5))
