"""Summary figures over BFCL categories: the zh-TW/V1 pair (AST Summary, Relevance Detection)
and upstream's leaderboard figures (non-live AST, live AST, hallucination, overall).

Upstream's formulas are those of ``generate_leaderboard_csv`` in bfcl_eval 2026.3.23
(``bfcl_eval/eval_checker/eval_runner_helper.py``), restricted to the single-turn python
categories raypipe scores (docs/scoring.md lists each with its source):

- non-live AST: unweighted mean of simple, multiple, parallel, parallel_multiple (upstream's
  simple is itself the mean of python, Java and JavaScript simple; raypipe scores python only);
- live AST: the four live AST categories weighted by their item counts (pooled accuracy);
- irrelevance: unweighted mean of irrelevance and live_irrelevance; relevance: live_relevance;
- overall: upstream weighs non-live 10, live 10, irrelevance 10, multi-turn 30, agentic 40 and
  normalises the weights; here the parts with no scored category are left out and the
  remaining weights normalised again (so non-live, live and irrelevance count a third each).

Every figure comes with a 95% interval: each is a linear combination sum(a_c * p_c) of
category accuracies, so its variance is sum(a_c^2 * var_c), each var_c taken from the
category's Wilson interval (sound at 0% and 100%).
"""

from __future__ import annotations

import math
from typing import Any

from raypipe.eval.bfcl_categories import IRRELEVANCE, LIVE_AST, NON_LIVE_AST, RELEVANCE

Z95 = 1.959963984540054
OVERALL_WEIGHTS = {"non_live": 10, "live": 10, "irrelevance": 10, "multi_turn": 30, "agentic": 40}


def wilson_interval(correct: int, total: int, z: float = Z95) -> list[float] | None:
    """95% Wilson score interval of a proportion (well-behaved at 0 and 1, unlike the normal one)."""
    if total == 0:
        return None
    p = correct / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == total else min(1.0, centre + half)
    return [low, high]


def _variance(correct: int, total: int, z: float = Z95) -> float:
    low, high = wilson_interval(correct, total, z)
    return ((high - low) / (2 * z)) ** 2


def linear_interval(terms: list[tuple[float, int, int]], z: float = Z95) -> list[float] | None:
    """CI of sum(a * correct/total) over independent proportions given as (a, correct, total)."""
    if not terms or any(total == 0 for _, _, total in terms):
        return None
    value = sum(a * correct / total for a, correct, total in terms)
    half = z * math.sqrt(sum(a * a * _variance(correct, total, z) for a, correct, total in terms))
    return [max(0.0, value - half), min(1.0, value + half)]


def mean_interval(parts: list[tuple[int, int]], z: float = Z95) -> list[float] | None:
    """CI of an unweighted mean of independent proportions (correct, total)."""
    if not parts:
        return None
    return linear_interval([(1 / len(parts), c, t) for c, t in parts], z)


def v1_summaries(version: str, categories: dict[str, dict]) -> dict[str, Any]:
    """The seed paper's figures: AST Summary (unweighted mean of the four non-live AST
    categories, null unless all four were scored) and Relevance Detection (the non-live
    irrelevance category: V1's ``relevance``, V3/V4's ``irrelevance``), lenient and strict."""
    ast_names = NON_LIVE_AST[version]
    parts = [(categories[c]["correct"], categories[c]["total"]) for c in ast_names if c in categories]
    complete = len(parts) == len(ast_names)
    out: dict[str, Any] = {
        "ast_summary": sum(categories[c]["accuracy"] for c in ast_names) / len(ast_names) if complete else None,
        "ast_summary_ci95": mean_interval(parts) if complete else None,
        "ast_summary_missing": [c for c in ast_names if c not in categories],
    }
    relevance = categories.get(IRRELEVANCE[version][0])
    out["relevance_detection"] = relevance["accuracy"] if relevance else None
    out["relevance_detection_ci95"] = relevance["ci95"] if relevance else None
    out["relevance_detection_strict"] = relevance["strict_accuracy"] if relevance else None
    out["relevance_detection_strict_ci95"] = relevance["strict_ci95"] if relevance else None
    return out


def upstream_summaries(version: str, categories: dict[str, dict]) -> dict[str, Any]:
    """Upstream's leaderboard figures over the categories present (see the module text)."""
    parts: dict[str, dict | None] = {
        "non_live_ast": _mean_part(NON_LIVE_AST[version], categories, "unweighted mean"),
        "live_ast": _pooled_part(LIVE_AST, categories) if version != "v1" else None,
        "irrelevance": _mean_part(IRRELEVANCE[version], categories, "unweighted mean"),
        "relevance": _mean_part(RELEVANCE, categories, "live_relevance") if version != "v1" else None,
    }
    keys = {"non_live": "non_live_ast", "live": "live_ast", "irrelevance": "irrelevance"}
    present = {name: parts[key] for name, key in keys.items() if parts[key] is not None}
    overall = None
    if present:
        total_weight = sum(OVERALL_WEIGHTS[name] for name in present)
        share = {name: OVERALL_WEIGHTS[name] / total_weight for name in present}
        overall = {
            "accuracy": sum(share[name] * part["accuracy"] for name, part in present.items()),
            "ci95": linear_interval([(share[name] * a, c, t) for name, part in present.items()
                                     for a, c, t in part["terms"]]),
            "weights": {name: OVERALL_WEIGHTS[name] for name in present},
            "parts_not_scored": [name for name in OVERALL_WEIGHTS if name not in present],
        }
    out = {key: _public(part) for key, part in parts.items()}
    out["overall"] = overall
    return out


def _mean_part(names, categories: dict[str, dict], formula: str) -> dict | None:
    present = [c for c in names if c in categories]
    if not present:
        return None
    a = 1 / len(present)
    terms = [(a, categories[c]["correct"], categories[c]["total"]) for c in present]
    ci95 = categories[present[0]]["ci95"] if len(present) == 1 else linear_interval(terms)
    return {"accuracy": sum(categories[c]["accuracy"] for c in present) / len(present),
            "ci95": ci95, "categories": present,
            "missing": [c for c in names if c not in categories], "formula": formula, "terms": terms}


def _pooled_part(names, categories: dict[str, dict]) -> dict | None:
    present = [c for c in names if c in categories]
    if not present:
        return None
    correct = sum(categories[c]["correct"] for c in present)
    total = sum(categories[c]["total"] for c in present)
    terms = [(categories[c]["total"] / total, categories[c]["correct"], categories[c]["total"]) for c in present]
    return {"accuracy": correct / total, "ci95": wilson_interval(correct, total), "correct": correct,
            "total": total, "categories": present, "missing": [c for c in names if c not in categories],
            "formula": "weighted by item count", "terms": terms}


def _public(part: dict | None) -> dict | None:
    return None if part is None else {k: v for k, v in part.items() if k != "terms"}
