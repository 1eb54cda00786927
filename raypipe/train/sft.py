"""The SFT recipe: LoRA fine-tuning with DeepSpeed, one function, top to bottom.

`sft_loop(spec)` runs inside each Ray Train worker (or alone in this process when
`spec["local"]`); `raypipe.train.launch.run_training` builds `spec` and starts it.
"""

from __future__ import annotations

from typing import Any

from raypipe.config import load_config
from raypipe.train.config import SFTConfig
from raypipe.train.losses import token_logps
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
    trainable_tokens,
)


def sft_loop(spec: dict[str, Any]) -> None:
    import torch

    cfg = load_config(SFTConfig, spec["config"], where="sft")
    session = open_session(spec, cfg)
    engine, model = setup_engine(cfg, spec, session)
    state = TrainState()
    with session.resume_dir() as d:
        if d:
            state = restore_checkpoint(engine, d)
            if session.rank == 0:
                print(f"[raypipe] resumed at step {state.step} (epoch {state.epoch})", flush=True)

    sources = spec["sources"]  # index -> label, for the per-source loss
    source_sums = torch.zeros((len(sources), 2), device=session.device)  # (nll, tokens) per source
    log = StepLog(cfg, spec, session, model)
    steps_per_epoch = spec["steps_per_epoch"]
    last_saved = state.step
    engine.train()
    while state.epoch < cfg.epochs:
        for micro_batches in optimizer_steps(session, cfg, state.epoch, steps_per_epoch, state.step_in_epoch):
            log.start_step()
            batches = [collate(rows, spec["pad_id"], session.device) for rows in micro_batches]
            # Loss = sum of token NLLs / trained tokens of the whole global batch, so the token
            # count is summed over micro-batches and workers before any backward pass.
            global_tokens = trainable_tokens(batches, session.device)
            step_nll = torch.zeros((), device=session.device)
            input_tokens = 0
            for batch in batches:
                logits = engine(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                logps, mask = token_logps(logits, batch["labels"])
                row_nll = -logps.sum(dim=-1)
                loss = row_nll.sum() / global_tokens
                # DeepSpeed averages gradients over workers; x world_size turns that into the sum
                # of every worker's share of the global mean.
                engine.backward(loss * session.world_size, scale_wrt_gas=False)
                engine.step()  # the optimizer steps at the accumulation boundary only
                step_nll += row_nll.sum().detach()
                input_tokens += int(batch["attention_mask"].sum())
                source_sums.index_add_(
                    0, batch["source_idx"],
                    torch.stack([row_nll.detach(), mask.sum(dim=-1).to(row_nll.dtype)], dim=1),
                )
            totals = all_reduce_sum(torch.tensor([float(step_nll), float(input_tokens)], device=session.device))
            state.step += 1
            state.step_in_epoch += 1
            log.record(
                state, lr=engine.get_lr()[0], loss=float(totals[0] / global_tokens),
                tokens_global=float(totals[1]), grad_norm=grad_norm(engine),
            )

            if state.step % cfg.source_loss_every == 0 or state.step == spec["total_steps"]:
                per_source = all_reduce_sum(source_sums.clone())
                by_source = {sources[i]: float(s[0] / s[1]) for i, s in enumerate(per_source) if s[1] > 0}
                state.source_loss.append({"step": state.step, "loss": by_source})
                source_sums.zero_()
                if session.rank == 0:
                    shown = " ".join(f"{k}={v:.4g}" for k, v in by_source.items())
                    print(f"[raypipe] step {state.step} loss by source: {shown}", flush=True)
            if state.step % cfg.checkpoint_every == 0:
                last_saved = checkpoint_and_report(engine, model, session, state)
            maybe_kill_drill(cfg, spec, session, state)
        state.epoch += 1
        state.step_in_epoch = 0

    if state.step != last_saved or not state.history:
        checkpoint_and_report(engine, model, session, state)
