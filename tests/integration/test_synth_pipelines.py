"""The synthesis pipelines end to end: local Ray, the engine, a scripted teacher behind the
real OpenAI-compatible test server (real HTTP, real `openai` client)."""

import json
import os
from pathlib import Path

import pytest

from raypipe.data import IF_JSONL, SAMPLES_JSONL
from raypipe.llm.config import LLMConfig
from raypipe.schema import Sample
from raypipe.stages.negatives import run_negatives
from raypipe.stages.reasoning import run_reasoning
from raypipe.stages.translate import run_translate
from raypipe.synth import negatives, reasoning, translate
from raypipe.mockllm.server import MockLLMServer
from raypipe.validate import validate_sample

pytestmark = pytest.mark.integration

KEY_ENV = "RAYPIPE_SYNTH_TEST_KEY"
os.environ[KEY_ENV] = "sk-test-not-a-secret"  # module level: Ray workers started later inherit it


def shipped(kind=None, lang="en", limit=None):
    rows = [Sample.from_dict(json.loads(x)) for x in SAMPLES_JSONL.read_text().splitlines()]
    rows = [s for s in rows if s.lang == lang and (kind is None or s.meta.get("kind") == kind)]
    return rows[:limit]


def write_jsonl(path: Path, samples) -> str:
    path.write_text("".join(json.dumps(s.to_dict(), ensure_ascii=False) + "\n" for s in samples))
    return str(path)


def read_dir(folder) -> tuple[list[Sample], list[dict]]:
    """Samples and rejects as every reader sees them: through the commit records."""
    from raypipe.io.dataset import read_committed

    data, rejects = read_committed(str(folder), "data"), read_committed(str(folder), "rejects")
    samples = [Sample.from_row(r) for r in (data.to_pylist() if data is not None else [])]
    return samples, rejects.to_pylist() if rejects is not None else []


def first_user(messages_text: str) -> str:
    for line in messages_text.splitlines():
        if line.startswith("[USER] "):
            return line[len("[USER] "):]
    return ""


def between(text: str, start: str, end: str = "```") -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


class Teacher:
    """Scripted teacher. `policy[first user message]` says how to behave for that sample:
    good, off_target (always), malformed (always), fix_on_reask (wrong once, then good),
    rename (translation that changes a function name, always), call (direct answer that
    writes a function call, always)."""

    def __init__(self, policy: dict[str, str]):
        self.policy = policy

    def __call__(self, body: dict) -> str:
        msgs = body["messages"]
        attempt = (len(msgs) - 2) // 2  # each re-ask adds the answer and the complaint
        system = msgs[0]["content"]
        if system == reasoning.SYSTEM_PROMPT:
            return self.reason(msgs[1]["content"], attempt)
        if system == translate.SYSTEM_PROMPT:
            return self.translate(msgs[1]["content"], attempt)
        if system.startswith(negatives.ANSWER_SYSTEM):
            users = [m["content"] for m in msgs if m["role"] == "user"]
            if self.policy.get(users[0]) == "call":
                return "get_current_weather(location='Taipei')"
            return "I can't look that up with the tools I have, but here is what I know."
        raise AssertionError(f"unexpected request: {system[:80]}")

    def reason(self, prompt: str, attempt: int) -> str:
        task = prompt.split("## Your task", 1)[1]
        how = self.policy.get(first_user(task), "good")
        called = [c["name"] for c in json.loads(between(task, "makes exactly these calls:\n```json\n"))]
        others = [f["name"] for f in json.loads(between(task, "Available functions:\n```json\n"))
                  if f["name"] not in called]
        if how == "malformed":
            return "Sure! The reason is that the user asked."
        if how == "off_target" or (how == "fix_on_reask" and attempt == 0):
            return json.dumps({"reason": f"The user needs this, so {(others or ['lookup'])[0]} is the tool to use."})
        return json.dumps({"reason": f"The user asks for it, so {' and '.join(called)} is called with "
                                     "the values taken from the conversation."})

    def translate(self, prompt: str, attempt: int) -> str:
        turns = json.loads(between(prompt, "Turns to translate:\n```json\n"))
        users = [t["content"] for t in turns if t["role"] == "user"]
        how = self.policy.get(users[0] if users else "", "good")
        out = []
        for t in turns:
            t = dict(t)
            content = t.get("content")
            if content and not (t["role"] == "tool" and content.lstrip().startswith(("{", "["))):
                t["content"] = "譯：" + content
            if t.get("reasoning"):
                t["reasoning"] = "譯：" + t["reasoning"]
            if t.get("tool_calls") and (how == "rename" or (how == "fix_on_reask" and attempt == 0)):
                t["tool_calls"] = [{**t["tool_calls"][0], "name": "查詢_" + t["tool_calls"][0]["name"]},
                                   *t["tool_calls"][1:]]
            out.append(t)
        return json.dumps({"messages": out}, ensure_ascii=False)


