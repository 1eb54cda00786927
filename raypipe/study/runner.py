"""Run a study's arms: shared steps once, every step resumable, a failed arm reported.

Under OUT (the study's `out`):

    study.json              the arms, their steps (fingerprint, shared), status and error,
                            the paper's figures, where each arm's evaluations are
    .study/done/FP.json     one record per finished step (its fingerprint FP): a re-run skips it
    .study/runs.jsonl       one line per step actually run (the test of "shared steps ran once")
    .study/logs/ARM.log     an arm driver's output (max_concurrent_arms > 1)
    .study/arms/ARM.json    an arm driver's result, merged into study.json

`max_concurrent_arms: 1` (the default): arms run one after another in this driver. Greater:
the steps shared by two or more arms (and their prerequisites, see `plan`) run here, then each
arm's remaining steps run in a driver process of its own (`raypipe run STUDY --arm NAME`) on
the same Ray cluster, at most max_concurrent_arms at once. One job per driver process, as the
step functions assume (process-wide heartbeat, Ray Train controller, model caches); the
cluster's resources, requested by each arm's own train/eval configs, bound what runs at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from raypipe.study.spec import Arm, Study

EVAL_KINDS = {"eval_bfcl": "bfcl", "eval_mtbench": "mtbench"}


def plan(study: Study) -> tuple[list[tuple[str, int]], dict[str, list[int]]]:
    """Which steps the parent driver runs, and which each arm's own driver runs.

    The parent runs every step whose fingerprint appears in two or more arms, with its
    prerequisites: for each arm, its steps up to and including its last shared step, in arm
    order, each distinct fingerprint once. Each arm's driver then runs the rest (its tail,
    which by construction holds no shared step). Returns ([(arm, step index)], {arm: [index]})."""
    counts: dict[str, int] = {}
    for arm in study.arms:
        for s in arm.steps:
            counts[s.fingerprint] = counts.get(s.fingerprint, 0) + 1
    parent: list[tuple[str, int]] = []
    seen: set[str] = set()
    tails: dict[str, list[int]] = {}
    for arm in study.arms:
        last = max((i for i, s in enumerate(arm.steps) if counts[s.fingerprint] > 1), default=-1)
        for i in range(last + 1):
            if arm.steps[i].fingerprint not in seen:
                seen.add(arm.steps[i].fingerprint)
                parent.append((arm.name, i))
        tails[arm.name] = list(range(last + 1, len(arm.steps)))
    return parent, tails


def run_study(study: Study, address: str | None = None, only_arm: str | None = None) -> dict:
    """Run the study. `max_concurrent_arms: 1`: every arm in this driver, one after another.
    More: the shared steps here (see `plan`), then each arm's tail in its own driver process
    (`raypipe run STUDY --arm NAME`), at most max_concurrent_arms at once, all on this Ray
    cluster. `only_arm` is that child's side: run one arm, write OUT/.study/arms/ARM.json."""
    from raypipe.commands import all_steps
    from raypipe.jobs import init_ray

    from raypipe.study.spec import check_study

    if any(s.config is None for a in study.arms for s in a.steps):
        check_study(study)  # typed configs (and a bad path fails now, not after arm 1's training)
    registry = all_steps()
    out = Path(study.out)
    (out / ".study" / "done").mkdir(parents=True, exist_ok=True)
    init_ray(study.ray, address)
    state = _initial_state(study)
    failed_steps: dict[str, str] = {}  # fingerprint -> error, so arms sharing a failed step don't retry it
    if only_arm is not None:
        (arm,) = [a for a in study.arms if a.name == only_arm]
        entry = state["arms"][arm.name]
        _run_arm(study, arm, range(len(arm.steps)), entry, registry, out, failed_steps)
        (out / ".study" / "arms").mkdir(parents=True, exist_ok=True)
        _write_json(out / ".study" / "arms" / f"{arm.name}.json", entry)
        return state
    _write_state(out, state)
    concurrent = study.max_concurrent_arms
    print(f"[raypipe] study {study.name!r} ({study.scale} scale): {len(study.arms)} arm(s)"
          + (f", up to {concurrent} at once" if concurrent > 1 else ""), flush=True)
    if concurrent <= 1:
        for arm in study.arms:
            _run_arm(study, arm, range(len(arm.steps)), state["arms"][arm.name], registry, out, failed_steps)
            _write_state(out, state)
            print(f"[raypipe] arm {arm.name}: {state['arms'][arm.name]['status']}", flush=True)
            _fault_after_arm(arm)
    else:
        _run_concurrently(study, state, registry, out, failed_steps, address)
    failed = [a for a, e in state["arms"].items() if e["status"] != "done"]
    print(f"[raypipe] study {study.name!r} finished: {len(study.arms) - len(failed)} arm(s) done"
          + (f", failed: {', '.join(failed)}" if failed else "")
          + f"; `raypipe report --study {study.out}` prints the table", flush=True)
    return state


