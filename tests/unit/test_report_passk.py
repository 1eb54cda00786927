import json
from math import comb

import pytest

from raypipe.errors import RaypipeError
from raypipe.eval.passk import count_trials, pass_at_k, pass_hat_k, read_trials, summarize

pytestmark = pytest.mark.unit


def test_pass_hat_k_hand_computed():
    # n=4 trials, c=3 successes: pass^2 = C(3,2)/C(4,2) = 3/6; pass@2 = 1 - C(1,2)/C(4,2) = 1
    assert pass_hat_k(4, 3, 2) == pytest.approx(0.5)
    assert pass_at_k(4, 3, 2) == pytest.approx(1.0)
    # n=5, c=2, k=1: both reduce to c/n
    assert pass_hat_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    # n=5, c=3, k=3: pass^3 = 1/10, pass@3 = 1 - C(2,3)/C(5,3) = 1
    assert pass_hat_k(5, 3, 3) == pytest.approx(1 / 10)
    assert pass_at_k(5, 3, 3) == pytest.approx(1.0)
    # n=6, c=2, k=2: pass@2 = 1 - C(4,2)/C(6,2) = 1 - 6/15
    assert pass_at_k(6, 2, 2) == pytest.approx(1 - 6 / 15)


def test_fewer_successes_than_k_gives_zero():
    assert pass_hat_k(8, 2, 3) == 0.0
    assert pass_hat_k(3, 0, 1) == 0.0
    assert pass_at_k(3, 0, 2) == 0.0


def test_all_successes_gives_one():
    assert pass_hat_k(4, 4, 4) == 1.0
    assert pass_at_k(4, 4, 1) == 1.0


@pytest.mark.parametrize("n,c,k", [(3, 1, 4), (3, 4, 1), (3, -1, 1), (3, 1, 0)])
def test_bad_arguments_raise(n, c, k):
    with pytest.raises(ValueError):
        pass_hat_k(n, c, k)
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_summary_is_the_mean_over_tasks():
    trials = [("a", True)] * 4 + [("b", True), ("b", False), ("b", True), ("b", False)]
    counts = count_trials(trials)
    assert counts == {"a": (4, 4), "b": (4, 2)}
    s = summarize(counts, [1, 2])
    assert s["tasks"] == 2 and s["trials"] == 8
    assert s["k"]["1"]["pass^k"] == pytest.approx((1 + 0.5) / 2)
    assert s["k"]["2"]["pass^k"] == pytest.approx((1 + comb(2, 2) / comb(4, 2)) / 2)
    assert s["k"]["2"]["pass@k"] == pytest.approx((1 + 1 - comb(2, 2) / comb(4, 2)) / 2)


def test_k_above_a_tasks_trials_is_an_error_naming_it():
    with pytest.raises(RaypipeError, match="'b' has 2"):
        summarize({"a": (4, 1), "b": (2, 1)}, [3])


def test_read_trials_names_the_bad_line(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps({"task_id": 1, "success": True}) + "\n" + '{"task_id": 2, "success": "yes"}\n')
    with pytest.raises(RaypipeError, match=r"t.jsonl:2"):
        read_trials(p)
    p.write_text(json.dumps({"task_id": 1, "success": False}) + "\n\n")
    assert read_trials(p) == [("1", False)]


def _bfcl_run(root, name, outcomes: dict[str, bool]):
    from raypipe.eval.scoring import write_result_files

    run = root / name
    by_cat: dict = {}
    for item_id in outcomes:
        by_cat.setdefault(item_id.rsplit("_", 1)[0], {})[item_id] = "<|answer|>x"
    write_result_files(by_cat, run / "results")
    cats = {c: {"total": len(ids), "errors": [{"id": i} for i in ids if not outcomes[i]]} for c, ids in by_cat.items()}
    (run / "REPORT.json").write_text(json.dumps({"categories": cats}))
    return run


def test_bfcl_runs_are_trials(tmp_path):
    from raypipe.eval.passk import trials_from_bfcl_runs

    runs = [
        _bfcl_run(tmp_path, "seed0", {"simple_0": True, "simple_1": False, "relevance_0": True}),
        _bfcl_run(tmp_path, "seed1", {"simple_0": True, "simple_1": True, "relevance_0": False}),
    ]
    counts = count_trials(trials_from_bfcl_runs(runs))
    assert counts == {"simple_0": (2, 2), "simple_1": (2, 1), "relevance_0": (2, 1)}
    assert summarize(counts, [2])["k"]["2"]["pass^k"] == pytest.approx(1 / 3)
    (runs[1] / "REPORT.json").write_text(json.dumps({"categories": {"simple": {"total": 5, "errors": []}}}))
    with pytest.raises(RaypipeError, match="seed1: REPORT.json does not score the"):
        trials_from_bfcl_runs(runs)
