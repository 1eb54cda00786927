"""The LLM engine: call OpenAI-compatible chat APIs at scale from Ray Data actors.

    from raypipe.llm import LLMConfig, run_llm_stage
    run_llm_stage(ds, llm=LLMConfig(model="gpt-4o-mini"), build_messages=..., parse=...,
                  out_dir="runs/x/reasoning", stage="reasoning")

Importing this package is cheap (no ray, no openai): those load when a stage runs.
"""

from raypipe.llm.cache import RequestCache, cache_key
from raypipe.llm.client import Completion, LLMClient, parse_json_answer
from raypipe.llm.config import LLMConfig, Price
from raypipe.llm.errors import RowError
from raypipe.llm.runner import run_llm_program, run_llm_stage

__all__ = [
    "Completion", "LLMClient", "LLMConfig", "Price", "RequestCache", "RowError", "cache_key",
    "parse_json_answer", "run_llm_program", "run_llm_stage",
]
