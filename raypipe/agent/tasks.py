"""A domain directory on disk -> `Domain` and its tasks (tau2-bench's layout).

    DIR/db.json            the initial database
    DIR/tasks.json         the tasks (user scenario + evaluation criteria)
    DIR/split_tasks.json   optional: {split name: [task ids]}
    DIR/policy.md          the policy the agent must follow
    DIR/tools.json         the tools as OpenAI function specs

Every problem is a `RaypipeError` naming the file and the field. Only the retail domain has
tools in raypipe today; `DOMAINS` maps a domain name to its toolkit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raypipe.agent.env import Domain
from raypipe.errors import RaypipeError

REWARD_TYPES = ("DB", "COMMUNICATE", "NL_ASSERTION", "ENV_ASSERTION", "ACTION")
SUPPORTED_REWARDS = ("DB", "COMMUNICATE", "NL_ASSERTION")


@dataclass
class Action:
    name: str
    arguments: dict
    action_id: str = ""
    requestor: str = "assistant"


@dataclass
class Task:
    id: str
    user_scenario: dict  # {"persona": str | None, "instructions": dict | str}
    actions: list[Action]
    communicate_info: list[str] = field(default_factory=list)
    nl_assertions: list[str] = field(default_factory=list)
    reward_basis: list[str] = field(default_factory=lambda: ["DB", "COMMUNICATE"])
    description: dict | None = None


def _read_json(path: Path) -> Any:
    if not path.exists():
        raise RaypipeError(f"{path}: not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RaypipeError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None


def load_domain(directory: str | Path, name: str = "retail") -> Domain:
    from raypipe.agent.retail_model import SchemaError, normalize_db
    from raypipe.agent.retail_tools import MUTATING, TOOL_NAMES, RetailTools

    if name != "retail":
        raise RaypipeError(f"unknown domain {name!r}: raypipe implements the tools of 'retail'")
    directory = Path(directory)
    if not directory.is_dir():
        raise RaypipeError(f"{directory}: not a directory (expected db.json, tasks.json, policy.md, tools.json)")
    db_path = directory / "db.json"
    try:
        db = normalize_db(_read_json(db_path))
    except SchemaError as exc:
        raise RaypipeError(f"{db_path}: {exc}") from None
    specs = load_specs(directory / "tools.json", TOOL_NAMES)
    policy_path = directory / "policy.md"
    if not policy_path.exists():
        raise RaypipeError(f"{policy_path}: not found")
    return Domain(
        name=name,
        db_json=json.dumps(db, ensure_ascii=False),
        specs=specs,
        policy=policy_path.read_text(encoding="utf-8"),
        make_toolkit=RetailTools,
        mutating=MUTATING,
        source={"dir": str(directory)},
    )


def load_specs(path: Path, implemented: tuple[str, ...]) -> list[dict]:
    """The OpenAI function specs; every one must name an implemented tool (the whitelist)."""
    specs = _read_json(path)
    if not isinstance(specs, list):
        raise RaypipeError(f"{path}: expected a list of OpenAI function specs")
    out = []
    for i, spec in enumerate(specs):
        fn = spec.get("function") if isinstance(spec, dict) and spec.get("type") == "function" else spec
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise RaypipeError(f"{path}: [{i}]: expected {{'type': 'function', 'function': {{'name': ...}}}}")
        if fn["name"] not in implemented:
            raise RaypipeError(f"{path}: [{i}].function.name: {fn['name']!r} is not a tool of this domain "
                               f"(known: {', '.join(implemented)})")
        out.append({"type": "function", "function": fn})
    return out


def load_tasks(directory: str | Path, split: str | None = None, task_ids: list[str] | None = None) -> list[Task]:
    """tasks.json's tasks, optionally only those of `split` (from split_tasks.json) and/or
    `task_ids`, in the file's order."""
    directory = Path(directory)
    path = directory / "tasks.json"
    raw = _read_json(path)
    if not isinstance(raw, list):
        raise RaypipeError(f"{path}: expected a list of tasks")
    tasks = [_task(row, f"{path}: [{i}]") for i, row in enumerate(raw)]
    seen: set[str] = set()
    for t in tasks:
        if t.id in seen:
            raise RaypipeError(f"{path}: task id {t.id!r} appears twice")
        seen.add(t.id)
    if split is not None:
        splits = load_splits(directory)
        if split not in splits:
            raise RaypipeError(f"{directory / 'split_tasks.json'}: no split {split!r} (have: {', '.join(splits)})")
        wanted = set(splits[split])
        tasks = [t for t in tasks if t.id in wanted]
    if task_ids:
        missing = [i for i in task_ids if i not in seen]
        if missing:
            raise RaypipeError(f"{path}: no task with id {missing[0]!r}")
        wanted_ids = set(task_ids)
        tasks = [t for t in tasks if t.id in wanted_ids]
    return tasks


def load_splits(directory: str | Path) -> dict[str, list[str]]:
    path = Path(directory) / "split_tasks.json"
    raw = _read_json(path)
    if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
        raise RaypipeError(f"{path}: expected {{split name: [task ids]}}")
    return {k: [str(x) for x in v] for k, v in raw.items()}


def _task(row: Any, where: str) -> Task:
    if not isinstance(row, dict):
        raise RaypipeError(f"{where}: a task must be an object")
    if not isinstance(row.get("id"), (str, int)):
        raise RaypipeError(f"{where}.id: missing")
    where = f"{where} (task {row['id']})"
    if row.get("initial_state"):
        raise RaypipeError(f"{where}.initial_state: initial states are not supported yet (retail has none)")
    scenario = row.get("user_scenario")
    if not isinstance(scenario, dict) or not isinstance(scenario.get("instructions"), (dict, str)):
        raise RaypipeError(f"{where}.user_scenario.instructions: missing")
    criteria = row.get("evaluation_criteria") or {}
    if not isinstance(criteria, dict):
        raise RaypipeError(f"{where}.evaluation_criteria: must be an object")
    actions = []
    for j, a in enumerate(criteria.get("actions") or []):
        if not isinstance(a, dict) or not isinstance(a.get("name"), str) or not isinstance(a.get("arguments"), dict):
            raise RaypipeError(f"{where}.evaluation_criteria.actions[{j}]: needs 'name' and an 'arguments' object")
        requestor = a.get("requestor") or "assistant"
        if requestor != "assistant":
            raise RaypipeError(f"{where}.evaluation_criteria.actions[{j}].requestor: only 'assistant' is supported")
        actions.append(Action(a["name"], a["arguments"], str(a.get("action_id") or ""), requestor))
    basis = criteria.get("reward_basis") or ["DB", "COMMUNICATE"]
    for b in basis:
        if b not in SUPPORTED_REWARDS:
            raise RaypipeError(f"{where}.evaluation_criteria.reward_basis: {b!r} is not supported "
                               f"(supported: {', '.join(SUPPORTED_REWARDS)})")
    for key in ("communicate_info", "nl_assertions"):
        value = criteria.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise RaypipeError(f"{where}.evaluation_criteria.{key}: must be a list of strings")
    return Task(
        id=str(row["id"]), user_scenario=scenario, actions=actions,
        communicate_info=list(criteria.get("communicate_info") or []),
        nl_assertions=list(criteria.get("nl_assertions") or []),
        reward_basis=list(basis), description=row.get("description"),
    )
