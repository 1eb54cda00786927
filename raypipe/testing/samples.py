"""Small sample sets cut from the shipped sample data, for the training tests."""

from __future__ import annotations

import json

from raypipe.data import SAMPLES_JSONL
from raypipe.schema import Sample, ToolCall


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


def wrong_values_negative(sample: Sample) -> Sample:
    """A DPO negative for `sample`: the same dialog whose last call has every string argument
    wrong (another allowed value where the function lists them: a negative differs in behaviour
    only, and the tokenize stage rejects a sample the strict validator refuses)."""
    from raypipe.validate import function_name, function_parameters

    last = sample.messages[-1]
    specs = {function_name(f): function_parameters(f).get("properties", {}) for f in sample.functions}

    def wrong(name, key, value):
        if not isinstance(value, str):
            return value
        allowed = specs.get(name, {}).get(key, {}).get("enum")
        return next(v for v in allowed if v != value) if allowed else "somewhere else"

    calls = [ToolCall(c.name, {k: wrong(c.name, k, v) for k, v in c.arguments.items()}) for c in last.tool_calls]
    messages = [*sample.messages[:-1], type(last)(role="assistant", content=last.content, tool_calls=calls)]
    return sample.derive("test_corrupt", messages=messages)
