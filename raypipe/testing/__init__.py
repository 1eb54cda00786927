"""Test helpers that ship with raypipe: a local OpenAI-compatible server and tiny models."""
