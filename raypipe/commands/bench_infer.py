"""`raypipe bench infer`: the transformers generation stage on BFCL prompts, batches in arrival
order vs sorted by prompt length (what `raypipe.infer.generate` does), side by side.

Runs the stage in this process (no Ray) so the figures are the stage's own. Padding waste is
exact (token counts); times depend on the machine and its load.
"""

from __future__ import annotations

import json
import time

from raypipe.registry import Command


def _add(p) -> None:
    p.add_argument("--data", required=True, help="BFCL directory holding en/, zhtw/, possible_answer/")
    p.add_argument("--lang", choices=["en", "zhtw"], default="zhtw")
    p.add_argument("--format", default="tools-dt")
    p.add_argument("--model", default=None, help="model path (default: a tiny random model built here)")
    p.add_argument("--items", type=int, default=64, help="items (spread over the five categories)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=16)


def _run(args) -> int:
    import tempfile

    from raypipe.eval.bfcl_data import load_bfcl
    from raypipe.infer.bfcl import DEFAULT_CATEGORIES, render_items, select_items
    from raypipe.infer.hf_stage import TransformersGenerateStage
    from raypipe.templates import get_format

    per_cat = max(1, args.items // len(DEFAULT_CATEGORIES))
    items = select_items(load_bfcl(args.data, args.lang, DEFAULT_CATEGORIES), per_cat)
    prompts = [r["prompt"] for r in render_items(items, get_format(args.format))]
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from raypipe.tiny import save_tiny_model

            model = str(save_tiny_model(tmp, prompts[:50]))
        stage = TransformersGenerateStage(model, max_new_tokens=args.max_new_tokens, stop=["<|im_end|>"])
        lengths = {p: len(stage.tokenizer.encode(p, add_special_tokens=False)) for p in prompts}
        orders = {"arrival order": prompts, "sorted by length": sorted(prompts, key=len)}
        figures = {}
        stage.generate(prompts[: args.batch_size])  # warm-up: first-call allocations
        for name, order in orders.items():
            batches = [order[i:i + args.batch_size] for i in range(0, len(order), args.batch_size)]
            padded = sum(len(b) * max(lengths[p] for p in b) for b in batches)
            started = time.perf_counter()
            generated = sum(r["num_generated_tokens"] for b in batches for r in stage.generate(b))
            took = time.perf_counter() - started
            figures[name] = {"seconds": round(took, 2), "prompts_per_s": round(len(order) / took, 2),
                             "generated_tokens": generated,
                             "padding_share": round(1 - sum(lengths.values()) / padded, 4)}
    a, b = figures["arrival order"], figures["sorted by length"]
    print(f"{len(prompts)} prompts ({args.lang}, {args.format}), batch {args.batch_size}, "
          f"max_new_tokens {args.max_new_tokens}, model {args.model or 'tiny random'}")
    print("| order | seconds | prompts/s | padding share of prompt tokens |")
    print("|---|---:|---:|---:|")
    for name, f in figures.items():
        print(f"| {name} | {f['seconds']} | {f['prompts_per_s']} | {100 * f['padding_share']:.1f}% |")
    print(f"speed-up sorted / arrival: {b['prompts_per_s'] / a['prompts_per_s']:.2f}x")
    print(json.dumps(figures))
    return 0


COMMANDS = [Command(path=("bench", "infer"), help="generation stage: arrival-order vs length-sorted batches",
                    add_arguments=_add, run=_run)]
