"""Two gloo workers (DeepSpeed ZeRO-2 on CPU, the recipe's own step) against one process with the
whole global batch in plain PyTorch: the gradients of the first step and the weights after it
are equal within float tolerance. This checks the loss scaling (token count summed over
micro-batches and workers, x world size against DeepSpeed's averaging, no extra division by
the accumulation steps): AdamW is scale-invariant, so only the gradients can show a wrong factor."""

import json
import os
import socket
from types import SimpleNamespace

import pytest

from raypipe.testing.samples import first_call_samples

pytestmark = pytest.mark.integration
WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, port: int, spec_path: str, out_path: str) -> None:
    """One rank: the recipe's engine, its rows for step 0, one `sft_step`; gradients are read at
    the accumulation boundary, before the optimizer steps."""
    os.environ.update(DS_ACCELERATOR="cpu", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK="0", WORLD_SIZE=str(WORLD), LOCAL_WORLD_SIZE=str(WORLD))
    import deepspeed
    import torch
    import torch.distributed as dist
    from deepspeed.utils import safe_get_full_grad

    from raypipe.config import load_config
    from raypipe.train.batches import make_batch
    from raypipe.train.config import SFTConfig
    from raypipe.train.sft import sft_step
    from raypipe.train.worker import open_plan, optimizer_steps, setup_engine

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    deepspeed.init_distributed(dist_backend="gloo")
    spec = json.loads(open(spec_path).read())
    cfg = load_config(SFTConfig, spec["config"])
    session = SimpleNamespace(rank=rank, world_size=WORLD, device=torch.device("cpu"), local=False)
    torch.manual_seed(cfg.seed)
    engine, model = setup_engine(cfg, spec, session)
    plan, store = open_plan(spec)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    grads = {}
    step = engine.step

    def step_and_probe():
        if engine.is_gradient_accumulation_boundary():
            grads.update({n: safe_get_full_grad(p).detach().clone() for n, p in trainable})
        step()

    engine.step = step_and_probe
    [(micro, ids)] = list(optimizer_steps(plan, store, session, cfg, 0, 1, 0))
    batches = [make_batch(units, spec, session.device) for units in micro]
    sft_step(engine, batches, session)
    gathered = [None] * WORLD
    dist.all_gather_object(gathered, ids)
    if rank == 0:
        weights = {n: p.detach().clone() for n, p in trainable}
        torch.save({"grads": grads, "weights": weights, "ids": [i for part in gathered for i in part],
                    "accum": cfg.accum_steps}, out_path)
    dist.destroy_process_group()


def test_two_gloo_workers_equal_one_full_batch_process(tmp_path):
    import torch
    import torch.multiprocessing as mp
    from transformers import get_cosine_schedule_with_warmup

    from raypipe.train.batches import make_batch
    from raypipe.train.config import DataSource, LoraSettings, SFTConfig, TinyModelSettings
    from raypipe.train.launch import prepare_run
    from raypipe.train.losses import token_logps
    from raypipe.train.model import build_trainable_model
    from raypipe.train.plan import RowStore, TrainPlan, rank_steps

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(s.to_dict()) + "\n" for s in first_call_samples(4)), encoding="utf-8")
    cfg = SFTConfig(
        model="tiny", tiny_model=TinyModelSettings(), data=[DataSource(path=str(data), kind="samples", ratio=4)],
        out=str(tmp_path / "run"), num_workers=WORLD, use_gpu=False, global_batch_size=4, micro_batch_size=1,
        max_seq_len=1024, lr=1e-2, warmup_steps=0, max_grad_norm=1.0, weight_decay=0.01,
        lora=LoraSettings(dropout=0.0),
    )
    run = prepare_run(cfg, use_ray=False)
    assert run.spec["pack_len"] == 1024 and cfg.accum_steps == 2  # packed rows, 1 x 2 accum x 2 workers
    spec_path, out_path = tmp_path / "spec.json", tmp_path / "rank0.pt"
    spec_path.write_text(json.dumps(run.spec))
    mp.spawn(worker, args=(_free_port(), str(spec_path), str(out_path)), nprocs=WORLD, join=True)
    got = torch.load(out_path, weights_only=True)

    # the reference: one process, the whole global batch of step 0 in one forward, plain PyTorch
    plan = TrainPlan.load(run.spec["plan_dir"])
    [(micro, ids)] = list(rank_steps(plan, 0, cfg.seed, 0, 1, rank=0, micro_batch=4, accum=1, world=1))
    assert ids == got["ids"], "both modes train the same rows in the same order"
    store = RowStore(plan, ("input_ids", "labels"))
    store.load(micro[0])
    batch = make_batch([store.unit_rows(u) for u in micro[0]], run.spec, "cpu")
    torch.manual_seed(cfg.seed)
    model = build_trainable_model(run.spec["model_path"], dtype=torch.float32, vocab_size=run.spec["vocab_size"],
                                  new_token_ids=run.spec["new_token_ids"], lora=cfg.lora,
                                  attn_implementation=run.spec["attn_implementation"])
    logps, mask = token_logps(model(**batch["model_inputs"]).logits, batch["labels"])
    (-logps.sum() / mask.sum()).backward()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert set(got["grads"]) == {n for n, _ in params}
    for name, p in params:
        assert torch.allclose(got["grads"][name], p.grad, rtol=1e-4, atol=1e-7), name
    assert any(float(p.grad.abs().max()) > 1e-3 for _, p in params)

    optimizer = torch.optim.AdamW([p for _, p in params], lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=0,
                                                num_training_steps=run.spec["total_steps"])
    torch.nn.utils.clip_grad_norm_([p for _, p in params], cfg.max_grad_norm)
    optimizer.step()
    scheduler.step()
    for name, p in params:
        assert torch.allclose(got["weights"][name], p.detach(), rtol=1e-5, atol=1e-6), name
