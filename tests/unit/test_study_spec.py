"""Study files: expansion into arms, shared steps by fingerprint, resume, failed arms, and
one clear line for a bad file. The runner is driven with stand-in step kinds (no Ray)."""

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from raypipe.config import ConfigError
from raypipe.errors import RaypipeError
from raypipe.registry import Step
from raypipe.study import runner
from raypipe.study.spec import check_study, is_study_file, load_study

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PAPER = sorted((ROOT / "jobs" / "paper").glob("*.yaml"))

STUDY = """\
study:
  name: demo
  out: {out}
  vars: {{model: big, count: 100, extra: 0}}
  scales:
    tiny:
      vars: {{model: small, count: 3}}
      overrides: {{fetch: null}}
  steps:
    - {{name: fetch, make: {{out: "${{out}}/fetched", text: "${{model}}"}}}}
    - {{name: prep, make: {{out: "${{out}}/shared/prep", text: "prep ${{count}}", rows: "${{count}}"}}}}
    - {{name: train, make: {{out: "${{out}}/${{arm}}/train", text: "${{model}} plain"}}}}
  arms:
    - name: a
      row: "Baseline"
      paper: {{ast_summary: 85.25, relevance_detection: null}}
    - name: b
      row: "+ thing"
      overrides: {{train: {{text: "${{model}} thing", rows: "${{extra}}"}}}}
      vars: {{extra: "${{count}}"}}
    - name: c
      overrides: {{train: {{fail: true}}}}
  compare: [[a, b]]
"""


@dataclass
class MakeConfig:  # a stand-in step: writes its text, or fails when told to
    out: str
    text: str = ""
    rows: int = 0
    fail: bool = False


CALLS: list[str] = []


def _make(cfg: MakeConfig, job) -> dict:
    CALLS.append(f"{job.name}:{cfg.out}")
    if cfg.fail:
        raise RuntimeError("boom in train")
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    (Path(cfg.out) / "text").write_text(cfg.text)
    return {"rows": cfg.rows}


@pytest.fixture
def fake_steps(monkeypatch):
    import raypipe.commands as commands
    import raypipe.jobs as jobs

    real = commands.all_steps
    monkeypatch.setattr(commands, "all_steps", lambda: {**real(), "make": Step("make", MakeConfig, _make, "test")})
    monkeypatch.setattr(jobs, "init_ray", lambda *a, **k: None)  # the stand-in steps need no Ray
    CALLS.clear()


def write(tmp_path, text=STUDY) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text.format(out=tmp_path / "out"))
    return path


def test_expansion_scales_vars_and_shared_fingerprints(tmp_path, fake_steps):
    full = load_study(write(tmp_path))
    assert [s.name for s in full.arms[0].steps] == ["fetch", "prep", "train"]
    assert full.arms[0].steps[1].raw["rows"] == 100  # a whole-string var keeps its type
    tiny = load_study(write(tmp_path), scale="tiny")
    a, b, c = tiny.arms
    assert [s.name for s in a.steps] == ["prep", "train"]  # the scale removed fetch
    assert a.steps[0].raw == {"out": f"{tmp_path}/out/shared/prep", "text": "prep 3", "rows": 3}
    assert a.steps[0].fingerprint == b.steps[0].fingerprint == c.steps[0].fingerprint  # shared
    assert a.steps[1].raw["out"].endswith("/out/a/train") and b.steps[1].raw["out"].endswith("/out/b/train")
    assert b.steps[1].raw["text"] == "small thing" and b.steps[1].raw["rows"] == 3  # arm var names a scale var
    assert a.paper == {"ast_summary": 85.25, "relevance_detection": None}
    assert tiny.compare == [("a", "b")] and tiny.scale == "tiny"
    check_study(tiny)  # the stand-in configs type-check
    assert a.steps[0].config == MakeConfig(out=f"{tmp_path}/out/shared/prep", text="prep 3", rows=3)


