"""The driver side of a training run, shared by SFT and mDPO.

1. tokenizer: the base's, plus the format's special tokens, saved with the chat template;
2. data: read, tokenize, mix, count optimizer steps;
3. run the recipe: Ray Train `TorchTrainer` (N workers) or alone in this process;
4. export the final checkpoint (adapter + tokenizer + template, optionally merged) and write
   the metrics JSON and loss plot; return a summary saying where everything went.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Callable

from raypipe.errors import RaypipeError
from raypipe.train.attention import VARLEN_SDPA
from raypipe.train.config import TrainConfig
from raypipe.train.data import prepare_data, steps_per_epoch
from raypipe.train.session import CHECKPOINT_DONE, LocalSession


@dataclasses.dataclass
class PreparedRun:
    """Everything the driver prepares before the recipe starts (see `prepare_run`)."""

    spec: dict[str, Any]  # what every worker gets: plain data
    out: Path
    model_path: Any
    tokenizer: Any
    fmt: Any
    counts: dict[str, Any]


def run_training(cfg: TrainConfig, loop: Callable[[dict], None], *, pairs: bool = False) -> dict[str, Any]:
    run = prepare_run(cfg, pairs=pairs)
    if run.spec["local"]:
        loop(run.spec)
        final = LocalSession(str(run.out)).latest_checkpoint()
        if final is None:
            raise RaypipeError(f"{cfg.name}: training produced no checkpoint under {run.out}/checkpoints")
        return finish(cfg, final, run)
    result = _fit_with_ray(cfg, loop, run.spec)
    with result.checkpoint.as_directory() as final:
        return finish(cfg, final, run)


def prepare_run(cfg: TrainConfig, *, pairs: bool = False, use_ray: bool | None = None) -> PreparedRun:
    """Tokenizer, data (tokenized on Ray workers when `use_ray`, default: with Ray Train
    workers), the plan every worker follows, and the spec the recipe runs from."""
    from raypipe.templates import get_format

    if not _cuda():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # DeepSpeed must not look for CUDA
    out = Path(cfg.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    fmt = get_format(cfg.format)
    model_path = build_tiny_model(cfg, fmt, out) if cfg.tiny_model else cfg.model
    tokenizer, new_ids = prepare_tokenizer(model_path, fmt, out / "tokenizer")
    local = cfg.num_workers == 0
    use_gpu = _cuda() if cfg.use_gpu is None and local else cfg.use_gpu
    if use_gpu is None:
        import ray

        use_gpu = ray.cluster_resources().get("GPU", 0) > 0
    attn = resolve_attention(cfg.attn_implementation, bool(use_gpu))
    pack_len = cfg.max_seq_len if resolve_pack(cfg.pack, attn, pairs) else None
    if pack_len and attn == "sdpa":
        attn = VARLEN_SDPA  # SDPA per sample: no attention scores across (or between) samples
    data = prepare_data(cfg, tokenizer, fmt, out, pairs=pairs, use_ray=not local if use_ray is None else use_ray,
                        tokenizer_dir=str(out / "tokenizer"))
    plan = plan_from_data(data, pack_len)
    _check_same_plan(plan, out, cfg)
    plan.save(out / "plan")
    per_epoch = steps_per_epoch(plan.num_units, cfg)
    spec = {
        "config": dataclasses.asdict(cfg),  # plain data: rebuilt and re-checked on the worker
        "model_path": str(model_path),
        "vocab_size": len(tokenizer),
        "new_token_ids": new_ids,
        "pad_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        "sources": data.sources,
        "steps_per_epoch": per_epoch,
        "total_steps": min(per_epoch * cfg.epochs, cfg.max_steps or per_epoch * cfg.epochs),
        "run_dir": str(out),
        "plan_dir": str(out / "plan"),
        "data_fingerprint": plan.fingerprint(),
        "attn_implementation": attn,
        "pack_len": pack_len,
        "use_gpu": bool(use_gpu),
        "local": local,
    }
    unit = f"packed rows of {pack_len} tokens" if pack_len else "rows"
    print(
        f"[raypipe] {cfg.name}: {data.counts['rows_per_epoch']} rows/epoch from {len(cfg.data)} source(s) "
        f"{data.sources} in {plan.num_units} {unit}, {spec['total_steps']} optimizer steps, global batch "
        f"{cfg.global_batch_size} {unit} = {cfg.micro_batch_size} x {cfg.accum_steps} accum x "
        f"{cfg.world_size} worker(s), attention {attn}",
        flush=True,
    )
    counts = {**data.counts, "units_per_epoch": plan.num_units, "pack_len": pack_len}
    return PreparedRun(spec=spec, out=out, model_path=model_path, tokenizer=tokenizer, fmt=fmt, counts=counts)


def resolve_attention(requested: str | None, use_gpu: bool) -> str:
    """The attention implementation: as configured, else flash-attention 2 on GPUs that have
    the flash_attn package, else PyTorch SDPA."""
    import importlib.util

    if requested:
        return requested
    if use_gpu and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def resolve_pack(requested: bool | None, attn: str, pairs: bool) -> bool:
    """Packing is on by default when the attention implementation honours packed rows; DPO pairs
    are never packed (both trajectories of a pair stay side by side in one micro-batch)."""
    from raypipe.train.batches import PACKING_ATTENTION

    if pairs:
        if requested:
            raise RaypipeError("pack: mDPO pairs are not packed; leave pack unset or false")
        return False
    if requested and attn not in PACKING_ATTENTION:
        raise RaypipeError(f"pack: attention implementation {attn!r} cannot keep packed samples apart "
                           f"(use one of {list(PACKING_ATTENTION)} or pack: false)")
    return attn in PACKING_ATTENTION if requested is None else requested


def plan_from_data(data, pack_len: int | None):
    """The units of the run (packed rows or single rows) over the prepared index."""
    import numpy as np

    from raypipe.train.plan import TrainPlan, build_units

    index = data.index
    tokens = index["num_tokens"].to_numpy()
    offsets, items = build_units(tokens, pack_len)
    return TrainPlan(
        files=data.files, item_file=index["file"].to_numpy(), item_row=index["row"].to_numpy(),
        item_source=index["source_idx"].to_numpy(),
        item_id=np.asarray(index["id"].to_pylist(), dtype=str), item_tokens=tokens,
        unit_offsets=offsets, unit_items=items, pack_len=pack_len, pairs=data.pairs,
    )


def _check_same_plan(plan, out: Path, cfg: TrainConfig) -> None:
    """A run that resumes from a checkpoint must train on the data it started with."""
    from raypipe.train.plan import PLAN_FILE

    saved = out / "plan" / PLAN_FILE
    has_checkpoint = any((out / "checkpoints").glob("step_*")) or any((out / "ray" / cfg.name).glob("checkpoint_*"))
    if saved.exists() and has_checkpoint:
        before = json.loads(saved.read_text()).get("fingerprint")
        if before != plan.fingerprint():
            raise RaypipeError(
                f"{cfg.name}: the training data changed since the checkpoints under {out} were written "
                f"(plan {before} -> {plan.fingerprint()}); resume with the same data, or start a new run "
                "(another name or out)")


def _fit_with_ray(cfg: TrainConfig, loop, spec: dict):
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(
        loop,
        train_loop_config=spec,
        scaling_config=ScalingConfig(
            num_workers=cfg.num_workers,
            use_gpu=spec["use_gpu"],
            resources_per_worker={"CPU": cfg.cpus_per_worker, **({"GPU": 1} if spec["use_gpu"] else {})},
        ),
        run_config=RunConfig(
            name=cfg.name,
            storage_path=str(Path(spec["run_dir"]) / "ray"),  # same name + storage_path on re-run = resume
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints),
            failure_config=FailureConfig(max_failures=cfg.max_failures),
        ),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RaypipeError(f"{cfg.name}: training finished without a checkpoint")
    return result


def finish(cfg, final_dir, run: PreparedRun) -> dict[str, Any]:
    from raypipe.train.export import export_adapter, export_merged, export_vllm
    from raypipe.train.metrics import write_curves

    out, model_path, tokenizer, fmt, counts, spec = run.out, run.model_path, run.tokenizer, run.fmt, run.counts, run.spec
    state = json.loads((Path(final_dir) / CHECKPOINT_DONE).read_text())
    if state["step"] != spec["total_steps"]:
        raise RaypipeError(f"{cfg.name}: last checkpoint is at step {state['step']} of {spec['total_steps']}")
    sft_adapter = getattr(cfg, "sft_adapter", None)
    adapter = export_adapter(Path(final_dir) / "adapter", out / "adapter", tokenizer, fmt, base_model=str(model_path),
                             embedding_rows=_embedding_rows(tokenizer, model_path), sft_adapter=sft_adapter)
    curves = write_curves(state["history"], state["source_loss"], out)
    summary: dict[str, Any] = {
        "steps": state["step"],
        "final_loss": state["history"][-1]["loss"] if state["history"] else None,
        "resumed_from_steps": state["resumed_from"],
        "adapter": str(adapter),
        **curves,
        "rows": counts,
        "base_model": str(model_path),
        "data_fingerprint": spec["data_fingerprint"],
    }
    tps = [h["tokens_per_s_per_worker"] for h in state["history"][1:]] or [0.0]
    summary["tokens_per_s_per_worker"] = sum(tps) / len(tps)
    if state["history"] and state["history"][-1].get("mfu") is not None:
        summary["mfu"] = state["history"][-1]["mfu"]
    if cfg.vllm_export:
        reuse = Path(sft_adapter).resolve().parent / "vllm" / "base" if sft_adapter else None
        summary["vllm"] = export_vllm(adapter, out / "vllm", tokenizer, fmt, base_model=str(model_path), reuse_base=reuse)
    if cfg.merge:
        summary["merged"] = str(export_merged(model_path, adapter, out / "merged", tokenizer, fmt))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"[raypipe] {cfg.name}: adapter -> {summary['adapter']}", flush=True)
    print(f"[raypipe] {cfg.name}: metrics -> {summary['metrics']}, loss plot -> {summary['plot']}", flush=True)
    if "vllm" in summary:
        print(f"[raypipe] {cfg.name}: vLLM multi-LoRA: {summary['vllm']['serve']}", flush=True)
    if "merged" in summary:
        print(f"[raypipe] {cfg.name}: merged model -> {summary['merged']}", flush=True)
    return summary


def _embedding_rows(tokenizer, model_path) -> int:
    """Rows the trained model's embeddings have: the base's, grown to len(tokenizer) when needed."""
    return max(len(tokenizer), base_embedding_rows(model_path))


def base_embedding_rows(model_path) -> int:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(model_path))
    config = getattr(config, "text_config", None) or config
    return int(config.vocab_size)


def prepare_tokenizer(model_path, fmt, out_dir: Path):
    """The base tokenizer + the format's special tokens (+ reserved tokens up to the resized
    embedding size), saved with the Jinja chat template."""
    from transformers import AutoTokenizer

    from raypipe.templates import add_special_tokens, save_tokenizer

    from raypipe.train.model import pad_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    new_ids = add_special_tokens(tokenizer, fmt)
    pad_tokenizer(tokenizer, base_embedding_rows(model_path))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    save_tokenizer(tokenizer, fmt, str(out_dir))
    return tokenizer, list(new_ids)


def build_tiny_model(cfg: TrainConfig, fmt, out: Path) -> Path:
    """A tiny random Llama whose tokenizer is trained on the run's own data (CPU demos, tests)."""
    import torch

    from raypipe.tiny import make_tiny_model, make_tiny_tokenizer

    base = out / "base"
    if (base / "config.json").exists():  # a resumed run must train the same random model
        return base
    texts = _texts(cfg, fmt)
    t = cfg.tiny_model
    tokenizer = make_tiny_tokenizer(texts, vocab_size=t.vocab_size)
    model = make_tiny_model(tokenizer, hidden=t.hidden, layers=t.layers, heads=t.heads, seed=t.seed)
    with torch.no_grad():
        model.get_output_embeddings().weight.normal_(0.0, t.head_std)
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    return base


def _texts(cfg: TrainConfig, fmt) -> list[str]:
    from raypipe.schema import Sample
    from raypipe.templates import render
    from raypipe.io import read_sample_file
    from raypipe.train.data import expand

    texts = []
    for src in cfg.data:
        for path in expand(src.path):
            if src.kind == "samples":
                texts.extend(render(s, fmt) for s in read_sample_file(path))
            elif src.kind == "pairs":
                import pyarrow.parquet as pq

                for row in pq.read_table(path).to_pylist():
                    texts.extend(render(Sample.from_row(row[side]), fmt) for side in ("chosen", "rejected"))
            else:
                raise RaypipeError(
                    f"{path}: tiny_model needs text to train its tokenizer; give canonical "
                    "samples (kind: samples), not already-tokenized data"
                )
    return texts


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()

