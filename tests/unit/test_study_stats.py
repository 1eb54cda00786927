"""raypipe.study.stats against values worked out by hand (or printed in textbooks)."""

import pytest

from raypipe.study.stats import binomial_two_sided, mcnemar_exact, paired_bootstrap, wilson

pytestmark = pytest.mark.unit


def test_wilson_known_values():
    lo, hi = wilson(8, 10)  # Newcombe (1998), Table I: 0.4902 to 0.9433
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    lo, hi = wilson(0, 10)  # never below zero, and not degenerate at 0% like the Wald interval
    assert lo == 0.0 and round(hi, 4) == 0.2775
    assert wilson(0, 0) is None
    with pytest.raises(ValueError):
        wilson(11, 10)


def test_mcnemar_exact_is_a_binomial_tail_of_the_discordant_items():
    assert binomial_two_sided(0, 5) == pytest.approx(2 / 32)
    assert binomial_two_sided(1, 9) == pytest.approx(2 * 11 / 1024)
    assert binomial_two_sided(3, 3) == 1.0  # capped
    assert binomial_two_sided(0, 0) == 1.0  # no discordant item: no evidence
    a = [True] * 10 + [False] * 9 + [True]
    b = [True] * 10 + [True] * 9 + [False]  # 9 items only b got, 1 only a got, 10 both
    r = mcnemar_exact(a, b)
    assert (r["items"], r["a_only"], r["b_only"]) == (20, 1, 9)
    assert r["p"] == pytest.approx(22 / 1024)
    # concordant items never change the p-value
    assert mcnemar_exact(a + [True] * 100, b + [True] * 100)["p"] == r["p"]
    with pytest.raises(ValueError):
        mcnemar_exact([True], [True, False])


def test_paired_bootstrap_is_seeded_and_sees_a_clear_shift():
    a = [5.0, 6.0, 7.0, 5.5, 6.5, 7.5, 5.0, 6.0] * 5
    b = [x + 1.0 + (0.5 if i % 2 else -0.5) for i, x in enumerate(a)]
    r = paired_bootstrap(a, b, resamples=2000, seed=1)
    assert r["diff"] == pytest.approx(1.0)
    assert r["ci95"][0] > 0 and r["p"] < 0.01
    assert paired_bootstrap(a, b, resamples=2000, seed=1) == r
    same = paired_bootstrap(a, a, resamples=500)
    assert same["diff"] == 0 and same["p"] == 1.0
    noise = paired_bootstrap([1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 4.0, 3.0], resamples=2000)
    assert noise["p"] > 0.5 and noise["ci95"][0] < 0 < noise["ci95"][1]
    assert paired_bootstrap([], [])["p"] is None