def test_run_shares_steps_resumes_and_isolates_a_failed_arm(tmp_path, fake_steps):
    study = load_study(write(tmp_path), scale="tiny")
    check_study(study)
    state = runner.run_study(study)
    assert {k: v["status"] for k, v in state["arms"].items()} == {"a": "done", "b": "done", "c": "failed"}
    assert "boom in train" in state["arms"]["c"]["error"]
    out = tmp_path / "out"
    assert sorted(CALLS) == sorted([f"demo/a:{out}/shared/prep", f"demo/a:{out}/a/train",
                                    f"demo/b:{out}/b/train", f"demo/c:{out}/c/train"])  # prep ran once
    runs = [json.loads(x) for x in (out / ".study" / "runs.jsonl").read_text().splitlines()]
    assert [r["step"] for r in runs if r["step"] == "prep"] == ["prep"]
    saved = json.loads((out / "study.json").read_text())
    assert saved["arms"]["b"]["steps"][0] == {"name": "prep", "kind": "make", "fingerprint": study.arms[0].steps[0].fingerprint,
                                              "shared": True, "state": "skipped"}
    assert saved["arms"]["a"]["paper"]["ast_summary"] == 85.25

    CALLS.clear()  # a re-run redoes only what did not finish: arm c's failed train
    state = runner.run_study(check(load_study(write(tmp_path), scale="tiny")))
    assert CALLS == [f"demo/c:{out}/c/train"]
    assert state["arms"]["a"]["steps"][1]["state"] == "skipped"

    CALLS.clear()  # a changed config is a new fingerprint: that step runs again, the rest does not
    changed = STUDY.replace('"${{model}} plain"', '"${{model}} plain v2"')
    runner.run_study(check(load_study(write(tmp_path, changed), scale="tiny")))
    assert sorted(CALLS) == [f"demo/a:{out}/a/train", f"demo/c:{out}/c/train"]


def test_cli_exit_status_says_an_arm_failed(tmp_path, fake_steps, capsys):
    from argparse import Namespace

    from raypipe.commands.run import _run_study

    args = Namespace(job=str(write(tmp_path)), scale="tiny", check=False, address=None)
    assert _run_study(args) == 1  # arm c fails; a and b still ran
    assert "arm c FAILED: RuntimeError: boom in train" in capsys.readouterr().out
    args.check = True
    assert _run_study(args) == 0
    assert "ok (study demo, tiny scale: 3 arms, 4 distinct steps)"  # prep once + 3 trains in capsys.readouterr().out


def test_a_failed_shared_step_fails_each_arm_once(tmp_path, fake_steps):
    text = STUDY.replace('rows: "${{count}}"}}', 'rows: "${{count}}", fail: true}}')
    state = runner.run_study(check(load_study(write(tmp_path, text), scale="tiny")))
    assert all(a["status"] == "failed" for a in state["arms"].values())
    assert "shared step prep failed" in state["arms"]["b"]["error"]
    assert CALLS == [f"demo/a:{tmp_path}/out/shared/prep"]  # not retried by arms b and c


def check(study):
    check_study(study)
    return study


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("overrides: {{train: {{fail: true}}}}", "overrides: {{trian: {{fail: true}}}}"),
     "study.arms[2].overrides.trian: no step named 'trian'"),
    (lambda t: t.replace('"${{model}} plain"', '"${{modle}} plain"'), "${modle}: no such var"),
    (lambda t: t.replace("  compare:", "  colour: red\n  compare:"), "study.colour: unknown key"),
    (lambda t: t.replace("[[a, b]]", "[[a, z]]"), "study.compare[0]: expected a pair of arm names"),
    (lambda t: t.replace('"${{out}}/${{arm}}/train"', '"${{out}}/train"'), "write"),
    (lambda t: t.replace("ast_summary: 85.25", "ast_summary: high"), "study.arms[0].paper.ast_summary"),
    (lambda t: t.replace("- name: c\n", "- name: ..\n"), "study.arms[2].name: '..': arm names are unique"),
    (lambda t: t.replace("- name: c\n", "- name: a\n"), "study.arms[2].name: 'a': arm names are unique"),
    (lambda t: t.replace("  name: demo\n", "  name: demo\n  max_concurrent_arms: 0\n"), "study.max_concurrent_arms: expected a whole number >= 1"),
])
def test_bad_study_file_names_file_and_field(tmp_path, fake_steps, edit, message):
    path = write(tmp_path, edit(STUDY))
    with pytest.raises(ConfigError) as exc:
        load_study(path, scale="tiny")
    assert message in str(exc.value) and str(path) in str(exc.value)
    assert len(exc.value.problems) == len(set(exc.value.problems))  # a base step's problem once, not per arm


