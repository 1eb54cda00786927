"""Episode records on disk, the run summary (pass^k, average reward) and the pass^k curve.

    OUT/episodes/<task>__t<trial>.json   one finished episode: messages, tool calls, answers,
                                         termination, reward, each part's verdict and reason
    OUT/trajectories.jsonl               every finished episode of the run, in task/trial order
    OUT/AGENT.json                       the summary (what `raypipe report` reads)
    OUT/manifest.json                    what produced it (raypipe.eval.manifest)

An episode file is written once, whole (temporary file + rename), named by (task, trial): a
re-run skips the episodes that have one and runs the rest, and a retried Ray task rewrites the
same file with the same episode.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

from raypipe.eval.passk import pass_at_k, pass_hat_k

SUMMARY_NAME = "AGENT.json"


def episode_id(task_id: str, trial: int) -> str:
    return f"{task_id}#{trial}"


def episode_path(out: str | Path, task_id: str, trial: int) -> Path:
    return Path(out) / "episodes" / f"{quote(task_id, safe='')}__t{trial}.json"


def write_episode(out: str | Path, record: dict) -> Path:
    path = episode_path(out, record["task_id"], record["trial"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_episode(out: str | Path, task_id: str, trial: int) -> dict | None:
    path = episode_path(out, task_id, trial)
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def is_success(reward: float) -> bool:
    return abs(reward - 1.0) <= 1e-6  # tau-bench's rule


def summarize_run(records: list[dict], task_ids: list[str], trials: int) -> dict[str, Any]:
    """pass^k for k = 1..trials over the tasks whose trials all finished; the average reward
    over finished episodes; what is missing, by name."""
    by_task: dict[str, list[dict]] = {t: [] for t in task_ids}
    for r in records:
        by_task[r["task_id"]].append(r)
    complete = {t: rs for t, rs in by_task.items() if len(rs) == trials}
    missing = sorted(f"{t}#{i}" for t, rs in by_task.items() for i in set(range(trials)) - {r["trial"] for r in rs})
    counts = {t: (trials, sum(is_success(r["reward"]) for r in rs)) for t, rs in complete.items()}
    ks = list(range(1, trials + 1))
    pass_hat = {str(k): (sum(pass_hat_k(n, c, k) for n, c in counts.values()) / len(counts)) if counts else None
                for k in ks}
    pass_at = {str(k): (sum(pass_at_k(n, c, k) for n, c in counts.values()) / len(counts)) if counts else None
               for k in ks}
    rewards = [r["reward"] for r in records]
    parts: dict[str, list[float]] = {}
    for r in records:
        for name, part in r["reward_parts"].items():
            if part.get("in_basis"):
                parts.setdefault(name, []).append(part["reward"])
    return {
        "tasks": len(task_ids), "trials": trials, "episodes": len(records),
        "tasks_complete": len(complete), "missing_episodes": missing,
        "avg_reward": sum(rewards) / len(rewards) if rewards else None,
        "pass_hat_k": pass_hat, "pass_at_k": pass_at,
        "part_pass_rate": {name: sum(v) / len(v) for name, v in sorted(parts.items())},
        "terminations": dict(Counter(r["termination"] for r in records)),
        "per_task": {t: {"trials": len(rs), "successes": sum(is_success(r["reward"]) for r in rs),
                         "avg_reward": sum(r["reward"] for r in rs) / len(rs) if rs else None}
                     for t, rs in by_task.items()},
    }


def markdown_summary(summary: dict, name: str = "") -> str:
    lines = [f"{name + ': ' if name else ''}{summary['tasks_complete']}/{summary['tasks']} tasks x "
             f"{summary['trials']} trials, {summary['episodes']} episodes; average reward "
             + ("-" if summary["avg_reward"] is None else f"{summary['avg_reward']:.4f}"),
             "", "| k | pass^k | pass@k |", "|---:|---:|---:|"]
    for k, value in summary["pass_hat_k"].items():
        at = summary["pass_at_k"][k]
        lines.append(f"| {k} | {'-' if value is None else f'{value:.4f}'} | {'-' if at is None else f'{at:.4f}'} |")
    if summary["missing_episodes"]:
        lines.append(f"\n{len(summary['missing_episodes'])} episode(s) not finished (e.g. "
                     f"{summary['missing_episodes'][0]}): re-run the same command to finish them")
    return "\n".join(lines)


def plot_passk(runs: list[tuple[str, dict]], path: str | Path) -> Path:
    """The pass^k curve (k = 1..n) of each run, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    most = max((len(s["pass_hat_k"]) for _, s in runs), default=1)
    ax.set_xticks(range(1, most + 1))
    for name, summary in runs:
        points = [(int(k), v) for k, v in summary["pass_hat_k"].items() if v is not None]
        if points:
            ks, values = zip(*sorted(points))
            ax.plot(ks, values, marker="o", label=name)
    ax.set_xlabel("k (trials that must all succeed)")
    ax.set_ylabel("pass^k")
    ax.set_ylim(0, 1.05)
    ax.set_title("pass^k (tau-bench)")
    ax.grid(alpha=0.3)
    if runs:
        ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_passk_report(runs: list[tuple[str, dict]], out_dir: str | Path) -> Path:
    """`raypipe report`'s agent section: a pass^k table per run appended to report.md, and the
    pass^k curves of all runs in passk.png."""
    out = Path(out_dir)
    sections = ["", "## Agent episodes (pass^k)", ""] + [markdown_summary(s, name) + "\n" for name, s in runs]
    with (out / "report.md").open("a", encoding="utf-8") as f:
        f.write("\n".join(sections))
    return plot_passk(runs, out / "passk.png")
