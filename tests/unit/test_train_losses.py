"""Loss math: global per-token mean, and MAGNET's mDPO on a hand-computed 2-turn example."""

import math

import pytest

torch = pytest.importorskip("torch")

from raypipe.templates.tokens import IGNORE_INDEX  # noqa: E402
from raypipe.train.losses import mdpo_batch_loss, nll_sum_and_count, sequence_logps  # noqa: E402

pytestmark = pytest.mark.unit

V = 4  # vocabulary of the hand-made examples


def logits_for(probs_of_next: list[float], targets: list[int]):
    """Logits whose softmax gives `p` to each next target token (the rest spread evenly)."""
    rows = []
    for p, t in zip(probs_of_next, targets[1:]):
        row = [(1 - p) / (V - 1)] * V
        row[t] = p
        rows.append([math.log(x) for x in row])
    rows.append([0.0] * V)  # the last position predicts nothing
    return torch.tensor(rows)


def test_loss_is_the_mean_over_all_trained_tokens_not_a_mean_of_sample_means():
    # sample A: 1 trained token at p=0.5; sample B: 3 trained tokens at p=0.25
    a = logits_for([0.9, 0.5, 0.9, 0.9], [0, 1, 2, 3, 3])
    b = logits_for([0.9, 0.25, 0.25, 0.25], [0, 1, 2, 3, 1])
    labels_a = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 2, IGNORE_INDEX, IGNORE_INDEX]])
    labels_b = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 2, 3, 1]])
    nll_a, n_a = nll_sum_and_count(a[None], labels_a)
    nll_b, n_b = nll_sum_and_count(b[None], labels_b)
    assert (int(n_a), int(n_b)) == (1, 3)
    global_mean = float((nll_a + nll_b) / (n_a + n_b))
    assert global_mean == pytest.approx((math.log(2) + 3 * math.log(4)) / 4, rel=1e-5)
    assert global_mean != pytest.approx((math.log(2) + math.log(4)) / 2)  # mean of sample means
    # two micro-batches, each divided by the global count, add up to the same number
    assert float(nll_a / (n_a + n_b) + nll_b / (n_a + n_b)) == pytest.approx(global_mean)


def test_mdpo_loss_matches_a_hand_computed_two_turn_example():
    # tokens: [user, A1a, A1b, tool, A2] -- two assistant turns, one tool result in between
    ids = [0, 1, 2, 3, 1]
    labels = torch.tensor([IGNORE_INDEX, 1, 2, IGNORE_INDEX, 1])
    # next-token probabilities at positions 0..3 (for tokens 1..4); position 2 predicts the tool
    # result, which is masked, so its probability must not matter
    pos_policy, pos_ref = [0.5, 0.25, 0.1, 0.5], [0.25, 0.25, 0.7, 0.25]
    neg_policy, neg_ref = [0.2, 0.5, 0.3, 0.1], [0.25, 0.25, 0.2, 0.25]
    logits = torch.stack([logits_for(pos_policy, ids), logits_for(neg_policy, ids)])
    ref_logits = torch.stack([logits_for(pos_ref, ids), logits_for(neg_ref, ids)])
    both_labels = torch.stack([labels, labels])
    eta, lam = 0.5, 0.7

    loss, parts = mdpo_batch_loss(
        logits, ref_logits, both_labels, eta=eta, sft_weight=1.0, dpo_weight=lam,
        total_tokens=3, total_pairs=1,
    )

    log = math.log
    pos_ratio = (log(0.5) + log(0.25) + log(0.5)) - (log(0.25) + log(0.25) + log(0.25))  # = 2 ln 2
    neg_ratio = (log(0.2) + log(0.5) + log(0.1)) - (log(0.25) + log(0.25) + log(0.25))
    z = eta * (pos_ratio - neg_ratio)
    mdpo = -log(1 / (1 + math.exp(-z)))
    sft = -(log(0.5) + log(0.25) + log(0.5)) / 3
    assert float(loss) == pytest.approx(sft + lam * mdpo, rel=1e-5)
    assert float(loss) == pytest.approx(1.1597, abs=1e-3)  # the same, as a number
    assert float(parts["chosen"][0]) == pytest.approx(eta * pos_ratio, rel=1e-5)
    assert float(parts["rejected"][0]) == pytest.approx(eta * neg_ratio, rel=1e-5)
    assert float(sequence_logps(logits, both_labels)[0]) == pytest.approx(log(0.5) + log(0.25) + log(0.5), rel=1e-5)


def test_mdpo_gradient_raises_the_positive_and_lowers_the_negative():
    ids = [0, 1, 2, 3, 1]
    labels = torch.tensor([[IGNORE_INDEX, 1, 2, IGNORE_INDEX, 1]] * 2)
    logits = torch.stack([logits_for([0.3] * 4, ids), logits_for([0.3] * 4, ids)]).requires_grad_()
    loss, _ = mdpo_batch_loss(logits, logits.detach(), labels, eta=1.0, sft_weight=0.0, dpo_weight=1.0,
                              total_tokens=3, total_pairs=1)
    loss.backward()
    assert float(logits.grad[0, 0, 1]) < 0 < float(logits.grad[1, 0, 1])
