"""pass^k and pass@k over repeated trials (tau-bench's reliability metric beside the usual one).

For a task tried n times with c successes, the unbiased estimators are

    pass^k = C(c, k) / C(n, k)          (all k of k random trials succeed)
    pass@k = 1 - C(n - c, k) / C(n, k)  (at least one of k random trials succeeds)

and the benchmark figure is the mean over tasks. Every task must have at least k trials:
estimating from fewer would be guessing, so it is an error.
"""

from __future__ import annotations

import json
from collections import defaultdict
from math import comb
from pathlib import Path
from typing import Iterable

from raypipe.errors import RaypipeError
from raypipe.eval.bfcl_data import read_jsonl


def pass_hat_k(n: int, c: int, k: int) -> float:
    _check(n, c, k)
    return comb(c, k) / comb(n, k)  # comb(c, k) == 0 when c < k


def pass_at_k(n: int, c: int, k: int) -> float:
    _check(n, c, k)
    return 1.0 - comb(n - c, k) / comb(n, k)


def _check(n: int, c: int, k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not 0 <= c <= n:
        raise ValueError(f"successes c={c} must be within 0..n={n}")
    if k > n:
        raise ValueError(f"k={k} exceeds the number of trials n={n}")


def count_trials(trials: Iterable[tuple[str, bool]]) -> dict[str, tuple[int, int]]:
    """(task_id, success) pairs -> {task_id: (n, c)}."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for task, ok in trials:
        counts[task][0] += 1
        counts[task][1] += int(bool(ok))
    return {t: (n, c) for t, (n, c) in counts.items()}


def summarize(counts: dict[str, tuple[int, int]], ks: list[int]) -> dict:
    """Mean pass^k and pass@k over tasks for each k; names the tasks with too few trials."""
    if not counts:
        raise RaypipeError("no trials to score")
    out: dict = {"tasks": len(counts), "trials": sum(n for n, _ in counts.values()), "k": {}}
    for k in ks:
        short = sorted(t for t, (n, _) in counts.items() if n < k)
        if short:
            raise RaypipeError(
                f"k={k} exceeds the trials of {len(short)} task(s) (e.g. {short[0]!r} has "
                f"{counts[short[0]][0]}); every task needs at least k trials"
            )
        out["k"][str(k)] = {
            "pass^k": sum(pass_hat_k(n, c, k) for n, c in counts.values()) / len(counts),
            "pass@k": sum(pass_at_k(n, c, k) for n, c in counts.values()) / len(counts),
        }
    return out


def read_trials(path: str | Path) -> list[tuple[str, bool]]:
    """JSONL, one trial per line: {"task_id": ..., "success": true|false}."""
    trials = []
    for lineno, row in read_jsonl(path):
        if "task_id" not in row or not isinstance(row.get("success"), bool):
            raise RaypipeError(f"{path}:{lineno}: needs 'task_id' and a boolean 'success'")
        trials.append((str(row["task_id"]), row["success"]))
    return trials



def trials_from_bfcl_runs(run_dirs: list[str | Path]) -> list[tuple[str, bool]]:
    """Each `eval bfcl` run directory (e.g. sampled with another seed) is one trial of every
    item in its result files; an item failed when its REPORT.json lists it among the errors."""
    from raypipe.eval.scoring import read_result_files

    trials = []
    for run in map(Path, run_dirs):
        report_path = run / "REPORT.json"
        if not report_path.exists():
            raise RaypipeError(f"{run}: no REPORT.json (run `raypipe eval bfcl` or `raypipe score bfcl` first)")
        report = json.loads(report_path.read_text(encoding="utf-8"))
        failed = {e["id"] for cat in (report.get("categories") or {}).values() for e in cat.get("errors") or []}
        results = read_result_files(run / "results")
        scored = {c: v.get("total") for c, v in (report.get("categories") or {}).items()}
        for category, rows in results.items():
            if scored.get(category) != len(rows):
                raise RaypipeError(f"{run}: REPORT.json does not score the {len(rows)} {category} results; re-score it")
            trials.extend((item_id, item_id not in failed) for item_id in rows)
    return trials
