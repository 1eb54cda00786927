"""A two-arm study (Table 2's baseline and + Decision Token) at tiny scale, end to end, as the
user runs it: `raypipe run STUDY --scale tiny` is killed right after the first arm finishes,
re-run (the finished arm and the shared steps are not redone), then `raypipe report --study`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def raypipe(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "raypipe.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "DS_ACCELERATOR": "cpu", **(env or {})})


def test_two_arm_study_tiny_scale_killed_between_arms_resumes_and_reports(tmp_path):
    spec = yaml.safe_load((ROOT / "jobs" / "paper" / "table2.yaml").read_text())
    spec["study"]["out"] = str(tmp_path / "out")
    spec["study"]["arms"] = spec["study"]["arms"][:2]  # tools, tools-dt
    spec["study"]["compare"] = [["tools", "tools-dt"]]
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = tmp_path / "out"

    first = raypipe("run", str(study), "--scale", "tiny", env={"RAYPIPE_STUDY_KILL_AFTER_ARM": "tools"})
    assert first.returncode == 137, first.stdout[-3000:] + first.stderr[-3000:]
    state = json.loads((out / "study.json").read_text())
    assert state["arms"]["tools"]["status"] == "done"
    assert state["arms"]["tools-dt"]["status"] == "pending"  # killed before it started
    ran_first = [json.loads(x) for x in (out / ".study" / "runs.jsonl").read_text().splitlines()]
    assert [r["step"] for r in ran_first] == ["prep_if", "prep_fc", "negatives", "mix", "train", "eval"]

    second = raypipe("run", str(study), "--scale", "tiny")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    ran = [json.loads(x) for x in (out / ".study" / "runs.jsonl").read_text().splitlines()]
    # the re-run ran only the second arm's own steps: nothing of the finished arm, no shared step twice
    assert [(r["arm"], r["step"]) for r in ran[len(ran_first):]] == [("tools-dt", "train"), ("tools-dt", "eval")]
    state = json.loads((out / "study.json").read_text())
    assert {a: s["status"] for a, s in state["arms"].items()} == {"tools": "done", "tools-dt": "done"}
    steps = {s["name"]: s for s in state["arms"]["tools-dt"]["steps"]}
    assert all(steps[n]["shared"] and steps[n]["state"] == "skipped" for n in ("prep_if", "prep_fc", "negatives", "mix"))
    assert not steps["train"]["shared"] and steps["train"]["state"] == "ran"
    assert "step tools/train: done before" in second.stdout

    report = raypipe("report", "--study", str(out))
    assert report.returncode == 0, report.stderr
    data = json.loads((out / "report" / "STUDY.json").read_text())
    rows = {r["arm"]: r for r in data["rows"]}
    assert set(rows) == {"tools", "tools-dt"}
    for r in rows.values():
        for metric in ("ast_summary", "relevance_detection"):
            cell = r["cells"][metric]
            assert cell["raypipe"] is not None and cell["ci95"][0] <= cell["raypipe"] <= cell["ci95"][1]
    assert rows["tools"]["cells"]["ast_summary"]["paper"] == 85.25  # Table 2, Baseline, dedicated role
    assert rows["tools-dt"]["cells"]["relevance_detection"]["paper"] == 37.50
    (cmp,) = data["comparisons"]
    ast = cmp["tests"]["ast_summary"]
    assert ast["test"] == "McNemar exact" and ast["items"] == 16 and 0 < ast["p"] <= 1
    assert cmp["tests"]["relevance_detection"]["items"] == 4
    assert ast["paper_diff"] == 0.0  # the paper's "+ Decision Token" row changes AST Summary by 0.00
    md = (out / "report" / "study.md").read_text()
    assert "| tools -> tools-dt | AST Summary | 16 |" in md and "McNemar exact" in md
    assert (out / "report" / "study.png").stat().st_size > 1000
    print("STUDY TABLE\n" + md)


def test_two_arms_run_concurrently_in_their_own_drivers_after_shared_steps_once(tmp_path):
    """max_concurrent_arms: 2. To keep it cheap on 2 cores, the arms share one tiny SFT on the
    shipped samples (Table 2's data steps are covered by the test above) and differ in their
    evaluations: the parent driver runs the training once, then each arm's eval runs in its own
    `raypipe run --arm` driver on the parent's Ray cluster, and the two overlap in time."""
    spec = yaml.safe_load((ROOT / "jobs" / "paper" / "table2.yaml").read_text())
    s = spec["study"]
    s["out"] = str(tmp_path / "out")
    s["max_concurrent_arms"] = 2
    s["steps"] = [x for x in s["steps"] if x["name"] in ("train", "eval")]
    s["scales"]["tiny"]["overrides"] = {"train": s["scales"]["tiny"]["overrides"]["train"]}
    train = next(x for x in s["steps"] if x["name"] == "train")
    train["train_sft"].update(out="${out}/shared/sft", name="shared",
                              data=[{"path": "raypipe/data/samples.jsonl", "kind": "samples"}])
    evaluation = next(x for x in s["steps"] if x["name"] == "eval")
    evaluation["eval_bfcl"]["generation"]["model"] = "${out}/shared/sft/merged"
    s["arms"] = [{"name": "e1", "row": "one"}, {"name": "e2", "row": "two"}]
    s["compare"] = [["e1", "e2"]]
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = tmp_path / "out"

    run = raypipe("run", str(study), "--scale", "tiny")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ran = [json.loads(x) for x in (out / ".study" / "runs.jsonl").read_text().splitlines()]
    print("RUNS\n" + "\n".join(f"{r['arm']}/{r['step']} pid {r['pid']} {r['started']:.1f}-{r['finished']:.1f}" for r in ran))
    # shared steps ran once, in the parent driver; each arm's eval in a driver of its own
    assert sorted(r["step"] for r in ran) == ["eval", "eval", "train"]
    parent = {r["pid"] for r in ran if r["step"] != "eval"}
    evals = {r["arm"]: r for r in ran if r["step"] == "eval"}
    assert set(evals) == {"e1", "e2"} and len(parent) == 1
    assert len({evals["e1"]["pid"], evals["e2"]["pid"]} | parent) == 3
    # the two arms' drivers overlapped: each eval started before the other finished
    assert evals["e1"]["started"] < evals["e2"]["finished"] and evals["e2"]["started"] < evals["e1"]["finished"]
    state = json.loads((out / "study.json").read_text())
    assert {a: e["status"] for a, e in state["arms"].items()} == {"e1": "done", "e2": "done"}
    for arm in ("e1", "e2"):
        steps = {x["name"]: x for x in state["arms"][arm]["steps"]}
        assert steps["eval"]["state"] == "ran" and not steps["eval"]["shared"] and steps["train"]["shared"]
        assert "started in its own driver" in run.stdout and f"arm {arm}: done" in run.stdout
        assert "joined the Ray cluster" in (out / ".study" / "logs" / f"{arm}.log").read_text()
    assert (out / "e1" / "eval" / "REPORT.json").exists() and (out / "e2" / "eval" / "REPORT.json").exists()
