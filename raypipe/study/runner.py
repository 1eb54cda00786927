"""Run a study's arms: shared steps once, every step resumable, a failed arm reported.

Under OUT (the study's `out`):

    study.json              the arms, their steps (fingerprint, shared), status and error,
                            the paper's figures, where each arm's evaluations are
    .study/done/FP.json     one record per finished step (its fingerprint FP): a re-run skips it
    .study/runs.jsonl       one line per step actually run (the test of "shared steps ran once")

Arms run one after another (`max_concurrent_arms: 1`). Why not concurrently: each arm's
heavy steps (Ray Train, Ray Data inference) already spread over the cluster within the
resources their configs declare, and the step functions were written for one job per driver
(process-wide heartbeat, Ray Train controller, model caches); running two in one driver's
threads is not something their tests cover, and on the 2-core machines here it would only
slow both arms down.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

from raypipe.study.spec import Arm, Study

EVAL_KINDS = {"eval_bfcl": "bfcl", "eval_mtbench": "mtbench"}


def run_study(study: Study, address: str | None = None) -> dict:
    from raypipe.commands import all_steps
    from raypipe.console import heartbeat
    from raypipe.jobs import init_ray
    from raypipe.registry import JobContext

    from raypipe.study.spec import check_study

    if any(s.config is None for a in study.arms for s in a.steps):
        check_study(study)  # typed configs (and a bad path fails now, not after arm 1's training)
    registry = all_steps()
    out = Path(study.out)
    (out / ".study" / "done").mkdir(parents=True, exist_ok=True)
    init_ray(study.ray, address)
    state = _initial_state(study)
    _write_state(out, state)
    failed_steps: dict[str, str] = {}  # fingerprint -> error, so arms sharing a failed step don't retry it
    print(f"[raypipe] study {study.name!r} ({study.scale} scale): {len(study.arms)} arm(s)", flush=True)
    for arm in study.arms:
        ctx = JobContext(name=f"{study.name}/{arm.name}", job_file=study.file)
        entry = state["arms"][arm.name]
        entry["status"] = "running"
        _write_state(out, state)
        try:
            for i, s in enumerate(arm.steps):
                label = f"{arm.name}/{s.name}"
                done = out / ".study" / "done" / f"{s.fingerprint}.json"
                if s.fingerprint in failed_steps:
                    raise _SharedStepFailed(f"shared step {s.name} failed in an earlier arm: {failed_steps[s.fingerprint]}")
                if done.exists():
                    print(f"[raypipe] step {label}: done before (fingerprint {s.fingerprint}), skipped", flush=True)
                    entry["steps"][i]["state"] = "skipped"
                    continue
                print(f"[raypipe] step {label} ({s.kind}) ...", flush=True)
                started = time.monotonic()
                try:
                    with heartbeat(f"step {label}"):
                        summary = registry[s.kind].run(s.config, ctx) or {}
                except Exception as exc:
                    failed_steps[s.fingerprint] = _one_line(exc)
                    raise
                took = round(time.monotonic() - started, 1)
                _append(out / ".study" / "runs.jsonl", {"fingerprint": s.fingerprint, "step": s.name,
                                                        "kind": s.kind, "arm": arm.name, "seconds": took})
                _write_json(done, {"step": s.name, "kind": s.kind, "arm": arm.name, "config": s.raw,
                                   "summary": summary, "seconds": took})
                entry["steps"][i]["state"] = "ran"
                print(f"[raypipe] step {label} done in {took}s: {json.dumps(summary, default=str)}", flush=True)
            entry["status"] = "done"
        except Exception as exc:  # a failed arm is reported; the others still run
            entry["status"] = "failed"
            entry["error"] = _one_line(exc)
            if not isinstance(exc, _SharedStepFailed):
                print(traceback.format_exc(), flush=True)
            print(f"[raypipe] arm {arm.name} FAILED: {entry['error']}", flush=True)
        _write_state(out, state)
        print(f"[raypipe] arm {arm.name}: {entry['status']}", flush=True)
        _fault_after_arm(arm)
    failed = [a for a, e in state["arms"].items() if e["status"] != "done"]
    print(f"[raypipe] study {study.name!r} finished: {len(study.arms) - len(failed)} arm(s) done"
          + (f", failed: {', '.join(failed)}" if failed else "")
          + f"; `raypipe report --study {study.out}` prints the table", flush=True)
    return state


class _SharedStepFailed(Exception):
    pass


def _initial_state(study: Study) -> dict:
    arms: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for arm in study.arms:
        for s in arm.steps:
            counts[s.fingerprint] = counts.get(s.fingerprint, 0) + 1
    for arm in study.arms:
        arms[arm.name] = {
            "row": arm.row, "paper": arm.paper, "status": "pending", "error": None,
            "steps": [{"name": s.name, "kind": s.kind, "fingerprint": s.fingerprint,
                       "shared": counts[s.fingerprint] > 1, "state": "pending"} for s in arm.steps],
            "evals": _evals(arm),
        }
    return {"study": study.name, "file": study.file, "scale": study.scale, "description": study.description,
            "paper": study.paper, "metrics": study.metrics, "compare": [list(c) for c in study.compare],
            "arms": arms}


def _evals(arm: Arm) -> dict[str, str]:
    """Where the arm's evaluations write (the report reads REPORT.json / MTBENCH.json there)."""
    return {EVAL_KINDS[s.kind]: s.raw["out"] for s in arm.steps if s.kind in EVAL_KINDS and "out" in s.raw}


def _fault_after_arm(arm: Arm) -> None:
    """Test hook: simulate the driver being killed between arms (kill -9: no cleanup, no
    final state), to test that a re-run resumes without redoing the finished arm."""
    if os.environ.get("RAYPIPE_STUDY_KILL_AFTER_ARM") == arm.name:
        print(f"[raypipe] RAYPIPE_STUDY_KILL_AFTER_ARM={arm.name}: exiting as if killed", flush=True)
        os._exit(137)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


def _append(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")  # written whole, then renamed: a kill leaves no half file
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _write_state(out: Path, state: dict) -> None:
    _write_json(out / "study.json", state)
