"""The SFT recipe: LoRA fine-tuning with DeepSpeed, one function, top to bottom.

`sft_loop(spec)` runs inside each Ray Train worker (or alone in this process when
`spec["local"]`); `raypipe.train.launch.run_training` builds `spec` and starts it.
"""

from __future__ import annotations

from typing import Any

from raypipe.config import load_config
from raypipe.train.batches import make_batch
from raypipe.train.config import SFTConfig
from raypipe.train.losses import token_logps
from raypipe.train.worker import (
    StepLog,
    TrainState,
    all_reduce_sum,
    checkpoint_and_report,
    grad_norm,
    maybe_kill_drill,
    open_plan,
    open_session,
    optimizer_steps,
    restore_checkpoint,
    setup_engine,
    step_digest,
    trainable_tokens,
)


def sft_loop(spec: dict[str, Any]) -> None:
    import torch

    cfg = load_config(SFTConfig, spec["config"], where="sft")
    session = open_session(spec, cfg)
    engine, model = setup_engine(cfg, spec, session)
    plan, store = open_plan(spec)
    state = TrainState(data_fingerprint=spec["data_fingerprint"])
    with session.resume_dir() as d:
        if d:
            state = restore_checkpoint(engine, d)
            if session.rank == 0:
                print(f"[raypipe] resumed at step {state.step} (epoch {state.epoch})", flush=True)

    sources = spec["sources"]  # index -> label, for the per-source loss
    source_sums = torch.zeros((len(sources), 2), device=session.device)  # (nll, tokens) per source
    log = StepLog(cfg, spec, session, model)
    mask_dtype = next(p for p in model.parameters()).dtype
    last_saved = state.step
    engine.train()
    while state.epoch < cfg.epochs and state.step < spec["total_steps"]:
        for micro_batches, ids in optimizer_steps(plan, store, session, cfg, state.epoch,
                                                  spec["steps_per_epoch"], state.step_in_epoch):
            log.start_step()
            batches = [make_batch(units, spec, session.device, mask_dtype) for units in micro_batches]
            step_nll, real_tokens, global_tokens = sft_step(engine, batches, session, source_sums)
            totals = all_reduce_sum(torch.tensor([step_nll, float(real_tokens)], device=session.device))
            state.step += 1
            state.step_in_epoch += 1
            log.record(
                state, lr=engine.get_lr()[0], loss=float(totals[0] / global_tokens),
                tokens_global=float(totals[1]), grad_norm=grad_norm(engine),
                rows_sha=step_digest(ids, session),
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
            if state.step == spec["total_steps"]:  # max_steps
                break
        state.epoch += 1
        state.step_in_epoch = 0

    if state.step != last_saved or not state.history:
        checkpoint_and_report(engine, model, session, state)


def sft_step(engine, batches: list[dict], session, source_sums=None) -> tuple[float, int, Any]:
    """One optimizer step over this rank's micro-batches: returns (this rank's NLL sum, its real
    tokens, the trained-token count of the whole global batch).

    Loss = sum of token NLLs / trained tokens of the whole global batch, so the token count is
    summed over micro-batches and workers before any backward pass. DeepSpeed averages gradients
    over workers; x world_size turns that average into the sum of every worker's share of the
    global mean, and `scale_wrt_gas=False` keeps DeepSpeed from dividing by the accumulation
    steps again.
    """
    import torch

    global_tokens = trainable_tokens(batches, session.device)
    step_nll = 0.0
    real_tokens = 0
    for batch in batches:
        logits = engine(**batch["model_inputs"]).logits
        logps, mask = token_logps(logits, batch["labels"])
        nll = -logps.sum()
        engine.backward(nll / global_tokens * session.world_size, scale_wrt_gas=False)
        engine.step()  # the optimizer steps at the accumulation boundary only
        step_nll += float(nll.detach())
        real_tokens += batch["real_tokens"]
        if source_sums is not None:  # per-source NLL and token counts, by each target token's source
            target_source = batch["token_source"][:, 1:][mask]
            source_sums[:, 0].index_add_(0, target_source, -logps.detach()[mask])
            source_sums[:, 1].index_add_(0, target_source, torch.ones_like(target_source, dtype=source_sums.dtype))
    return step_nll, real_tokens, global_tokens