def llm(srv, **kw) -> LLMConfig:
    base = dict(base_url=srv.base_url, model="mock-model", api_key_env=KEY_ENV, num_actors=1,
                concurrency=16, batch_size=8, max_reasks=2, progress_interval_s=0, max_error_rate=1.0,
                backoff_base_s=0.01)
    return LLMConfig(**{**base, **kw})


def test_reasoning_reask_reject_lineage_and_resume(local_ray, tmp_path):
    fc = shipped("single", limit=4) + shipped("parallel", limit=2)
    no_call = shipped("no_call", limit=1)
    users = [first_user("\n".join(f"[{m.role.upper()}] {m.content}" for m in s.messages)) for s in fc]
    policy = {users[1]: "fix_on_reask", users[2]: "off_target", users[3]: "malformed"}
    inputs = write_jsonl(tmp_path / "in.jsonl", fc + no_call)
    with MockLLMServer(responder=Teacher(policy)) as srv:
        cfg = reasoning.ReasoningConfig(inputs=[inputs], out=str(tmp_path / "out"), llm=llm(srv),
                                        keep_without_calls=False)
        summary = run_reasoning(cfg)
        seen = srv.stats.requests
        assert summary["rows_in"] == 7 and summary["completed"] == 4 and summary["rejected"] == 3
        assert summary["pending"] == 0 and summary["duplicates"] == 0
        # 6 turns asked once; one re-asked once; off-target and malformed asked 1 + 2 re-asks
        assert seen == 6 + 1 + 2 + 2

        out, rejects = read_dir(cfg.out)
        assert len(out) == 4 and len(rejects) == 3
        parents = {s.id: s for s in fc}
        for s in out:
            assert validate_sample(s) == []
            parent = parents[s.lineage[-1].parent_id]
            assert s.lineage[-1].stage == "synth_reasoning"
            for m, pm in zip(s.messages, parent.messages):
                assert (m.reasoning is not None) == bool(pm.tool_calls)
                if m.reasoning:
                    assert all(c.name in m.reasoning for c in pm.tool_calls)
                assert m.tool_calls == pm.tool_calls
        reasons = {r["id"]: r["reason"] for r in rejects}
        assert "names function(s) the turn does not call" in reasons[fc[2].id]
        assert reasons[fc[2].id].startswith("validation error") and "after 2 re-asks" in reasons[fc[2].id]
        assert reasons[fc[3].id].startswith("parse error")
        assert reasons[no_call[0].id].startswith("no tool calls")
        assert all(r["stage"] == "synth_reasoning" and r["raw"] for r in rejects)

        # resume: a second run finds every row done, sends nothing, duplicates nothing
        again = run_reasoning(cfg)
        assert srv.stats.requests == seen
        assert again["completed"] == 4 and again["rejected"] == 3 and again["pending"] == 0
        out2, rejects2 = read_dir(cfg.out)
        assert sorted(s.id for s in out2) == sorted(s.id for s in out) and len(rejects2) == 3


