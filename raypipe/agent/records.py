"""The committed episodes, the run summary (pass^k, average reward) and the pass^k curve.

Episodes are rows of the committed dataset OUT/episodes (written by the LLM executor under the
commit contract, `raypipe.io.dataset`): one row per (task, trial), id `<task>#<trial>`, with
its messages and reward parts as JSON text (`raypipe.agent.stage.output_schema`). Everything
here reads that dataset through its commit records, never its files directly.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from raypipe.eval.passk import pass_at_k, pass_hat_k

SUMMARY_NAME = "AGENT.json"


def episode_id(task_id: str, trial: int) -> str:
    return f"{task_id}#{trial}"


def split_episode_id(episode: str) -> tuple[str, int]:
    task_id, trial = episode.rsplit("#", 1)
    return task_id, int(trial)


def committed_episodes(episodes_dir: str) -> tuple[dict[str, dict], dict[str, str]]:
    """({episode id: episode record}, {episode id: reject reason}) of the episodes dataset;
    both empty when nothing was committed yet."""
    from raypipe.agent.stage import from_row
    from raypipe.io import fs
    from raypipe.io.dataset import REJECTS, is_managed, read_committed

    if not fs.exists(episodes_dir) or not is_managed(episodes_dir):
        return {}, {}
    data = read_committed(episodes_dir)
    rejects = read_committed(episodes_dir, REJECTS)
    records = {r["id"]: from_row(r) for r in (data.to_pylist() if data is not None else [])}
    reasons = {r["id"]: r["reason"] for r in (rejects.to_pylist() if rejects is not None else [])}
    return records, reasons


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
    rejected = summary.get("rejected_episodes") or {}
    pending = [e for e in summary["missing_episodes"] if e not in rejected]
    if pending:
        lines.append(f"\n{len(pending)} episode(s) not finished (e.g. {pending[0]}): re-run the same "
                     "command to finish them")
    if rejected:
        first = next(iter(rejected))
        lines.append(f"\n{len(rejected)} episode(s) rejected (e.g. {first}: {rejected[first][:200]}): "
                     "re-run with --retry-rejects to play them again")
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
