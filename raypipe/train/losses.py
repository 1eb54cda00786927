"""Loss math of the recipes, as pure functions on tensors (unit-tested by hand).

Labels follow the transformers convention: -100 marks a token that carries no loss (prompt,
tool results, padding). Position t's logits predict token t+1.
"""

from __future__ import annotations

from raypipe.templates.tokens import IGNORE_INDEX


def token_logps(logits, labels):
    """Log-probability of every next token, 0 where the label is IGNORE_INDEX.

    Returns (logps [B, T-1], mask [B, T-1]). Cross-entropy in fp32 without materialising a
    full log-softmax copy of the logits (it matters at 32k+ vocabularies).
    """
    import torch.nn.functional as F

    shift_logits = logits[:, :-1, :].float()
    targets = labels[:, 1:]
    nll = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view(targets.shape)
    return -nll, targets != IGNORE_INDEX


def sequence_logps(logits, labels):
    """Sum of log-probs over each row's trained tokens (all its assistant turns): [B]."""
    logps, _ = token_logps(logits, labels)
    return logps.sum(dim=-1)


def nll_sum_and_count(logits, labels):
    """(sum of token NLL, number of trained tokens) of a micro-batch.

    The recipes divide the sum by the trained-token count of the whole global batch (all
    micro-batches, all workers), so every token weighs the same: not a mean of per-sample means.
    """
    logps, mask = token_logps(logits, labels)
    return -logps.sum(), mask.sum()


def mdpo_terms(policy_pos, policy_neg, ref_pos, ref_neg, eta: float):
    """MAGNET's multi-turn DPO term per pair.

    -log sigmoid(eta * (sum_pos log pi/pi_ref - sum_neg log pi/pi_ref)), where each sum runs
    over all assistant turns of a trajectory, i.e. the inputs are `sequence_logps`.
    Returns (loss [B], chosen_reward [B], rejected_reward [B]); margin = chosen - rejected.
    """
    import torch.nn.functional as F

    chosen = eta * (policy_pos - ref_pos)
    rejected = eta * (policy_neg - ref_neg)
    return -F.logsigmoid(chosen - rejected), chosen.detach(), rejected.detach()


def mdpo_batch_loss(logits, ref_logits, labels, *, eta: float, sft_weight: float, dpo_weight: float,
                    total_tokens, total_pairs: int, sft_labels=None):
    """The mDPO recipe's loss on one micro-batch whose first half of rows are the positive
    trajectories and second half the negative ones (same order).

    `labels` mark the tokens of the DPO term: the same assistant turns on both sides (see
    `raypipe.templates.tokenize.tokenize_pair`). `sft_labels` (default: `labels`) mark the SFT
    term's tokens of the positive trajectories, which may run past the compared turns.
    SFT term: NLL of those tokens / `total_tokens` (the SFT tokens of the whole global batch);
    mDPO term: summed over pairs / `total_pairs`.
    Returns (loss, parts) with parts = nll (sum), dpo [B], chosen [B], rejected [B] rewards.
    """
    n = labels.shape[0] // 2
    logps, _ = token_logps(logits, labels)
    ref_logps, _ = token_logps(ref_logits, labels)
    seq, ref_seq = logps.sum(dim=-1), ref_logps.sum(dim=-1)
    dpo, chosen, rejected = mdpo_terms(seq[:n], seq[n:], ref_seq[:n], ref_seq[n:], eta)
    if sft_labels is None:
        nll = -logps[:n].sum()
    else:
        sft_logps, _ = token_logps(logits[:n], sft_labels[:n])
        nll = -sft_logps.sum()
    loss = sft_weight * nll / total_tokens + dpo_weight * dpo.sum() / total_pairs
    return loss, {"nll": nll.detach(), "dpo": dpo.detach(), "chosen": chosen, "rejected": rejected}
