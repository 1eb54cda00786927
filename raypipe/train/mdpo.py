"""The multi-turn DPO recipe (MAGNET's mDPO), one function, top to bottom.

loss = sft_weight x SFT(positive trajectory)
     + dpo_weight x -log sigmoid(eta x (sum_pos log pi/pi_ref - sum_neg log pi/pi_ref))

Each sum runs over the assistant tokens of the turns both trajectories have (a positive
trajectory that goes on after the corrupted turn adds its later turns to the SFT term only);
tool results and prompts carry no loss. The reference pi_ref is the SFT model: the SFT adapter is merged into the
base on every worker and a fresh LoRA adapter is trained on top, so "adapter disabled" is
exactly the SFT model (no second model in memory, no precomputed log-prob pass to keep in sync).
"""

from __future__ import annotations

from typing import Any

from raypipe.config import load_config
from raypipe.templates.tokens import IGNORE_INDEX
from raypipe.train.config import MDPOConfig
from raypipe.train.losses import mdpo_batch_loss
from raypipe.train.worker import (
    StepLog,
    TrainState,
    all_reduce_sum,
    checkpoint_and_report,
    collate,
    grad_norm,
    maybe_kill_drill,
    open_plan,
    open_session,
    optimizer_steps,
    restore_checkpoint,
    setup_engine,
    step_digest,
)


def mdpo_loop(spec: dict[str, Any]) -> None:
    import torch

    cfg = load_config(MDPOConfig, spec["config"], where="mdpo")
    session = open_session(spec, cfg)
    engine, model = setup_engine(cfg, spec, session, merge_adapter=cfg.sft_adapter)
    plan, store = open_plan(spec, pairs=True)
    state = TrainState(data_fingerprint=spec["data_fingerprint"])
    with session.resume_dir() as d:
        if d:
            state = restore_checkpoint(engine, d)

    log = StepLog(cfg, spec, session, model)
    last_saved = state.step
    engine.train()
    while state.epoch < cfg.epochs and state.step < spec["total_steps"]:
        for micro_batches, ids in optimizer_steps(plan, store, session, cfg, state.epoch,
                                                  spec["steps_per_epoch"], state.step_in_epoch):
            log.start_step()
            # one batch per micro-batch: the positive trajectories, then the negative ones
            batches = [pair_batch(units, spec["pad_id"], session.device) for units in micro_batches]
            local_tokens = sum(int((b["sft_labels"][:, 1:] != IGNORE_INDEX).sum()) for b in batches)
            global_tokens = all_reduce_sum(torch.tensor(float(local_tokens), device=session.device))
            sums = torch.zeros(6, device=session.device)  # nll, dpo, margin, correct, chosen, rejected
            input_tokens = 0
            for batch in batches:
                inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
                logits = engine(**inputs).logits
                with torch.no_grad(), model.disable_adapter():  # adapter off = the SFT model
                    ref_logits = model(**inputs).logits
                loss, parts = mdpo_batch_loss(
                    logits, ref_logits, batch["labels"], eta=cfg.eta, sft_weight=cfg.sft_weight,
                    dpo_weight=cfg.dpo_weight, total_tokens=global_tokens, total_pairs=cfg.global_batch_size,
                    sft_labels=batch["sft_labels"],
                )
                engine.backward(loss * session.world_size, scale_wrt_gas=False)  # see sft.py
                engine.step()
                margin = parts["chosen"] - parts["rejected"]
                sums += torch.stack([
                    parts["nll"], parts["dpo"].sum(), margin.sum(), (margin > 0).float().sum(),
                    parts["chosen"].sum(), parts["rejected"].sum(),
                ])
                input_tokens += batch["real_tokens"]
            sums = all_reduce_sum(sums)
            tokens = all_reduce_sum(torch.tensor(float(input_tokens), device=session.device))
            pairs = cfg.global_batch_size
            sft_loss, dpo_loss = float(sums[0] / global_tokens), float(sums[1] / pairs)
            state.step += 1
            state.step_in_epoch += 1
            log.record(
                state, lr=engine.get_lr()[0],
                loss=cfg.sft_weight * sft_loss + cfg.dpo_weight * dpo_loss, tokens_global=float(tokens),
                grad_norm=grad_norm(engine),
                sft_loss=sft_loss, dpo_loss=dpo_loss, reward_margin=float(sums[2] / pairs),
                reward_accuracy=float(sums[3] / pairs), reward_chosen=float(sums[4] / pairs),
                reward_rejected=float(sums[5] / pairs), rows_sha=step_digest(ids, session),
            )
            if state.step % cfg.checkpoint_every == 0:
                last_saved = checkpoint_and_report(engine, model, session, state)
            maybe_kill_drill(cfg, spec, session, state)
            if state.step == spec["total_steps"]:  # max_steps
                break
        state.epoch += 1
        state.step_in_epoch = 0

    if state.step != last_saved or not state.history:
        checkpoint_and_report(engine, model, session, state)


def pair_batch(units: list[list[dict]], pad_id: int, device) -> dict:
    """The positive trajectories, then the negative ones, right-padded together. `labels` mark the
    DPO term's tokens (the same turns on both sides), `sft_labels` the positive side's SFT tokens."""
    import torch

    rows = [unit[0] for unit in units]  # pairs are never packed: one pair per unit
    both = [{"input_ids": r["chosen_input_ids"], "labels": r["chosen_dpo_labels"]} for r in rows]
    both += [{"input_ids": r["rejected_input_ids"], "labels": r["rejected_labels"]} for r in rows]
    batch = collate(both, pad_id, device)
    sft = torch.full_like(batch["labels"], IGNORE_INDEX)
    for i, r in enumerate(rows):
        sft[i, : len(r["chosen_labels"])] = torch.tensor(r["chosen_labels"], dtype=torch.long)
    batch["sft_labels"] = sft
    return batch
