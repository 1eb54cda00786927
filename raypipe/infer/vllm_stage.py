"""GPU generation: `ray.data.llm`'s vLLM processor, configured from a `GenerationConfig`.

Prompts arrive already rendered, so ray.data.llm's chat-template stage is off. Its tokenize
stage is off too (vLLM tokenizes a text prompt itself), and so is its detokenize stage: that
stage decodes with `skip_special_tokens=True`, which would erase the Decision Token the
scorer reads; vLLM's own text output (with `skip_special_tokens=False`) is used instead.
A LoRA adapter is applied per row through the `model` column, which vLLM resolves as a local
path when `dynamic_lora_loading_path` is unset.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from raypipe.errors import MissingExtraError, RaypipeError
from raypipe.infer.config import GenerationConfig


def engine_kwargs(cfg: GenerationConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"tensor_parallel_size": cfg.tensor_parallel_size}
    if cfg.max_model_len is not None:
        kwargs["max_model_len"] = cfg.max_model_len
    if cfg.adapter:
        kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=lora_rank(cfg))
    kwargs.update(cfg.engine_kwargs)  # the user's explicit engine arguments win
    return kwargs


def lora_rank(cfg: GenerationConfig) -> int:
    if cfg.max_lora_rank is not None:
        return cfg.max_lora_rank
    config_file = Path(str(cfg.adapter)) / "adapter_config.json"
    if config_file.exists():
        return int(json.loads(config_file.read_text(encoding="utf-8")).get("r", 16))
    return 64  # remote adapter: vLLM's rank must be >= the adapter's; 64 covers common ones


def check_adapter_vocab(cfg: GenerationConfig) -> None:
    """vLLM's LoRA cannot serve tokens an adapter added (the Decision Token...): refuse early,
    with the way out, rather than generate text that silently lacks them."""
    if not cfg.adapter:
        return
    export = Path(cfg.adapter) / "raypipe_export.json"
    base = Path(cfg.model) / "config.json"
    if not (export.exists() and base.exists()):
        return  # remote model or foreign adapter: nothing local to compare
    adapter_vocab = json.loads(export.read_text(encoding="utf-8")).get("vocab_size")
    base_vocab = json.loads(base.read_text(encoding="utf-8")).get("vocab_size")
    if isinstance(adapter_vocab, int) and isinstance(base_vocab, int) and adapter_vocab > base_vocab:
        raise RaypipeError(
            f"adapter {cfg.adapter} adds {adapter_vocab - base_vocab} token(s) to {cfg.model}; vLLM's "
            "LoRA cannot serve added tokens. Evaluate the merged export instead (model: the merged "
            "directory, no adapter) or use backend 'transformers'"
        )


def processor_config_kwargs(cfg: GenerationConfig) -> dict[str, Any]:
    """Keyword arguments of `ray.data.llm.vLLMEngineProcessorConfig` (pure: no vLLM, no Ray)."""
    return {
        "model_source": cfg.model,
        "engine_kwargs": engine_kwargs(cfg),
        "concurrency": cfg.replicas,
        "batch_size": cfg.batch_size,
        "should_continue_on_error": cfg.continue_on_error,
        "chat_template_stage": False,
        "tokenize_stage": False,
        "detokenize_stage": False,
    }


def sampling_params(cfg: GenerationConfig) -> dict[str, Any]:
    params = {
        "temperature": cfg.temperature,  # 0 = greedy, as the benchmark numbers assume
        "top_p": cfg.top_p,
        "max_tokens": cfg.max_new_tokens,
        "stop": list(cfg.stop),
        "skip_special_tokens": False,
        "spaces_between_special_tokens": False,
    }
    if cfg.seed is not None:
        params["seed"] = cfg.seed
    return params


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def build_vllm_processor(cfg: GenerationConfig):
    """The ray.data.llm processor: `processor(ds)` maps rows with `prompt` to generated rows."""
    if not vllm_available():
        raise MissingExtraError("vllm", "vllm")
    check_adapter_vocab(cfg)
    try:
        from ray.data.llm import build_processor, vLLMEngineProcessorConfig
    except ImportError:
        raise MissingExtraError("ray[llm]", "vllm") from None

    params = sampling_params(cfg)
    adapter = cfg.adapter

    def preprocess(row: dict[str, Any]) -> dict[str, Any]:
        out = {**row, "sampling_params": params}
        if adapter:
            out["model"] = adapter
        return out

    def postprocess(row: dict[str, Any]) -> dict[str, Any]:
        return to_output_row(row)

    config = vLLMEngineProcessorConfig(**processor_config_kwargs(cfg))
    return build_processor(config, preprocess=preprocess, postprocess=postprocess)


def to_output_row(row: dict[str, Any]) -> dict[str, Any]:
    """A processor row in raypipe's output columns (engine-only columns dropped)."""
    drop = {"sampling_params", "model", "prompt_token_ids", "generated_tokens", "request_id",
            "time_taken_llm", "params", "metrics", "embeddings", "generated_logprobs",
            "prompt_logprobs", "logprobs", "__inference_error__"}
    error = str(row.get("__inference_error__") or "")
    out = {k: v for k, v in row.items() if k not in drop and k not in {
        "generated_text", "num_input_tokens", "num_generated_tokens", "finish_reason"}}
    n_generated = int(row.get("num_generated_tokens") or 0)
    out.update(
        generated_text=str(row.get("generated_text") or ""),
        num_input_tokens=int(row.get("num_input_tokens") or 0),
        num_generated_tokens=n_generated,
        finish_reason="error" if error else ("length" if n_generated >= _max_tokens(row) else "stop"),
        error=error,
    )
    return out


def _max_tokens(row: dict[str, Any]) -> int:
    params = row.get("sampling_params") or {}
    return int(params.get("max_tokens") or 1 << 30) if isinstance(params, dict) else 1 << 30
