"""Gold replay: each task's gold actions on a fresh database, in order.

The final database's hash is the DB reward's target (an episode passes DB when its own final
database hashes the same). A gold action may fail on purpose (a user that does not exist): its
error answer is recorded and the replay goes on, as in the benchmark.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from raypipe.agent.env import Domain
from raypipe.agent.tasks import Task


def replay_task(domain: Domain, task: Task) -> dict:
    env = domain.new_env()
    responses = [env.call(a.name, a.arguments).to_dict() for a in task.actions]
    return {"task_id": task.id, "final_db_sha256": env.db_sha256(), "responses": responses}


def gold_hashes(domain: Domain, tasks: Iterable[Task]) -> dict[str, str]:
    return {t.id: replay_task(domain, t)["final_db_sha256"] for t in tasks}


def write_replay(domain: Domain, tasks: list[Task], out: str | Path, log=print) -> dict:
    """One JSON line per task, in task order; written to a temporary file then renamed, so a
    reader never sees half a file. Returns counts for the log."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    errors = calls = 0
    with tmp.open("w", encoding="utf-8") as f:
        for i, task in enumerate(tasks, 1):
            row = replay_task(domain, task)
            calls += len(row["responses"])
            errors += sum(r["error"] for r in row["responses"])
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            if i % 25 == 0:
                log(f"replayed {i}/{len(tasks)} tasks")
    tmp.replace(out)
    return {"tasks": len(tasks), "tool_calls": calls, "error_answers": errors, "out": str(out)}