def test_translate_keeps_structure_reasks_rejects_and_chunks(local_ray, tmp_path):
    fc = shipped("multi_turn", limit=2) + shipped("single", limit=2)
    first = {s.id: next(m.content for m in s.messages if m.role == "user") for s in fc}
    policy = {first[fc[2].id]: "rename", first[fc[3].id]: "fix_on_reask"}
    zh = shipped(lang="zh-TW", limit=1)
    inputs = write_jsonl(tmp_path / "in.jsonl", fc + zh)
    with MockLLMServer(responder=Teacher(policy)) as srv:
        cfg = translate.TranslateConfig(inputs=[inputs], out=str(tmp_path / "out"), llm=llm(srv),
                                        max_chunk_chars=400)
        summary = run_translate(cfg)
    assert summary["rows_in"] == 5 and summary["completed"] == 3 and summary["rejected"] == 2
    out, rejects = read_dir(cfg.out)
    reasons = {r["id"]: r["reason"] for r in rejects}
    assert "function names are never translated" in reasons[fc[2].id]
    assert "'查詢_" in reasons[fc[2].id] and "after 2 re-asks" in reasons[fc[2].id]
    assert reasons[zh[0].id].startswith("already translated")
    by_parent = {s.lineage[-1].parent_id: s for s in out}
    assert set(by_parent) == {fc[0].id, fc[1].id, fc[3].id}
    for parent in (fc[0], fc[1], fc[3]):
        s = by_parent[parent.id]
        assert s.lang == "zh-TW" and s.meta["translated_from"] == "en"
        assert s.functions == parent.functions  # specs untouched
        assert [m.role for m in s.messages] == [m.role for m in parent.messages]
        assert s.tool_calls() == parent.tool_calls()  # names, keys, values, ids identical
        for m, pm in zip(s.messages, parent.messages):
            if pm.content and pm.role != "tool":
                assert m.content == "譯：" + pm.content
        assert validate_sample(s) == []
    # the long multi-turn samples were cut into several requests
    assert srv.stats.requests > 5 + 2 * 3


def test_negatives_decision_only_and_teacher_answer(local_ray, tmp_path):
    samples = shipped("single", limit=5) + shipped("no_call", limit=2)
    inputs = write_jsonl(tmp_path / "in.jsonl", samples)
    from raypipe.cli import main

    assert main(["synth", "negatives", inputs, "--out", str(tmp_path / "nf"), "--seed", "3",
                 "--min-functions", "3"]) == 0
    summary = json.loads((tmp_path / "nf" / "summary.json").read_text())
    assert (summary["rows_in"], summary["completed"], summary["rejected"]) == (7, 5, 2)
    assert summary["target"] == "decision_only" and summary["requests"] == 0
    out, rejects = read_dir(tmp_path / "nf")
    parents = {s.id for s in samples}
    for s in out:
        assert s.meta["target"] == "decision_only" and s.messages[-1].content == ""
        assert s.lineage[-1].parent_id in parents and len(s.functions) >= 3
        assert validate_sample(s) == []
    assert all("no assistant turn with tool calls" in r["reason"] for r in rejects)
    # seeded: the same negatives as building them here, whatever Ray's partitioning was
    pool = negatives.load_pool(None)
    expected = [negatives.make_negative(s, pool, seed=3, min_functions=3) for s in samples[:5]]
    assert sorted(s.id for s in out) == sorted(s.id for s in expected)

    policy = {next(m.content for m in samples[0].messages if m.role == "user"): "call"}
    with MockLLMServer(responder=Teacher(policy)) as srv:
        tcfg = negatives.NegativesConfig(inputs=[inputs], out=str(tmp_path / "nf_answer"), seed=3,
                                         min_functions=3, teacher_answer=True, llm=llm(srv))
        dry = run_negatives(negatives.NegativesConfig(**{**tcfg.__dict__, "dry_run": True}))
        assert dry["requests"] == 5 and dry["build_errors"] == 2 and srv.stats.requests == 0
        summary = run_negatives(tcfg)
    assert summary["rows_in"] == 7 and summary["completed"] == 4 and summary["rejected"] == 3
    answered, rejects = read_dir(tcfg.out)
    assert {s.lineage[-1].parent_id for s in answered} <= parents
    for s in answered:
        assert s.meta["target"] == "direct_answer" and s.messages[-1].content.startswith("I can't")
    assert {s.functions[0]["name"] for s in answered} <= {s.functions[0]["name"] for s in out}
    reasons = {r["id"]: r["reason"] for r in rejects}
    assert "calls 'get_current_weather'" in reasons[samples[0].id]
    # the same reason as the decision-only run: both targets go through one stage
    assert reasons[samples[5].id].startswith("no assistant turn with tool calls")