def _run_arm(study: Study, arm: Arm, indices, entry: dict, registry, out: Path, failed_steps: dict) -> bool:
    """Run (or skip, when done before) the arm's steps at `indices`; False when one failed
    (then the arm is marked failed with a one-line error)."""
    from raypipe.console import heartbeat
    from raypipe.registry import JobContext

    ctx = JobContext(name=f"{study.name}/{arm.name}", job_file=study.file)
    entry["status"] = "running"
    try:
        for i in indices:
            s = arm.steps[i]
            label = f"{arm.name}/{s.name}"
            done = out / ".study" / "done" / f"{s.fingerprint}.json"
            if s.fingerprint in failed_steps:
                raise _SharedStepFailed(f"shared step {s.name} failed in an earlier arm: {failed_steps[s.fingerprint]}")
            if done.exists():
                print(f"[raypipe] step {label}: done before (fingerprint {s.fingerprint}), skipped", flush=True)
                entry["steps"][i]["state"] = "skipped"
                continue
            print(f"[raypipe] step {label} ({s.kind}) ...", flush=True)
            started, wall = time.monotonic(), time.time()
            try:
                with heartbeat(f"step {label}"):
                    summary = registry[s.kind].run(s.config, ctx) or {}
            except Exception as exc:
                failed_steps[s.fingerprint] = _one_line(exc)
                raise
            took = round(time.monotonic() - started, 1)
            _append(out / ".study" / "runs.jsonl", {"fingerprint": s.fingerprint, "step": s.name,
                                                    "kind": s.kind, "arm": arm.name, "seconds": took,
                                                    "started": round(wall, 3), "finished": round(time.time(), 3),
                                                    "pid": os.getpid()})
            _write_json(done, {"step": s.name, "kind": s.kind, "arm": arm.name, "config": s.raw,
                               "summary": summary, "seconds": took})
            entry["steps"][i]["state"] = "ran"
            print(f"[raypipe] step {label} done in {took}s: {json.dumps(summary, default=str)}", flush=True)
        entry["status"] = "done"
        return True
    except Exception as exc:  # a failed arm is reported; the others still run
        entry["status"] = "failed"
        entry["error"] = _one_line(exc)
        if not isinstance(exc, _SharedStepFailed):
            print(traceback.format_exc(), flush=True)
        print(f"[raypipe] arm {arm.name} FAILED: {entry['error']}", flush=True)
        return False


def _run_concurrently(study: Study, state: dict, registry, out: Path, failed_steps: dict,
                      address: str | None) -> None:
    """Shared steps here, then one driver process per arm on the same Ray cluster."""
    import ray

    parent, tails = plan(study)
    arms = {a.name: a for a in study.arms}
    broken: set[str] = set()
    for name, i in parent:  # a failed shared step fails every arm that has it (marked below)
        if name not in broken and not _run_arm(study, arms[name], [i], state["arms"][name], registry, out, failed_steps):
            broken.add(name)
    _write_state(out, state)
    gcs = ray.get_runtime_context().gcs_address  # the children join this cluster
    logs = out / ".study" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    queue = []
    for arm in study.arms:
        entry = state["arms"][arm.name]
        bad = [s for s in arm.steps if s.fingerprint in failed_steps]
        if arm.name in broken or bad:
            entry["status"] = "failed"
            entry["error"] = entry["error"] or _one_line(_SharedStepFailed(
                f"shared step {bad[0].name} failed: {failed_steps[bad[0].fingerprint]}"))
            print(f"[raypipe] arm {arm.name} FAILED: {entry['error']}", flush=True)
        else:
            entry["status"] = "pending"
            queue.append(arm)
    _write_state(out, state)
    running: dict[str, tuple[Any, Any]] = {}
    try:
        _fan_out(study, state, out, queue, running, tails, logs, gcs)
    except BaseException:  # Ctrl-C or a crash here: the arm drivers are not left running
        for proc, _ in running.values():
            proc.terminate()
        raise


def _fan_out(study: Study, state: dict, out: Path, queue: list, running: dict, tails: dict,
             logs: Path, gcs: str) -> None:
    while queue or running:
        while queue and len(running) < study.max_concurrent_arms:
            arm = queue.pop(0)
            (out / ".study" / "arms" / f"{arm.name}.json").unlink(missing_ok=True)
            cmd = [sys.executable, "-m", "raypipe.cli", "run", study.file, "--arm", arm.name, "--address", gcs]
            if study.scale_arg is not None:
                cmd += ["--scale", study.scale_arg]
            log = open(logs / f"{arm.name}.log", "w", encoding="utf-8")
            running[arm.name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                  env={**os.environ, "RAY_ADDRESS": gcs}), log)
            state["arms"][arm.name]["status"] = "running"
            _write_state(out, state)
            print(f"[raypipe] arm {arm.name}: started in its own driver (pid {running[arm.name][0].pid}, "
                  f"log {logs / (arm.name + '.log')})", flush=True)
        time.sleep(0.5)
        for name, (proc, log) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[name]
            _collect(out, name, proc.returncode, tails[name], state["arms"][name], logs)
            _write_state(out, state)
            entry = state["arms"][name]
            print(f"[raypipe] arm {name}: {entry['status']}"
                  + (f": {entry['error']}" if entry["status"] != "done" else ""), flush=True)


def _collect(out: Path, name: str, rc: int, tail: list[int], entry: dict, logs: Path) -> None:
    """Merge an arm driver's result (OUT/.study/arms/ARM.json) into the study's state."""
    result = out / ".study" / "arms" / f"{name}.json"
    child = json.loads(result.read_text(encoding="utf-8")) if result.exists() else None
    if child is None:
        entry["status"] = "failed"
        entry["error"] = f"the arm's driver exited with code {rc} before recording a result (log: {logs / (name + '.log')})"
        return
    for i in tail:
        entry["steps"][i]["state"] = child["steps"][i]["state"]
    entry["status"], entry["error"] = child["status"], child["error"]
    if rc != 0 and entry["status"] == "done":
        entry["status"], entry["error"] = "failed", f"the arm's driver exited with code {rc}"


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
