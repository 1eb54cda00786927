"""In process (no Ray), with packing: a run killed mid-epoch and resumed from its checkpoint
trains exactly the rows of an uninterrupted run at every optimizer step, and both follow the
plan that Ray Train workers follow too (tests/integration/test_train_sft.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from raypipe.testing.samples import first_call_samples

pytestmark = pytest.mark.integration


def config(tmp_path, out: str, **extra) -> dict:
    data = tmp_path / "data.jsonl"
    if not data.exists():
        data.write_text("".join(json.dumps(s.to_dict()) + "\n" for s in first_call_samples(4)), encoding="utf-8")
    return {
        "model": "tiny", "tiny_model": {"hidden": 32, "layers": 1}, "out": str(tmp_path / out),
        "data": [{"path": str(data), "kind": "samples", "ratio": 6}],
        "num_workers": 0, "global_batch_size": 4, "micro_batch_size": 2, "max_seq_len": 1024,
        "epochs": 3, "lr": 1e-3, "warmup_steps": 1, "checkpoint_every": 3, "vllm_export": False, **extra,
    }


def train(tmp_path, cfg: dict) -> subprocess.CompletedProcess:
    path = tmp_path / f"{Path(cfg['out']).name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    raypipe = Path(sys.executable).parent / "raypipe"
    return subprocess.run([str(raypipe), "train", "sft", str(path)], capture_output=True, text=True, timeout=1200)


def history(cfg: dict) -> list[dict]:
    return json.loads(Path(cfg["out"], "metrics.json").read_text())["steps"]


def test_killed_and_resumed_run_trains_the_rows_of_the_uninterrupted_run(tmp_path):
    from raypipe.train.plan import TrainPlan, rows_digest

    whole = config(tmp_path, "whole")
    assert train(tmp_path, whole).returncode == 0
    killed = config(tmp_path, "killed", kill_at_step=5)
    first = train(tmp_path, killed)
    assert first.returncode == 137, first.stderr[-2000:]  # the fault drill killed the process
    assert not Path(killed["out"], "metrics.json").exists()
    second = train(tmp_path, killed)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resumed at step 3" in second.stdout

    a, b = history(whole), history(killed)
    assert json.loads(Path(killed["out"], "summary.json").read_text())["resumed_from_steps"] == [3]
    assert len(a) == len(b) >= 6 and [h["step"] for h in b] == list(range(1, len(a) + 1))
    assert [h["rows_sha"] for h in b] == [h["rows_sha"] for h in a]
    plan = TrainPlan.load(Path(whole["out"]) / "plan")
    assert plan.pack_len == 1024 and plan.num_units < len(plan.item_id), "rows are packed"
    per_epoch = len(a) // 3
    assert [h["rows_sha"] for h in a] == [rows_digest(plan.step_ids(e, s, 0, 4))
                                          for e in range(3) for s in range(per_epoch)]
    # the steps after the restart also continue the optimizer: same loss as the whole run
    assert b[-1]["loss"] == pytest.approx(a[-1]["loss"], rel=1e-3)
