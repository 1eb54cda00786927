"""MT-Bench judging end to end: rows through raypipe's LLM engine (Ray Data actors, real HTTP,
the real `openai` client) against the local mock server, ratings extracted, failures recorded."""

import json
import os

import pytest

pytestmark = pytest.mark.integration

# Set at import (collection) time: the session's Ray workers start later and inherit it.
os.environ.setdefault("RAYPIPE_TEST_JUDGE_KEY", "sk-test-judge")

QUESTIONS = [
    {"question_id": 1, "category": "writing", "turns": ["Write a haiku.", "Make it about rain."]},
    {"question_id": 2, "category": "math", "turns": ["What is 2+2?"], "reference": ["4"]},
    {"question_id": 3, "category": "roleplay", "turns": ["Pretend to be a cat."]},
]
ANSWERS = [
    {"question_id": 1, "choices": [{"index": 0, "turns": ["GOOD haiku", "BAD rain"]}]},
    {"question_id": 2, "turns": ["MULTI 4"]},
    {"question_id": 3, "turns": ["SILENT meow"]},
]


def judge_responder(body: dict) -> str:
    """Grades the reply under judgment (the last assistant turn shown)."""
    prompt = body["messages"][-1]["content"]
    reply = prompt.split("[Assistant]\n")[-1]
    if reply.startswith("GOOD"):
        return "Vivid and on topic.\nRating: [[9]]"
    if reply.startswith("BAD"):
        return "Ignores the request.\nRating: [[2]]"
    if reply.startswith("MULTI"):
        return "Correct per the reference, so [[8]]... on reflection Rating: [[7]]"
    return "A fine answer, I'd give it eight out of ten."


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_judge_through_the_llm_engine_and_mock_server(local_ray, tmp_path):
    from raypipe.eval.judge import run_judge
    from raypipe.llm import LLMConfig
    from raypipe.mockllm.server import MockLLMServer

    q = _jsonl(tmp_path / "q.jsonl", QUESTIONS)
    a = _jsonl(tmp_path / "a.jsonl", ANSWERS)
    with MockLLMServer(responder=judge_responder) as srv:
        llm = LLMConfig(base_url=srv.base_url, model="judge", api_key_env="RAYPIPE_TEST_JUDGE_KEY",
                        num_actors=1, concurrency=4, progress_interval_s=0)
        summary = run_judge(q, a, llm, tmp_path / "out")
        assert srv.stats.requests == 4  # one call per (question, turn)

        assert summary["score"] == pytest.approx((9 + 2) / 2)
        assert summary["judgments"] == 4 and summary["rated"] == 2
        unrated = {u["id"]: u["reason"] for u in summary["unrated"]}
        assert unrated == {"2/turn1": "several different ratings: [[8]], [[7]]",
                           "3/turn1": "no [[rating]] in the judgment"}
        assert summary["turns"] == {"1": {"score": 9.0, "rated": 1}, "2": {"score": 2.0, "rated": 1}}
        saved = json.loads((tmp_path / "out" / "MTBENCH.json").read_text())
        assert saved["score"] == summary["score"] and saved["judge_model"] == "judge"

        # a re-run resumes by row id: nothing is judged (or paid for) twice
        again = run_judge(q, a, llm, tmp_path / "out")
        assert srv.stats.requests == 4
        assert again["score"] == summary["score"] and again["rated"] == 2


def test_model_answers_each_turn_then_is_judged(local_ray, tmp_path):
    """`eval mtbench --model`: a tiny model answers turn by turn (its own first reply in the
    second prompt) through Ray Data, then the judge grades every turn."""
    from raypipe.commands.eval import EvalMtbenchConfig, run_eval_mtbench
    from raypipe.config import load_config
    from raypipe.mockllm.server import MockLLMServer
    from raypipe.tiny import save_tiny_model

    model = save_tiny_model(tmp_path / "tiny", ["<|im_start|>user\nWrite a haiku about rain.<|im_end|>"] * 10)
    q = _jsonl(tmp_path / "q.jsonl", QUESTIONS[:2])
    seen = []

    def responder(body):
        seen.append(body["messages"][-1]["content"])
        return "Rating: [[5]]"

    with MockLLMServer(responder=responder) as srv:
        cfg = load_config(EvalMtbenchConfig, {
            "questions": str(q), "out": str(tmp_path / "out"), "format": "none",
            "judge": {"base_url": srv.base_url, "model": "judge", "api_key_env": "RAYPIPE_TEST_JUDGE_KEY",
                      "num_actors": 1, "progress_interval_s": 0},
            "generation": {"model": str(model), "backend": "transformers", "max_new_tokens": 4},
        })
        summary = run_eval_mtbench(cfg)
        answers_file = tmp_path / "out" / "answers.jsonl"
        written = answers_file.stat().st_mtime_ns
        # a re-run reuses the answers and the judgments: no generation, no request
        assert run_eval_mtbench(cfg) == summary
        assert answers_file.stat().st_mtime_ns == written and srv.stats.requests == 3
    assert summary == {"score": 5.0, "judgments": 3, "rated": 3, "unrated": 0}
    answers = {json.loads(x)["question_id"]: json.loads(x)["choices"][0]["turns"]
               for x in (tmp_path / "out" / "answers.jsonl").read_text(encoding="utf-8").splitlines()}
    assert [len(answers["1"]), len(answers["2"])] == [2, 1]
    turn2 = next(p for p in seen if "turn 2" in p)
    assert answers["1"][0] in turn2 and answers["1"][1] in turn2  # the judge saw both replies
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())  # what produced the score
    assert manifest["kind"] == "eval_mtbench" and manifest["model"] == str(model)
    assert manifest["scorer"]["judge_model"] == "judge" and manifest["endpoint"] == srv.base_url
    assert manifest["template"] == {"format": "none"} and manifest["system_prompt_sha256"]
    assert manifest["sampling"]["max_new_tokens"] == 4 and {d["path"] for d in manifest["datasets"]} == {
        str(q), str(answers_file)}
    assert "sk-test-judge" not in (tmp_path / "out" / "manifest.json").read_text()
