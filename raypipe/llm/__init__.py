"""The LLM engine: call OpenAI-compatible chat APIs at scale from Ray Data actors.

A stage is declared with `LLMStage` (prompt + parse, or an async program) and run by the one
executor, `run_stage(stage, out=...)`; `run_llm_stage` / `run_llm_program` wrap plain functions
into a stage for scripts:

    from raypipe.llm import LLMConfig, run_llm_stage
    run_llm_stage(ds, llm=LLMConfig(model="gpt-4o-mini"), build_messages=..., parse=...,
                  out_dir="runs/x/reasoning", stage="reasoning")

Importing this package is cheap (no ray, no openai): those load when a stage runs.
"""

from raypipe.llm.cache import RequestCache, cache_key
from raypipe.llm.client import Completion, LLMClient, parse_json_answer
from raypipe.llm.config import LLMConfig, Price
from raypipe.llm.errors import RowError, TransientError
from raypipe.llm.executor import PendingRowsError, run_stage
from raypipe.llm.runner import run_llm_program, run_llm_stage
from raypipe.llm.stage import LLMStage

__all__ = [
    "Completion", "LLMClient", "LLMConfig", "LLMStage", "PendingRowsError", "Price", "RequestCache",
    "RowError", "TransientError", "cache_key", "parse_json_answer", "run_llm_program",
    "run_llm_stage", "run_stage",
]
