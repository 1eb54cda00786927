"""`raypipe export`: canonical samples -> training data other trainers read (TRL, LLaMA-Factory, axolotl)."""

from __future__ import annotations

import sys

from raypipe.registry import Command

FORMATS = ("openai", "sharegpt", "llamafactory")


def _add(p) -> None:
    p.add_argument("inputs", nargs="+", help="canonical sample files, globs or dataset folders")
    p.add_argument("--to", required=True, choices=FORMATS,
                   help="openai: chat fine-tuning JSONL (TRL, axolotl); sharegpt: LLaMA-Factory's ShareGPT "
                        "JSONL; llamafactory: a LLaMA-Factory dataset_dir (JSON + dataset_info.json)")
    p.add_argument("--out", required=True, help="output folder (data file + config snippets + export.json)")
    p.add_argument("--name", default="raypipe", help="dataset name: file name and dataset_info.json key")
    p.add_argument("--bare", action="store_true",
                   help="leave out the `raypipe` field (what the layout cannot hold: ids, meta, lineage) and "
                        "reasoning_content, e.g. for OpenAI's fine-tuning API; convert then cannot restore them")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="read a dataset whose run did not finish (its committed rows only)")


def _run(args) -> int:
    from raypipe.io.export import export_samples

    export_samples(args.inputs, args.out, args.to, name=args.name, bare=args.bare,
                   allow_incomplete=args.allow_incomplete, log=lambda m: print(m, file=sys.stderr))
    return 0


COMMANDS = [Command(
    path=("export",), help="write samples as OpenAI / ShareGPT / LLaMA-Factory training data",
    description="Write canonical samples in a layout other trainers read, with their config snippets: "
    "openai (chat fine-tuning JSONL: TRL's SFTTrainer, axolotl chat_template), sharegpt (LLaMA-Factory "
    "ShareGPT with function_call/observation turns), llamafactory (a dataset_dir with dataset_info.json). "
    "Each row also keeps what its layout cannot hold in a `raypipe` field, so `raypipe convert --from "
    "openai|sharegpt` gives back the same samples.",
    add_arguments=_add, run=_run,
)]
