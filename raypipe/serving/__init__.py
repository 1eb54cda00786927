"""Serving a raypipe-trained model behind OpenAI-compatible servers.

- `ToolCallStream`: incremental tool-call parsing of a growing generation (streaming).
- `to_openai_message(parsed)`: a parsed completion as an OpenAI assistant message.
- `format_from_vocab(vocab)`: which raypipe format a served tokenizer was exported with.
- `raypipe/serving/vllm_plugin.py`: the vLLM tool-parser plugin (imports vLLM; load it with
  ``--tool-parser-plugin``).

The parser itself is `raypipe.templates.parse` (strict for evaluation, lenient for serving);
the `response_template` that `transformers serve` reads is `raypipe.templates.response_template`.
See docs/serving.md.
"""

from raypipe.serving.openai import format_from_vocab, to_openai_message
from raypipe.serving.stream import StreamDelta, ToolCallStream

__all__ = ["StreamDelta", "ToolCallStream", "format_from_vocab", "to_openai_message"]
