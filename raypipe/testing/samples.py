"""Small sample sets cut from the shipped sample data, for the training tests."""

from __future__ import annotations

import json

from raypipe.data import SAMPLES_JSONL
from raypipe.schema import Sample


def first_call_samples(n: int) -> list[Sample]:
    """Samples cut after their first assistant turn that calls functions (English only), each
    calling a different function (near-identical prompts would be a test of the tiny model's
    copying, not of the recipe)."""
    out, names = [], set()
    for line in SAMPLES_JSONL.read_text(encoding="utf-8").splitlines():
        s = Sample.from_dict(json.loads(line))
        turn = next(i for i, m in enumerate(s.messages) if m.role == "assistant")
        calls = s.messages[turn].tool_calls
        if s.lang == "en" and calls and calls[0].name not in names:
            names.add(calls[0].name)
            out.append(s.derive("test_first_call", messages=s.messages[: turn + 1]))
        if len(out) == n:
            return out
    raise AssertionError("not enough call samples in the sample data")
