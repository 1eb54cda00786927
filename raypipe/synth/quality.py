"""Quality report of a multi-turn synthesis run (ToolFlow's measures, plus what was lost).

Counted from the samples and rejects the run wrote: turns per dialog, calls per turn, tools per
dialog, rejected share with reasons grouped, diversity (distinct tool combinations, distinct
first user turns) and the repairs the validator forced. Optionally an LLM judge scores each
dialog's naturalness and coherence from 1 to 5 (`make_judge_program`; mean and spread reported).
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from typing import Any, Iterable

from raypipe.schema import Sample
from raypipe.synth.agents import transcript

JUDGE_SYSTEM = (
    "You rate a synthetic conversation between a user and an assistant that calls functions. "
    "Naturalness: does the user sound like a real person, and does the assistant respond as a "
    "good assistant would? Coherence: do the turns follow from each other and use earlier "
    "results sensibly? Score each from 1 (poor) to 5 (excellent). Reply with one JSON object and "
    'nothing else: {"naturalness": <1-5>, "coherence": <1-5>}.'
)


def _reason_class(reason: str) -> str:
    """Group reasons that differ only in numbers and quoted values."""
    reason = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", reason)
    return re.sub(r"\d+", "N", reason)[:160]


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"mean": 0.0, "min": 0.0, "max": 0.0}
    return {"mean": round(statistics.fmean(values), 3), "min": min(values), "max": max(values)}


def quality_report(samples: Iterable[Sample], rejects: list[dict[str, Any]], attempted: int,
                   judge_scores: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One pass over `samples` (a generator is fine: shards stream through)."""
    user_turns, calls_per_turn, tools_per_dialog, combos, firsts = [], [], [], set(), set()
    repairs = planned_turns = plan_followed = 0
    for s in samples:
        users = [m for m in s.messages if m.role == "user"]
        user_turns.append(len(users))
        called = [c.name for c in s.tool_calls()]
        calls_per_turn.append(len(called) / max(len(users), 1))
        tools_per_dialog.append(len(set(called)))
        combos.add(tuple(sorted(set(called))))
        if users:
            firsts.add(" ".join((users[0].content or "").lower().split()))
        for t in s.meta.get("turns", []):  # ToolFlow bookkeeping
            repairs += t.get("repairs", 0)
            if t.get("planned"):
                planned_turns += 1
                plan_followed += int(set(t["planned"]) <= set(t.get("called", [])))
    n = len(user_turns)
    reasons = Counter(_reason_class(str(r.get("reason", ""))) for r in rejects)
    report: dict[str, Any] = {
        "attempted": attempted,
        "produced": n,
        "rejected": len(rejects),
        "counts_add_up": n + len(rejects) == attempted,
        "rejected_share": round(len(rejects) / attempted, 4) if attempted else 0.0,
        "reject_reasons": dict(reasons.most_common(20)),
        "turns_per_dialog": _stats(user_turns),
        "calls_per_turn": _stats(calls_per_turn),
        "tools_per_dialog": _stats(tools_per_dialog),
        "distinct_tool_combinations": len(combos),
        "distinct_tool_combinations_share": round(len(combos) / n, 4) if n else 0.0,
        "distinct_first_user_turns": len(firsts),
        "distinct_first_user_turns_share": round(len(firsts) / n, 4) if n else 0.0,
    }
    if planned_turns:
        report["repairs"] = repairs
        report["plan_followed_share"] = round(plan_followed / planned_turns, 4)
    if judge_scores:
        for key in ("naturalness", "coherence"):
            report[f"judge_{key}"] = _stats([float(j[key]) for j in judge_scores])
        report["judged"] = len(judge_scores)
    return report


def report_markdown(report: dict[str, Any], title: str) -> str:
    lines = [f"# {title} quality report", "", "| measure | value |", "|---|---|"]
    for key, value in report.items():
        if isinstance(value, dict) and set(value) == {"mean", "min", "max"}:
            value = f"mean {value['mean']} (min {value['min']}, max {value['max']})"
        elif isinstance(value, dict):
            value = "; ".join(f"{k} x{v}" for k, v in value.items()) or "-"
        lines.append(f"| {key} | {value} |")
    return "\n".join(lines) + "\n"


def judge_inputs(samples: list[Sample]) -> list[dict[str, Any]]:
    return [{"id": s.id, "transcript": transcript(s.messages)} for s in samples]


def make_judge_program():
    def check(obj: Any) -> None:
        for key in ("naturalness", "coherence"):
            v = obj.get(key) if isinstance(obj, dict) else None
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 1 <= v <= 5:
                raise ValueError(f'"{key}" must be a number from 1 to 5')

    async def program(row: dict[str, Any], client) -> dict[str, Any]:
        got = await client.chat_json([
            {"role": "system", "content": JUDGE_SYSTEM},
            {"role": "user", "content": f"CONVERSATION:\n{row['transcript']}"},
        ], validate=check)
        return {"id": row["id"], "naturalness": float(got["naturalness"]),
                "coherence": float(got["coherence"])}

    return program


def write_report(report: dict[str, Any], out_dir, title: str) -> None:
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    (out / "quality.md").write_text(report_markdown(report, title))
