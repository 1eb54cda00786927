"""Prompt templates: ChatML rendering and parsing, Jinja export, tokenization with loss masks.

See docs/templates.md for the formats and how the pieces fit together.
"""

from raypipe.templates.errors import NothingToTrain, ParseError
from raypipe.templates.formats import (
    DEFAULT_FORMAT,
    PRESETS,
    FormatConfig,
    format_name,
    get_format,
    special_tokens,
)
from raypipe.templates.jinja import chat_template, save_tokenizer, to_chat_messages
from raypipe.templates.parse import ParsedCompletion, parse_completion
from raypipe.templates.pythonic import format_calls, parse_pythonic
from raypipe.templates.render import prompt_and_target, render, render_prompt, render_spans
from raypipe.templates.tokenize import (
    IGNORE_INDEX,
    TokenizationDrift,
    add_special_tokens,
    tokenize_sample,
)

__all__ = [
    "DEFAULT_FORMAT",
    "IGNORE_INDEX",
    "PRESETS",
    "FormatConfig",
    "NothingToTrain",
    "ParseError",
    "ParsedCompletion",
    "TokenizationDrift",
    "add_special_tokens",
    "chat_template",
    "format_calls",
    "format_name",
    "get_format",
    "parse_completion",
    "parse_pythonic",
    "prompt_and_target",
    "render",
    "render_prompt",
    "render_spans",
    "save_tokenizer",
    "special_tokens",
    "to_chat_messages",
    "tokenize_sample",
]
