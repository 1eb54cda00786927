"""Exports the ecosystem loads, written by the driver from the final checkpoint.

- `adapter/`: a PEFT adapter on the original base (LoRA + the trained rows of the new tokens as
  PEFT trainable tokens) with the tokenizer and the format's Jinja chat template. The tokenizer
  is padded to the embedding size (`raypipe.train.model.pad_tokenizer`), so both
  `AutoPeftModelForCausalLM.from_pretrained(adapter)` and
  `PeftModel.from_pretrained(base, adapter)` after `base.resize_token_embeddings(len(tok))`
  rebuild the trained model exactly. An mDPO run's adapter is the SFT adapter and the mDPO
  adapter in one: LoRA ranks concatenated (exact: the two low-rank updates add up), the SFT
  run's token rows; so base + this adapter = base + SFT + mDPO.
- `vllm/`: `base/` is the base resized with the trained token rows written in (vLLM's LoRA
  loader takes only lora_A/lora_B tensors), `adapter/` the plain LoRA adapter without token
  tensors. An mDPO run on top of an SFT run reuses the SFT run's `vllm/base` (the same rows), so
  one base serves both fine-tunes as multi-LoRA.
- `merged/` (`merge: true`): a standalone model with the adapter merged in.
`raypipe_export.json` in each says what it is and how to load it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
EXPORT_INFO = "raypipe_export.json"
TOKEN_TENSOR = "trainable_tokens_delta"


def export_adapter(adapter_dir: Path, dest: Path, tokenizer, fmt, *, base_model: str,
                   embedding_rows: int, sft_adapter: str | None = None) -> Path:
    """`adapter_dir` (the run's final adapter) as a PEFT adapter on `base_model`; with
    `sft_adapter` (mDPO), combined with it into one adapter."""
    from raypipe.templates import save_tokenizer
    from raypipe.templates.formats import format_name

    _fresh(dest)
    if sft_adapter:
        combine_adapters(Path(sft_adapter), adapter_dir, dest)
    else:
        shutil.copytree(adapter_dir, dest, dirs_exist_ok=True)
    config = _read_config(dest)
    config["base_model_name_or_path"] = _portable(base_model)
    _write_config(dest, config)
    save_tokenizer(tokenizer, fmt, str(dest))
    info = {
        "format": format_name(fmt),
        "base_model": _portable(base_model),
        "contains": "base + SFT adapter + mDPO adapter (one adapter)" if sft_adapter else "base + adapter",
        "vocab_size": len(tokenizer),
        "embedding_rows": embedding_rows,
        "lora_rank": config["r"],
        "trained_token_rows": len(_token_rows(config)),
        "load": {
            "auto": "AutoPeftModelForCausalLM.from_pretrained(this_dir)",
            "peft": "base = AutoModelForCausalLM.from_pretrained(base_model); if it has fewer than "
                    "embedding_rows rows: base.resize_token_embeddings(embedding_rows); "
                    "PeftModel.from_pretrained(base, this_dir)",
        },
    }
    (dest / EXPORT_INFO).write_text(json.dumps(info, indent=1))
    return dest


def export_vllm(adapter: Path, dest: Path, tokenizer, fmt, *, base_model: str,
                reuse_base: Path | None = None) -> dict[str, str]:
    """`dest/adapter` (plain LoRA) and `dest/base` (the base with the trained token rows), or a
    pointer to `reuse_base` when that base already holds exactly these rows."""
    from safetensors.torch import load_file, save_file

    _fresh(dest)
    config = _read_config(adapter)
    rows = _token_rows(config)
    if not rows:
        base_dir = _portable(base_model)  # nothing new to serve: the original base
    elif reuse_base is not None and _same_rows(reuse_base, adapter):
        base_dir = str(reuse_base.resolve())
    else:
        base_dir = str(write_resized_base(base_model, adapter, dest / "base", tokenizer, fmt))
    lora_dir = dest / "adapter"
    lora_dir.mkdir(parents=True)
    tensors = load_file(str(adapter / ADAPTER_WEIGHTS))
    save_file({k: v.contiguous() for k, v in tensors.items() if TOKEN_TENSOR not in k}, str(lora_dir / ADAPTER_WEIGHTS))
    config.pop("trainable_token_indices", None)
    config["base_model_name_or_path"] = base_dir
    _write_config(lora_dir, config)
    info = {"base": base_dir, "adapter": str(lora_dir.resolve()), "max_lora_rank": config["r"],
            "serve": f"vllm serve {base_dir} --enable-lora --max-lora-rank {_vllm_rank(config['r'])} "
                     f"--lora-modules NAME={lora_dir.resolve()}"}
    (dest / EXPORT_INFO).write_text(json.dumps(info, indent=1))
    return info


def write_resized_base(base_model: str, adapter: Path, dest: Path, tokenizer, fmt) -> Path:
    """The base, resized for the tokenizer, with the adapter's trained token rows written in."""
    import torch
    from safetensors.torch import load_file

    from raypipe.templates import save_tokenizer
    from raypipe.train.model import _resize, load_causal_lm

    model = load_causal_lm(base_model, "auto")
    _resize(model, len(tokenizer))
    tensors = load_file(str(adapter / ADAPTER_WEIGHTS))
    indices = _read_config(adapter).get("trainable_token_indices") or {}
    modules = dict(model.named_modules())
    with torch.no_grad():
        for key, values in tensors.items():
            if TOKEN_TENSOR not in key:
                continue
            name = key.removeprefix("base_model.model.").split(".token_adapter.")[0]
            rows = indices[name.split(".")[-1]]
            weight = modules[name].weight
            weight[torch.tensor(rows)] = values.to(weight.dtype)
    model.save_pretrained(dest)
    save_tokenizer(tokenizer, fmt, str(dest))
    (dest / EXPORT_INFO).write_text(json.dumps({"base_model": _portable(base_model), "token_rows_from": str(adapter),
                                                "token_rows": _token_rows(_read_config(adapter))}, indent=1))
    return dest


def export_merged(base: str | Path, adapter_dir: Path, dest: Path, tokenizer, fmt) -> Path:
    from raypipe.templates import save_tokenizer
    from raypipe.train.model import load_for_inference

    model, _ = load_for_inference(str(base), str(adapter_dir))
    merged = model.merge_and_unload()
    _fresh(dest)
    merged.save_pretrained(dest)
    save_tokenizer(tokenizer, fmt, str(dest))
    (dest / EXPORT_INFO).write_text(json.dumps({"base_model": _portable(str(base)), "adapter": str(adapter_dir),
                                                "load": "AutoModelForCausalLM.from_pretrained(this_dir)"}, indent=1))
    return dest


def combine_adapters(first: Path, second: Path, dest: Path) -> None:
    """One LoRA adapter equal to applying `first`, then `second` (trained on the model with
    `first` merged in): per module A = [A1; A2] and B = [s1 B1, s2 B2] (scaling folded into B,
    alpha = rank), so B A = s1 B1 A1 + s2 B2 A2. The token rows are `first`'s (`second` trained
    none)."""
    import torch
    from safetensors.torch import load_file, save_file

    c1, c2 = _read_config(first), _read_config(second)
    for c, where in ((c1, first), (c2, second)):
        if c.get("use_rslora") or c.get("use_dora") or c.get("rank_pattern") or c.get("alpha_pattern"):
            raise ValueError(f"{where}: only plain LoRA adapters can be combined")
    if _token_rows(c2):
        raise ValueError(f"{second}: the second adapter must not train token rows")
    t1, t2 = load_file(str(first / ADAPTER_WEIGHTS)), load_file(str(second / ADAPTER_WEIGHTS))
    r1, r2 = c1["r"], c2["r"]
    s1, s2 = c1["lora_alpha"] / r1, c2["lora_alpha"] / r2
    modules = sorted({k.rsplit(".lora_", 1)[0] for k in [*t1, *t2] if ".lora_A." in k or ".lora_B." in k})
    out: dict[str, Any] = {k: v for k, v in t1.items() if TOKEN_TENSOR in k}
    for m in modules:
        a1, b1 = t1.get(f"{m}.lora_A.weight"), t1.get(f"{m}.lora_B.weight")
        a2, b2 = t2.get(f"{m}.lora_A.weight"), t2.get(f"{m}.lora_B.weight")
        ref_a, ref_b = (a1, b1) if a1 is not None else (a2, b2)
        if a1 is None:  # the module has LoRA in one adapter only: the other part is zero
            a1, b1 = ref_a.new_zeros((r1, ref_a.shape[1])), ref_b.new_zeros((ref_b.shape[0], r1))
        if a2 is None:
            a2, b2 = ref_a.new_zeros((r2, ref_a.shape[1])), ref_b.new_zeros((ref_b.shape[0], r2))
        out[f"{m}.lora_A.weight"] = torch.cat([a1, a2], dim=0).contiguous()
        out[f"{m}.lora_B.weight"] = torch.cat([b1 * s1, b2 * s2], dim=1).contiguous()
    dest.mkdir(parents=True, exist_ok=True)
    save_file(out, str(dest / ADAPTER_WEIGHTS))
    config = dict(c1)
    targets = c1["target_modules"], c2["target_modules"]
    if all(isinstance(t, list) for t in targets):
        config["target_modules"] = sorted(set(targets[0]) | set(targets[1]))
    config.update(r=r1 + r2, lora_alpha=r1 + r2)
    _write_config(dest, config)


def _same_rows(base_dir: Path, adapter: Path) -> bool:
    """Does `base_dir` (a vllm/base) hold the token rows of `adapter`'s SFT run? It records the
    adapter its rows came from; the rows are compared value for value."""
    info_path = base_dir / EXPORT_INFO
    if not info_path.exists():
        return False
    from safetensors.torch import load_file

    source = Path(json.loads(info_path.read_text())["token_rows_from"])
    if not (source / ADAPTER_WEIGHTS).exists():
        return False
    mine = {k: v for k, v in load_file(str(adapter / ADAPTER_WEIGHTS)).items() if TOKEN_TENSOR in k}
    theirs = {k: v for k, v in load_file(str(source / ADAPTER_WEIGHTS)).items() if TOKEN_TENSOR in k}
    return mine.keys() == theirs.keys() and all(bool((mine[k] == theirs[k]).all()) for k in mine)


def _token_rows(config: dict) -> list[int]:
    indices = config.get("trainable_token_indices") or {}
    return sorted({i for rows in indices.values() for i in rows}) if isinstance(indices, dict) else list(indices)


def _vllm_rank(r: int) -> int:
    """vLLM's --max-lora-rank takes one of a few sizes; the smallest that holds r."""
    return next((k for k in (8, 16, 32, 64, 128, 256, 320, 512) if k >= r), r)


def _portable(path: str | Path) -> str:
    """Local paths absolute (a loader may run elsewhere); hub names as given."""
    p = Path(str(path))
    return str(p.resolve()) if p.exists() else str(path)


def _read_config(d: Path) -> dict:
    return json.loads((d / ADAPTER_CONFIG).read_text())


def _write_config(d: Path, config: dict) -> None:
    (d / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2))


def _fresh(dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
