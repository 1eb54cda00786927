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
from raypipe.train.config import TrainConfig
from raypipe.train.data import prepare_data, steps_per_epoch
from raypipe.train.session import CHECKPOINT_DONE, LocalSession


def run_training(cfg: TrainConfig, loop: Callable[[dict], None], *, pairs: bool = False) -> dict[str, Any]:
    from raypipe.templates import get_format

    if not _cuda():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # DeepSpeed must not look for CUDA
    out = Path(cfg.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    fmt = get_format(cfg.format)
    model_path = build_tiny_model(cfg, fmt, out) if cfg.tiny_model else cfg.model
    tokenizer, new_ids = prepare_tokenizer(model_path, fmt, out / "tokenizer")
    local = cfg.num_workers == 0
    data = prepare_data(cfg, tokenizer, fmt, out, pairs=pairs, use_ray=not local)
    per_epoch = steps_per_epoch(data.num_rows, cfg)
    use_gpu = _cuda() if cfg.use_gpu is None and local else cfg.use_gpu
    if use_gpu is None:
        import ray

        use_gpu = ray.cluster_resources().get("GPU", 0) > 0
    spec = {
        "config": dataclasses.asdict(cfg),  # plain data: rebuilt and re-checked on the worker
        "model_path": str(model_path),
        "vocab_size": len(tokenizer),
        "new_token_ids": new_ids,
        "pad_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        "sources": data.sources,
        "steps_per_epoch": per_epoch,
        "total_steps": per_epoch * cfg.epochs,
        "run_dir": str(out),
        "use_gpu": bool(use_gpu),
        "local": local,
    }
    print(
        f"[raypipe] {cfg.name}: {data.counts['rows_per_epoch']} rows/epoch from {len(cfg.data)} source(s) "
        f"{data.sources}, {spec['total_steps']} optimizer steps, global batch {cfg.global_batch_size} = "
        f"{cfg.micro_batch_size} x {cfg.accum_steps} accum x {cfg.world_size} worker(s)",
        flush=True,
    )
    if local:
        loop({**spec, "rows": data.rows})
        final = LocalSession(str(out), []).latest_checkpoint()
        if final is None:
            raise RaypipeError(f"{cfg.name}: training produced no checkpoint under {out}/checkpoints")
        return finish(cfg, final, out, model_path, tokenizer, fmt, data.counts, spec)
    result = _fit_with_ray(cfg, loop, spec, data.dataset)
    with result.checkpoint.as_directory() as final:
        return finish(cfg, final, out, model_path, tokenizer, fmt, data.counts, spec)


def _fit_with_ray(cfg: TrainConfig, loop, spec: dict, dataset):
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
        datasets={"train": dataset},
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RaypipeError(f"{cfg.name}: training finished without a checkpoint")
    return result


def finish(cfg, final_dir, out: Path, model_path, tokenizer, fmt, counts, spec) -> dict[str, Any]:
    from raypipe.train.export import export_adapter, export_merged
    from raypipe.train.metrics import write_curves

    state = json.loads((Path(final_dir) / CHECKPOINT_DONE).read_text())
    if state["step"] != spec["total_steps"]:
        raise RaypipeError(f"{cfg.name}: last checkpoint is at step {state['step']} of {spec['total_steps']}")
    adapter = export_adapter(Path(final_dir) / "adapter", out / "adapter", tokenizer, fmt)
    curves = write_curves(state["history"], state["source_loss"], out)
    summary: dict[str, Any] = {
        "steps": state["step"],
        "final_loss": state["history"][-1]["loss"] if state["history"] else None,
        "resumed_from_steps": state["resumed_from"],
        "adapter": str(adapter),
        **curves,
        "rows": counts,
        "base_model": str(model_path),
    }
    tps = [h["tokens_per_s_per_worker"] for h in state["history"][1:]] or [0.0]
    summary["tokens_per_s_per_worker"] = sum(tps) / len(tps)
    if state["history"] and state["history"][-1].get("mfu") is not None:
        summary["mfu"] = state["history"][-1]["mfu"]
    if cfg.merge:
        summary["merged"] = str(export_merged(model_path, adapter, out / "merged", tokenizer, fmt))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"[raypipe] {cfg.name}: adapter -> {summary['adapter']}", flush=True)
    print(f"[raypipe] {cfg.name}: metrics -> {summary['metrics']}, loss plot -> {summary['plot']}", flush=True)
    if "merged" in summary:
        print(f"[raypipe] {cfg.name}: merged model -> {summary['merged']}", flush=True)
    return summary


def prepare_tokenizer(model_path, fmt, out_dir: Path):
    """The base tokenizer + the format's special tokens, saved with the Jinja chat template."""
    from transformers import AutoTokenizer

    from raypipe.templates import add_special_tokens, save_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    new_ids = add_special_tokens(tokenizer, fmt)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    save_tokenizer(tokenizer, fmt, str(out_dir))
    return tokenizer, list(new_ids)


def build_tiny_model(cfg: TrainConfig, fmt, out: Path) -> Path:
    """A tiny random Llama whose tokenizer is trained on the run's own data (CPU demos, tests)."""
    import torch

    from raypipe.testing.tiny import make_tiny_model, make_tiny_tokenizer

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

