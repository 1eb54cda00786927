"""An episode's reward: the product of the parts its task's `reward_basis` names.

- DB: the episode's final database hashes as the gold replay's does;
- COMMUNICATE: every `communicate_info` string is found in some agent message, by the
  benchmark's rule: case-insensitive substring of the message with its commas removed
  (so "1,234.50" in a message matches "1234.50"); no strings counts as 1;
- NL_ASSERTION: an LLM judge finds every `nl_assertions` entry met by the conversation; no
  assertions counts as 1 (and the judge is not asked).

Each part's verdict and reason are recorded; a part outside the basis is reported but does not
count. An episode that did not end by a stop (max steps, errors) gets 0, as in the benchmark.
"""

from __future__ import annotations

from typing import Any, Protocol

from raypipe.agent.episode import Episode
from raypipe.agent.tasks import Task


class Judge(Protocol):
    async def check(self, assertions: list[str], messages: list[dict]) -> list[dict]:
        """[{"assertion", "met": bool, "reason"}] in the order given."""


def communicate_checks(info: list[str], messages: list[dict]) -> list[dict]:
    texts = [m["content"] for m in messages
             if m["role"] == "assistant" and isinstance(m.get("content"), str) and m["content"].strip()]
    out = []
    for item in info:
        hit = next((t for t in texts if item.lower() in t.lower().replace(",", "")), None)
        out.append({"info": item, "met": hit is not None,
                    "reason": "found in an agent message" if hit is not None else "not communicated"})
    return out


async def score_episode(task: Task, episode: Episode, final_db_sha256: str, gold_sha256: str,
                        judge: Judge | None) -> dict[str, Any]:
    parts: dict[str, dict] = {}
    db_ok = final_db_sha256 == gold_sha256
    parts["DB"] = {"reward": float(db_ok), "final_db_sha256": final_db_sha256, "gold_db_sha256": gold_sha256}
    checks = communicate_checks(task.communicate_info, episode.messages)
    parts["COMMUNICATE"] = {"reward": float(all(c["met"] for c in checks)), "checks": checks}
    if "NL_ASSERTION" in task.reward_basis:
        parts["NL_ASSERTION"] = await _nl_part(task, episode, judge)
    for name, part in parts.items():
        part["in_basis"] = name in task.reward_basis
    if not episode.scored:
        return {"reward": 0.0, "parts": parts,
                "reason": f"episode ended by {episode.termination}: {episode.reason}".rstrip(": ")}
    reward = 1.0
    for name in task.reward_basis:
        reward *= parts[name]["reward"]
    failed = [n for n in task.reward_basis if parts[n]["reward"] < 1.0]
    return {"reward": reward, "parts": parts,
            "reason": "all parts met" if not failed else "failed: " + ", ".join(failed)}


async def _nl_part(task: Task, episode: Episode, judge: Judge | None) -> dict:
    if not task.nl_assertions:
        return {"reward": 1.0, "checks": [], "reason": "no assertions"}
    if not episode.scored:
        return {"reward": 0.0, "checks": [], "reason": "not judged: the episode did not end by a stop"}
    if judge is None:
        raise ValueError(f"task {task.id}: NL_ASSERTION needs a judge (configure `judge`)")
    checks = await judge.check(task.nl_assertions, episode.messages)
    return {"reward": float(all(c["met"] for c in checks)), "checks": checks}
