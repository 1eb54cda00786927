"""Export: the adapter with its tokenizer and Jinja chat template; optionally the merged model.

Both load with plain transformers + peft (see `raypipe.train.model.load_for_inference` for the
three lines); the merged model is a standalone checkpoint that vLLM serves without LoRA support
for added tokens.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def export_adapter(adapter_dir: Path, dest: Path, tokenizer, fmt) -> Path:
    from raypipe.templates import save_tokenizer
    from raypipe.templates.formats import format_name

    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(adapter_dir, dest)
    save_tokenizer(tokenizer, fmt, str(dest))
    (dest / "raypipe_export.json").write_text(json.dumps({
        "format": format_name(fmt),
        "vocab_size": len(tokenizer),
        "load": "resize the base's embeddings to len(tokenizer) padded to a multiple of 64, "
                "then PeftModel.from_pretrained(base, this_dir)",
    }, indent=1))
    return dest


def export_merged(base: str | Path, adapter_dir: Path, dest: Path, tokenizer, fmt) -> Path:
    from raypipe.templates import save_tokenizer
    from raypipe.train.model import load_for_inference

    model, _ = load_for_inference(str(base), str(adapter_dir))
    merged = model.merge_and_unload()
    if dest.exists():
        shutil.rmtree(dest)
    merged.save_pretrained(dest)
    save_tokenizer(tokenizer, fmt, str(dest))
    return dest
