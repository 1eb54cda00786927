"""Prompt templates: ChatML rendering and parsing, Jinja export, tokenization with loss masks."""

from raypipe.templates.errors import NothingToTrain, ParseError
from raypipe.templates.pythonic import format_calls, parse_pythonic

__all__ = ["NothingToTrain", "ParseError", "format_calls", "parse_pythonic"]
