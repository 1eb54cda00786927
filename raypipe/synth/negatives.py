"""Non-function-call (relevance) data, after the seed's section 3.2.

From a sample whose assistant calls functions, take the conversation up to the first turn
that calls tools and remove the called functions from `functions`: nothing left can serve
the request, so the right target is a direct answer. The other functions stay; when fewer
than `min_functions` remain, distractors from a tool pool are added (never one whose name
looks like a removed function's, which might serve the request after all; by default kept
functions that look like a called one are removed too, for the same reason).

The target is the Decision Token alone: an assistant turn with empty content and no calls,
marked `meta["target"] == "decision_only"`. Templates render that turn as `<|answer|>`
followed by the end-of-turn marker and nothing else (with the decision token off there is
nothing to learn from it, so such samples belong to decision-token formats only).
Optionally a teacher writes the direct answer instead (`meta["target"] == "direct_answer"`).

Everything is deterministic: the random choices are seeded by (seed, parent id), so a
re-run, a resumed run or a differently partitioned run makes the same samples.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

from raypipe.config import input_paths, output_path
from raypipe.llm.config import LLMConfig
from raypipe.llm.stage import RunOptions
from raypipe.schema import Message, Sample
from raypipe.synth.prompting import functions_json, spec_names
from raypipe.validate import function_name

STAGE = "synth_negatives"
DECISION_ONLY = "decision_only"
DIRECT_ANSWER = "direct_answer"


class NegativeError(ValueError):
    """This sample cannot give a negative; the message is the reject reason."""


def first_call_turn(sample: Sample) -> int | None:
    for i, m in enumerate(sample.messages):
        if m.role == "assistant" and m.tool_calls:
            return i
    return None


def _name_tokens(name: str) -> set[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return {t.lower() for t in re.split(r"[\W_]+", spaced) if t}


def looks_like(candidate: str, removed: str) -> bool:
    """Could `candidate` do the job of `removed`? Same last name part, or most name words shared."""
    if candidate.rsplit(".", 1)[-1] == removed.rsplit(".", 1)[-1]:
        return True
    a, b = _name_tokens(candidate), _name_tokens(removed)
    return bool(a and b) and len(a & b) / len(a | b) >= 0.5


def pick_distractors(
    pool: list[dict[str, Any]], present: list[str], removed: list[str], count: int, rng: random.Random
) -> list[dict[str, Any]]:
    taken = set(present) | set(removed)
    candidates = sorted(
        (
            spec
            for spec in pool
            if function_name(spec) not in taken
            and not any(looks_like(function_name(spec), r) for r in removed)
        ),
        key=function_name,
    )
    unique = list({function_name(s): s for s in candidates}.values())
    return rng.sample(unique, min(count, len(unique)))


def make_negative(
    sample: Sample,
    pool: list[dict[str, Any]],
    *,
    seed: int = 0,
    min_functions: int = 2,
    drop_lookalikes: bool = True,
) -> Sample:
    """The non-function-call sample made from `sample` (target: decision token only).
    `drop_lookalikes` also removes kept functions whose names look like a called one's
    (`get_weather_forecast` next to a called `get_current_weather`): left in, they could
    well serve the request, and the sample would teach the model to refuse a good call."""
    turn = first_call_turn(sample)
    if turn is None:
        raise NegativeError("no assistant turn with tool calls: nothing to remove")
    prefix = sample.messages[:turn]
    if not any(m.role == "user" for m in prefix):
        raise NegativeError("no user turn before the first tool call")
    called = list(dict.fromkeys(c.name for c in sample.messages[turn].tool_calls))
    lookalikes = [
        n for n in spec_names(sample.functions)
        if drop_lookalikes and n not in called and any(looks_like(n, c) for c in called)
    ]
    removed = called + lookalikes
    kept = [f for f in sample.functions if function_name(f) not in removed]
    rng = random.Random(f"{seed}:{sample.id}")
    need = max(0, min_functions - len(kept))
    distractors = pick_distractors(pool, spec_names(kept), removed, need, rng) if need else []
    functions = list(kept)
    for spec in distractors:  # at random places, so position says nothing about relevance
        functions.insert(rng.randint(0, len(functions)), spec)
    meta = {
        **sample.meta,
        "target": DECISION_ONLY,
        "negative": {
            "removed": called,
            "lookalikes_removed": lookalikes,
            "distractors": [function_name(d) for d in distractors],
        },
    }
    return sample.derive(
        STAGE, functions=functions, messages=[*prefix, Message("assistant", "")], meta=meta
    )


def selected(sample_id: str, seed: int, fraction: float) -> bool:
    """Seeded, order-free subsampling: the same ids are chosen whatever the partitioning."""
    if fraction >= 1.0:
        return True
    digest = hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


# -- the optional teacher direct answer ---------------------------------------------------

ANSWER_SYSTEM = (
    "You are a helpful assistant. You can see the functions below, but none of them fits the "
    "user's request, so you must not call any function, write a function call, or pretend "
    "that you called one. Answer the user's last message directly and concisely. If it needs "
    "live data or an action you cannot perform, say so briefly and help as far as you can."
)


def build_answer_messages(negative: Sample) -> list[dict[str, str]]:
    """The chat request for a teacher's direct answer to a negative sample's last user turn."""
    system = [ANSWER_SYSTEM, "", f"Functions:\n```json\n{functions_json(negative.functions)}\n```"]
    out: list[dict[str, str]] = []
    for m in negative.messages[:-1]:  # the last turn is the (empty) target
        if m.role == "system":
            system += ["", f"Your instructions for this conversation: {m.content}"]
        elif m.role in ("user", "assistant") and (m.content or "").strip():
            out.append({"role": m.role, "content": m.content})
    return [{"role": "system", "content": "\n".join(system)}, *out]


_CALL_SHAPE = re.compile(r"<\|use_tool\|>|<\|answer\|>|\"name\"\s*:|\b[\w.]+\s*\(\s*\w+\s*=")


def check_direct_answer(text: str, negative: Sample, removed: list[str]) -> list[str]:
    """Problems with a teacher's direct answer (empty = accept)."""
    answer = (text or "").strip()
    if not answer:
        return ["the answer is empty"]
    problems = []
    if _CALL_SHAPE.search(answer):
        problems.append("the answer contains a function call or a special token; answer in plain text")
    for name in [*spec_names(negative.functions), *removed]:
        if re.search(rf"(?<![\w.]){re.escape(name)}\s*\(", answer):
            problems.append(f"the answer calls {name!r}; no function may be called")
    return problems