def test_bad_step_config_and_unknown_scale(tmp_path, fake_steps):
    with pytest.raises(ConfigError, match=r"arms\.a\.steps\.prep\.make.*rows"):
        check_study(load_study(write(tmp_path, STUDY.replace('rows: "${{count}}"', "rows: many")), scale="tiny"))
    with pytest.raises(RaypipeError, match="no scale 'huge'"):
        load_study(write(tmp_path), scale="huge")


def test_cli_bad_study_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("study:\n  name: x\n  out: runs/x\n  steps: []\n  arms: [{name: a, paper: {ast: 1}}]\n")
    r = subprocess.run([sys.executable, "-m", "raypipe.cli", "run", str(path), "--check"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert r.stderr.startswith("raypipe: error:") and f"{path}:5: study.arms[0].paper.ast" in r.stderr
    assert "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "raypipe.cli", "run", "jobs/paper/table2.yaml", "--check", "--scale", "tiny"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "ok (study table2, tiny scale: 6 arms, 17 distinct steps)" in r.stdout
    job = ROOT / "jobs" / "quickstart.yaml"
    r = subprocess.run([sys.executable, "-m", "raypipe.cli", "run", str(job), "--check", "--scale", "tiny"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "--scale is for study files" in r.stderr


def test_paper_study_files_check_at_both_scales():
    assert {p.name for p in PAPER} == {"table1.yaml", "table2.yaml", "table3.yaml", "cot.yaml"}
    for path in PAPER:
        assert is_study_file(path)
        for scale in (None, "tiny"):
            study = load_study(path, scale=scale)
            try:
                check_study(study)  # `raypipe run --check` does exactly this
            except ConfigError as exc:
                # table1's MT-Bench questions (FastChat's question.jsonl) are not fetched by
                # name: at full scale the check says where to put them, and nothing else
                assert path.name == "table1.yaml" and scale is None
                assert all("data/paper/mt_bench/question.jsonl: no such file" in p for p in exc.problems)
            assert len(study.arms) >= 2 and study.compare
            full = scale is None
            train = [s for s in study.arms[0].steps if s.kind == "train_sft"][0]
            assert (train.raw["model"] == "MediaTek-Research/Breeze-7B-Instruct-v1_0") == full
    assert not is_study_file(ROOT / "jobs" / "quickstart.yaml")


def test_tiny_tc_data_is_the_zh_tw_subset_of_the_shipped_samples():
    data = ROOT / "raypipe" / "data"
    shipped = set((data / "samples.jsonl").read_text().splitlines())
    tc = (data / "fc_zhtw.jsonl").read_text().splitlines()
    assert tc and all(line in shipped and json.loads(line)["lang"] == "zh-TW" for line in tc)
    assert len(tc) == sum(json.loads(line)["lang"] == "zh-TW" for line in shipped)


PLAN_STUDY = """\
study:
  name: plan
  out: {out}
  max_concurrent_arms: 2
  steps:
    - {{name: prep, make: {{out: "${{out}}/shared/prep"}}}}
    - {{name: own, make: {{out: "${{out}}/${{arm}}/own"}}}}
    - {{name: mix, make: {{out: "${{out}}/shared/mix"}}}}
    - {{name: train, make: {{out: "${{out}}/${{arm}}/train"}}}}
    - {{name: eval, make: {{out: "${{out}}/${{arm}}/eval"}}}}
  arms:
    - name: a
    - name: b
    - name: c
      overrides: {{mix: null}}
"""


def test_plan_runs_shared_steps_and_their_prerequisites_in_the_parent_and_tails_per_arm(tmp_path, fake_steps):
    study = load_study(write(tmp_path, PLAN_STUDY))
    assert study.max_concurrent_arms == 2
    parent, tails = runner.plan(study)
    # prep is in every arm; mix in a and b, after each arm's own (unshared) step: that step runs first, here
    assert [(arm, study.arms["abc".index(arm)].steps[i].name) for arm, i in parent] == [
        ("a", "prep"), ("a", "own"), ("a", "mix"), ("b", "own")]
    names = {a.name: [s.name for s in a.steps] for a in study.arms}
    assert {arm: [names[arm][i] for i in idx] for arm, idx in tails.items()} == {
        "a": ["train", "eval"], "b": ["train", "eval"], "c": ["own", "train", "eval"]}
    # the sequential study above: prep shared by all three, train per arm
    parent, tails = runner.plan(load_study(write(tmp_path), scale="tiny"))
    assert parent == [("a", 0)] and tails == {"a": [1], "b": [1], "c": [1]}


def test_concurrent_arms_fan_out_to_arm_drivers_and_a_failed_driver_fails_only_its_arm(tmp_path, fake_steps,
                                                                                       monkeypatch, capsys):
    """The parent's side of max_concurrent_arms > 1, with the arm drivers run in process (the
    real processes and Ray are in tests/integration/test_study_e2e.py)."""
    import types

    import ray

    path = write(tmp_path, STUDY.replace("  name: demo\n", "  name: demo\n  max_concurrent_arms: 2\n"))
    study = check(load_study(path, scale="tiny"))
    launched, live = [], []

    class FakeDriver:  # `raypipe run STUDY --arm NAME --address A --scale tiny`, run here
        def __init__(self, cmd, stdout, stderr, env):
            arm = cmd[cmd.index("--arm") + 1]
            assert cmd[cmd.index("--address") + 1] == env["RAY_ADDRESS"] == "10.0.0.1:6379"
            assert cmd[cmd.index("--scale") + 1] == "tiny"
            live.append(arm)
            launched.append((arm, len(live)))
            self.pid, self.arm = 1000 + len(launched), arm
            if arm == "b":  # killed before it recorded a result
                self.returncode = 137
            else:
                child = runner.run_study(check(load_study(path, scale="tiny")), only_arm=arm)
                self.returncode = 0 if child["arms"][arm]["status"] == "done" else 1

        def poll(self):
            live.remove(self.arm)
            return self.returncode

    monkeypatch.setattr(runner.subprocess, "Popen", FakeDriver)
    monkeypatch.setattr(runner.time, "sleep", lambda s: None)
    monkeypatch.setattr(ray, "get_runtime_context", lambda: types.SimpleNamespace(gcs_address="10.0.0.1:6379"))
    state = runner.run_study(study)
    assert [a for a, _ in launched] == ["a", "b", "c"] and max(n for _, n in launched) == 2  # at most 2 at once
    arms = state["arms"]
    assert arms["a"]["status"] == "done" and [s["state"] for s in arms["a"]["steps"]] == ["ran", "ran"]
    assert arms["b"]["status"] == "failed" and "exited with code 137" in arms["b"]["error"]
    assert arms["c"]["status"] == "failed" and "boom in train" in arms["c"]["error"]
    assert json.loads((tmp_path / "out" / "study.json").read_text())["arms"]["c"]["status"] == "failed"
    ran = [json.loads(x) for x in (tmp_path / "out" / ".study" / "runs.jsonl").read_text().splitlines()]
    assert [(r["arm"], r["step"]) for r in ran] == [("a", "prep"), ("a", "train")]  # prep once, in the parent
    outp = capsys.readouterr().out
    assert "arm a: started in its own driver" in outp and "arm b: failed: the arm's driver exited with code 137" in outp
