"""The statistics of a study report, in pure Python (no scipy): an accuracy's 95% interval,
and whether two arms differ beyond noise on the same benchmark items.

- `wilson`: Wilson score interval of k correct out of n (sound near 0% and 100%, unlike the
  normal approximation; BFCL categories are a few hundred items).
- `mcnemar_exact`: McNemar's exact test for paired yes/no outcomes (AST, relevance): only the
  discordant items count; under no difference each is equally likely to favour either arm, so
  the two-sided p is a binomial(b + c, 1/2) tail.
- `paired_bootstrap`: MT-Bench ratings are on a 1-10 scale, not yes/no; resample the paired
  items (seeded) and read the interval and p of the mean difference.
"""

from __future__ import annotations

import math
import random
from typing import Sequence

Z95 = 1.959963984540054
ALPHA = 0.05


def wilson(correct: int, total: int, z: float = Z95) -> tuple[float, float] | None:
    """The 95% Wilson score interval of a proportion; None without items."""
    if total <= 0:
        return None
    if not 0 <= correct <= total:
        raise ValueError(f"correct must be in 0..{total}, got {correct}")
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> dict:
    """McNemar's exact test of two arms' outcomes on the same items (same order).
    b_only/a_only: items only that arm got right. p is two-sided."""
    if len(a) != len(b):
        raise ValueError(f"paired outcomes need the same items: {len(a)} vs {len(b)}")
    a_only = sum(1 for x, y in zip(a, b) if x and not y)
    b_only = sum(1 for x, y in zip(a, b) if y and not x)
    return {"items": len(a), "a_only": a_only, "b_only": b_only, "p": binomial_two_sided(a_only, b_only)}


def binomial_two_sided(k1: int, k2: int) -> float:
    """Exact two-sided p of a split k1:k2 under Binomial(k1 + k2, 1/2): twice the smaller tail."""
    n = k1 + k2
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(k1, k2) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], resamples: int = 10_000, seed: int = 0) -> dict:
    """The mean of b - a over paired items, its 95% percentile interval and a two-sided
    bootstrap p (twice the share of resampled means on the far side of zero), seeded."""
    if len(a) != len(b):
        raise ValueError(f"paired scores need the same items: {len(a)} vs {len(b)}")
    n = len(a)
    if n == 0:
        return {"items": 0, "diff": None, "ci95": None, "p": None}
    diffs = [y - x for x, y in zip(a, b)]
    rng = random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    lo, hi = means[int(0.025 * resamples)], means[min(resamples - 1, int(0.975 * resamples))]
    below = sum(1 for m in means if m <= 0) / resamples
    above = sum(1 for m in means if m >= 0) / resamples
    return {"items": n, "diff": sum(diffs) / n, "ci95": [lo, hi], "p": min(1.0, 2 * min(below, above))}
