"""raypipe: function-calling LLM recipes (synthesis, LoRA fine-tuning, evaluation) as Ray jobs.

Importing raypipe is cheap: torch, DeepSpeed, vLLM and Ray load only inside the stages that
need them.
"""

from raypipe.schema import Lineage, Message, Sample, ToolCall
from raypipe.validate import Problem, validate_sample

__version__ = "0.1.0"
__all__ = ["Lineage", "Message", "Problem", "Sample", "ToolCall", "validate_sample"]