def with_direct_answer(negative: Sample, answer: str) -> Sample:
    """The same negative with the teacher's answer as target; same lineage parent."""
    messages = [*negative.messages[:-1], Message("assistant", answer.strip())]
    meta = {**negative.meta, "target": DIRECT_ANSWER}
    return Sample(
        functions=negative.functions,
        messages=messages,
        source=negative.source,
        lang=negative.lang,
        meta=meta,
        lineage=negative.lineage,
    )


# -- the stage ------------------------------------------------------------------------------


@dataclass
class NegativesConfig(RunOptions):
    inputs: list[str] = input_paths()
    out: str = output_path()
    tool_pool: str | None = input_paths(default=None, metadata={
        "help": "JSON list of function specs for distractors (default: raypipe's shipped pool)"})
    seed: int = 0
    min_functions: int = field(default=2, metadata={"help": "add distractors until this many remain"})
    drop_lookalikes: bool = field(default=True, metadata={
        "flag": "--keep-lookalikes", "help": "keep functions whose names look like a called one's"})
    fraction: float = field(default=1.0, metadata={"help": "seeded share of the inputs to use"})
    teacher_answer: bool = field(default=False, metadata={
        "help": "target: a teacher's direct answer instead of the decision token alone"})
    llm: LLMConfig = field(default_factory=LLMConfig)

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError("fraction must be in (0, 1]")
        if self.min_functions < 0:
            raise ValueError("min_functions must be >= 0")


def load_pool(path: str | None) -> list[dict[str, Any]]:
    from raypipe.errors import RaypipeError
    from raypipe.io import fs

    if path is None:
        from raypipe.data import TOOLS_JSON

        path = str(TOOLS_JSON)
    try:
        pool = json.loads(fs.read_text(path))
    except (OSError, ValueError) as exc:
        raise RaypipeError(f"{path}: cannot read the tool pool: {exc}") from None
    if not isinstance(pool, list) or not all(isinstance(p, dict) and function_name(p) for p in pool):
        raise RaypipeError(f"{path}: a tool pool is a JSON list of function specs, each with a name")
    return pool
