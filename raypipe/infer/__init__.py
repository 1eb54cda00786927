"""Batch generation on Ray Data: vLLM engines on GPUs (`ray.data.llm`), transformers on CPU.

Prompts are rendered by raypipe's templates *before* generation (ray.data.llm renders no
per-row tools), so both backends take the same rows: `id` + `prompt` (+ any other columns,
carried through) and add `generated_text`, `finish_reason`, `num_input_tokens`,
`num_generated_tokens` and `error` ("" when the row succeeded).

    from raypipe.infer import GenerationConfig, generate
    for row in generate(rows, GenerationConfig(model="path/or/name")): ...

Nothing heavy is imported here: torch, transformers, vLLM and Ray load inside the functions.
"""

from raypipe.infer.config import GenerationConfig
from raypipe.infer.run import choose_backend, generate

__all__ = ["GenerationConfig", "choose_backend", "generate"]
