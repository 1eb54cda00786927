"""The multi-turn DPO recipe (MAGNET's mDPO), one function, top to bottom.

loss = sft_weight x SFT(positive trajectory)
     + dpo_weight x -log sigmoid(eta x (sum_pos log pi/pi_ref - sum_neg log pi/pi_ref))

Each sum runs over every assistant token of a trajectory (all its turns); tool results and
prompts carry no loss. The reference pi_ref is the SFT model: the SFT adapter is merged into the
base on every worker and a fresh LoRA adapter is trained on top, so "adapter disabled" is
exactly the SFT model (no second model in memory, no precomputed log-prob pass to keep in sync).
"""

from __future__ import annotations

from typing import Any

from raypipe.config import load_config
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
    open_session,
    optimizer_steps,
    restore_checkpoint,
    setup_engine,
)


def mdpo_loop(spec: dict[str, Any]) -> None:
    import torch

    cfg = load_config(MDPOConfig, spec["config"], where="mdpo")
    session = open_session(spec, cfg)
    engine, model = setup_engine(cfg, spec, session, merge_adapter=cfg.sft_adapter)
    state = TrainState()
    with session.resume_dir() as d:
        if d:
            state = restore_checkpoint(engine, d)

    log = StepLog(cfg, spec, session, model)
    last_saved = state.step
    engine.train()
    while state.epoch < cfg.epochs:
        for micro_batches in optimizer_steps(session, cfg, state.epoch, spec["steps_per_epoch"], state.step_in_epoch):
            log.start_step()
            # one batch per micro-batch: the positive trajectories, then the negative ones
            batches = [collate(_both_sides(rows), spec["pad_id"], session.device) for rows in micro_batches]
            n = cfg.micro_batch_size
            local_tokens = sum(int((b["labels"][:n, 1:] != -100).sum()) for b in batches)
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
                )
                engine.backward(loss * session.world_size, scale_wrt_gas=False)  # see sft.py
                engine.step()
                margin = parts["chosen"] - parts["rejected"]
                sums += torch.stack([
                    parts["nll"], parts["dpo"].sum(), margin.sum(), (margin > 0).float().sum(),
                    parts["chosen"].sum(), parts["rejected"].sum(),
                ])
                input_tokens += int(batch["attention_mask"].sum())
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
                reward_rejected=float(sums[5] / pairs),
            )
            if state.step % cfg.checkpoint_every == 0:
                last_saved = checkpoint_and_report(engine, model, session, state)
            maybe_kill_drill(cfg, spec, session, state)
        state.epoch += 1
        state.step_in_epoch = 0

    if state.step != last_saved or not state.history:
        checkpoint_and_report(engine, model, session, state)


def _both_sides(rows: list[dict]) -> list[dict]:
    return [
        {"input_ids": r[f"{side}_input_ids"], "labels": r[f"{side}_labels"]}
        for side in ("chosen", "rejected")
        for r in rows
    ]
