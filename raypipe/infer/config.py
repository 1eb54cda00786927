"""The one typed config shared by both generation backends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from raypipe.config import input_paths

DEFAULT_STOP = ["<|im_end|>"]


@dataclass
class GenerationConfig:
    model: str  # local path or hub name of the base (or merged) model
    adapter: str | None = input_paths(default=None)  # PEFT LoRA adapter directory, applied to every row
    backend: Literal["auto", "vllm", "transformers"] = "auto"
    batch_size: int = 16  # rows per generation call (per engine batch on vLLM)
    max_new_tokens: int = 512
    stop: list[str] = field(default_factory=lambda: list(DEFAULT_STOP))
    temperature: float = 0.0  # 0 = greedy (benchmark numbers); > 0 samples, for pass^k trials
    top_p: float = 1.0
    seed: int | None = None  # sampling seed, so a trial can be repeated exactly
    replicas: int = 1  # engine actors (vLLM) or generation actors (transformers)
    tensor_parallel_size: int = 1  # GPUs per vLLM replica
    max_model_len: int | None = None  # vLLM context length; None = the model's
    max_lora_rank: int | None = None  # None = read `r` from the adapter's adapter_config.json
    engine_kwargs: dict[str, Any] = field(default_factory=dict)  # extra vLLM engine arguments
    continue_on_error: bool = True  # a failing row is recorded with its error, not fatal
    cpus_per_replica: float = 1.0  # transformers backend: CPUs reserved per actor
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # transformers backend

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_new_tokens", "replicas", "tensor_parallel_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"temperature must be >= 0 and top_p in (0, 1], got {self.temperature}, {self.top_p}")
        if not self.model:
            raise ValueError("model must name a model path or hub id")