def test_chain_job_negatives_reasoning_translate_mix(local_ray, tmp_path):
    import yaml

    from raypipe.jobs import run_job

    fc = shipped("single", limit=4) + shipped("parallel", limit=1)
    inputs = write_jsonl(tmp_path / "fc.jsonl", fc)
    if_rows = write_jsonl(tmp_path / "if.jsonl", [Sample.from_dict(json.loads(x))
                                                  for x in IF_JSONL.read_text().splitlines()[:6]])
    job = yaml.safe_load((Path(__file__).parents[2] / "jobs" / "synth_chain.yaml").read_text())
    run = tmp_path / "run"
    with MockLLMServer(responder=Teacher({})) as srv:
        teacher = {**job["steps"][1]["synth_reasoning"]["llm"], "base_url": srv.base_url, "api_key_env": KEY_ENV,
                   "cache_dir": str(run / "cache"), "num_actors": 1, "progress_interval_s": 0}
        steps = {k: v for step in job["steps"] for k, v in step.items()}
        steps["synth_negatives"].update(inputs=[inputs], out=str(run / "nf"))
        steps["synth_reasoning"].update(inputs=[inputs], out=str(run / "fc_reason"), llm=teacher)
        steps["synth_translate"].update(inputs=[str(run / "fc_reason")], out=str(run / "tc"), llm=teacher)
        steps["synth_mix"].update(out=str(run / "mix"), sources=[
            {"name": "IF", "inputs": [if_rows], "count": 4},
            {"name": "FC", "inputs": [str(run / "fc_reason")]},
            {"name": "NF", "inputs": [str(run / "nf")], "count": 3},
            {"name": "TC", "inputs": [str(run / "tc")]},
            {"name": "FC-again", "inputs": [str(run / "fc_reason")]},  # all duplicates of FC
        ])
        job["steps"] = [{k: steps[k]} for k in ("synth_negatives", "synth_reasoning", "synth_translate", "synth_mix")]
        path = tmp_path / "chain.yaml"
        path.write_text(yaml.safe_dump(job, allow_unicode=True))
        ctx = run_job(path)

    res = ctx.results
    assert res["0:synth_negatives"]["rows_out"] == 5
    assert res["1:synth_reasoning"]["completed"] == 5 and res["2:synth_translate"]["completed"] == 5
    mixed, dups = read_dir(run / "mix")
    assert len(mixed) == 4 + 5 + 3 + 5 and len(dups) == 5
    assert all("duplicate id: deduplicated in favour of the copy in source 'FC'" == d["reason"] for d in dups)
    by_mix = {}
    for s in mixed:
        by_mix.setdefault(s.meta["mix"], []).append(s)
    assert {k: len(v) for k, v in by_mix.items()} == {"IF": 4, "FC": 5, "NF": 3, "TC": 5}
    assert all(s.lang == "zh-TW" and all(m.reasoning for m in s.messages if m.tool_calls) for s in by_mix["TC"])
    assert all(s.meta["target"] == "decision_only" for s in by_mix["NF"])
    assert len({s.id for s in mixed}) == len(mixed)
    summary = json.loads((run / "mix" / "summary.json").read_text())
    fc_stats = summary["sources"]["FC"]
    assert fc_stats["read"] == 5 and fc_stats["selected"] == 5 and fc_stats["with_reasoning"] == 5
    assert summary["sources"]["FC-again"]["duplicates_dropped"] == 5
    assert summary["sources"]["NF"]["targets"] == {"decision_only": 3}
    assert summary["sources"]["TC"]["langs"] == {"zh-TW": 5}
    assert summary["counts"] == {"in": 22, "out": 17, "rejected": 5}
    assert summary["read"] == 6 + 5 + 5 + 5 + 5 and summary["not_selected"] == 2 + 2

