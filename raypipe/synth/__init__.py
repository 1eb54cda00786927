"""Synthesis stages: reasoning, translation, non-function-call data, mixing, multi-turn dialogs."""
