"""`raypipe train sft|mdpo CONFIG.yaml`, `raypipe bench train`, and the train_sft / train_mdpo job steps."""

from __future__ import annotations

import json

from raypipe.registry import Command, Step
from raypipe.train.config import MDPOConfig, SFTConfig


def _add_train(p) -> None:
    p.add_argument("config", help="YAML file with the step's keys (see docs/training.md, jobs/sft.yaml)")
    p.add_argument("--out", default=None, help="override the run directory")
    p.add_argument("--workers", type=int, default=None, help="override num_workers (0: in process, no Ray)")
    p.add_argument("--address", default=None, help="Ray cluster to join; default: a local Ray")


def _load(args, cls):
    import yaml

    from raypipe.config import load_config
    from raypipe.errors import RaypipeError

    try:
        with open(args.config, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except OSError as exc:
        raise RaypipeError(f"{args.config}: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise RaypipeError(f"{args.config}: expected a mapping of config keys")
    if args.out is not None:
        data["out"] = args.out
    if args.workers is not None:
        data["num_workers"] = args.workers
    return load_config(cls, data, where=args.config)


def _run_sft(args) -> int:
    cfg = _load(args, SFTConfig)
    _maybe_init_ray(cfg, args.address)
    print(json.dumps(run_sft_step(cfg, None), indent=1))
    return 0


def _run_mdpo(args) -> int:
    cfg = _load(args, MDPOConfig)
    _maybe_init_ray(cfg, args.address)
    print(json.dumps(run_mdpo_step(cfg, None), indent=1))
    return 0


def _maybe_init_ray(cfg, address) -> None:
    if cfg.num_workers > 0:
        from raypipe.jobs import RayConfig, init_ray

        init_ray(RayConfig(), address)


def run_sft_step(cfg: SFTConfig, job) -> dict:
    from raypipe.train.launch import run_training
    from raypipe.train.sft import sft_loop

    return run_training(cfg, sft_loop)


def run_mdpo_step(cfg: MDPOConfig, job) -> dict:
    from raypipe.train.launch import run_training
    from raypipe.train.mdpo import mdpo_loop

    return run_training(cfg, mdpo_loop, pairs=True)


def _add_bench(p) -> None:
    p.add_argument("--out", default="runs/bench-train", help="scratch directory (wiped)")
    p.add_argument("--steps", type=int, default=20, help="timed optimizer steps (after one warm-up)")
    p.add_argument("--micro-batch", type=int, default=4, help="samples per padded micro-batch")
    p.add_argument("--packed-micro-batch", type=int, default=1, help="packed rows per packed micro-batch")
    p.add_argument("--seq-len", type=int, default=2048, help="packed row length (and the longest sample kept)")
    p.add_argument("--repeats", type=int, default=1, help="alternate packed and padded runs N times, report medians")
    p.add_argument("--workers", type=int, default=0, help="Ray Train workers for the recipe (0: in process)")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _run_bench(args) -> int:
    import shutil

    from raypipe.train.bench import bench_train

    shutil.rmtree(args.out, ignore_errors=True)
    if args.workers > 0:
        from raypipe.jobs import RayConfig, init_ray

        init_ray(RayConfig())
    result = bench_train(
        args.out, steps=args.steps, micro_batch=args.micro_batch, packed_micro_batch=args.packed_micro_batch,
        seq_len=args.seq_len, workers=args.workers, hidden=args.hidden, layers=args.layers, repeats=args.repeats,
    )
    if args.json:
        print(json.dumps(result))
    else:
        for mode in ("packed", "padded"):
            r = result[mode]
            print(f"recipe {mode} ({r['unit']}, {r['micro_batch']} per micro-batch, {r['samples_per_step']} "
                  f"samples/step): {r['real_tokens_per_s_per_worker']} real tokens/s per worker")
        print(f"packed / padded: {result['packed_over_padded']}")
        print(f"plain  ({result['plain']}): {result['plain_tokens_per_s']} tokens/s")
        print(f"ratio recipe (packed) / plain per worker: {result['ratio_per_worker']}, total: {result['ratio_total']}")
    return 0


COMMANDS = [
    Command(path=("train", "sft"), help="LoRA SFT on Ray Train + DeepSpeed (or in process)",
            add_arguments=_add_train, run=_run_sft),
    Command(path=("train", "mdpo"), help="multi-turn DPO (MAGNET) on top of an SFT adapter",
            add_arguments=_add_train, run=_run_mdpo),
    Command(path=("bench", "train"), help="training real tokens/s: packed vs padded recipe, and a plain PEFT loop",
            add_arguments=_add_bench, run=_run_bench),
]

STEPS = [
    Step(kind="train_sft", config=SFTConfig, run=run_sft_step, help="LoRA SFT (raypipe.train.sft)"),
    Step(kind="train_mdpo", config=MDPOConfig, run=run_mdpo_step, help="multi-turn DPO (raypipe.train.mdpo)"),
]
