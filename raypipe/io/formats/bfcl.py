"""BFCL question files (Berkeley Function Calling Leaderboard), V1 and V3/V4 layouts.

V1 (`gorilla_openfunctions_v1_test_<category>.json`, JSON Lines despite the name):
    {"id": "simple_0", "question": "...", "function": {...} or [{...}, ...]}
V3/V4 (`BFCL_v3_<category>.json`): `question` is a list of turns, each a list of messages:
    {"id": "multi_turn_base_0", "question": [[{"role": "user", "content": "..."}], [...]], "function": [...]}

A sample holds the prompt only (no assistant turn). `meta` carries `bfcl_id`, `category`, the
`ground_truth` from the matching `possible_answer/<same file name>` when one exists (next to the
file or next to its folder, as in the V1 and V3 repositories), `turn_starts` (message index
where each turn begins) and, for multi-turn items, `involved_classes`, `initial_config`, `path`
and `missed_function` as given. The language is `zh-TW` for files under a
`zhtw` folder unless `--lang` says otherwise.
"""

from __future__ import annotations

import functools
import json
import posixpath
import re
from typing import Any

from raypipe import safejson
from raypipe.io import fs
from raypipe.io.formats import ConversionError, SourceContext, require
from raypipe.schema import Message, Sample

_MULTI_TURN_KEYS = ("involved_classes", "initial_config", "path", "missed_function")
_CATEGORY = re.compile(r"(?:gorilla_openfunctions_v1_test_|BFCL_v\d+_)(.+)\.jsonl?$")


def category_of(path: str, item_id: str) -> str:
    m = _CATEGORY.search(posixpath.basename(path.replace("\\", "/")))
    if m:
        return m.group(1)
    return item_id.rsplit("_", 1)[0] if "_" in item_id else ""


def lang_of(path: str) -> str:
    parts = {p.lower() for p in re.split(r"[\\/]", path)}
    return "zh-TW" if parts & {"zhtw", "zh-tw", "zh_tw"} else "en"


@functools.lru_cache(maxsize=64)
def possible_answers(path: str) -> dict[str, Any]:
    folder, name = posixpath.split(path.replace("\\", "/"))
    for candidate in (posixpath.join(folder, "possible_answer", name),
                      posixpath.join(posixpath.dirname(folder), "possible_answer", name)):
        if fs.exists(candidate):
            answers = {}
            for _, line in fs.iter_lines(candidate):
                if line.strip():
                    row = safejson.loads(line)
                    answers[str(row["id"])] = row.get("ground_truth")
            return answers
    return {}


def _messages(question: Any) -> tuple[list[Message], list[int]]:
    if isinstance(question, str):
        return [Message("user", question)], [0]
    if not isinstance(question, list) or not question:
        raise ConversionError("question: expected a string or a non-empty list of turns")
    turns = question if all(isinstance(t, list) for t in question) else [question]
    messages: list[Message] = []
    starts: list[int] = []
    for t, turn in enumerate(turns):
        starts.append(len(messages))
        for m, msg in enumerate(turn):
            if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
                raise ConversionError(f"question[{t}][{m}].role: missing")
            if not isinstance(msg.get("content"), str):
                raise ConversionError(f"question[{t}][{m}].content: expected a string")
            messages.append(Message(msg["role"], msg["content"]))
    return messages, starts


def convert(record: dict, ctx: SourceContext) -> Sample:
    item_id = str(require(record, "id", (str, int)))
    messages, starts = _messages(require(record, "question", (str, list)))
    function = record.get("function") or []
    functions = function if isinstance(function, list) else [function]
    if not all(isinstance(f, dict) for f in functions):
        raise ConversionError("function: expected an object or a list of objects")
    meta: dict[str, Any] = {"bfcl_id": item_id, "category": category_of(ctx.path, item_id)}
    if len(starts) > 1:
        meta["turn_starts"] = starts
    for key in _MULTI_TURN_KEYS:  # V3/V4 multi-turn items name classes instead of functions
        if record.get(key) is not None:
            meta[key] = record[key]
    ground_truth = possible_answers(ctx.path).get(item_id, record.get("ground_truth"))
    if ground_truth is not None:
        meta["ground_truth"] = ground_truth
    return Sample(functions=list(functions), messages=messages, source=ctx.source,
                  lang=ctx.lang or lang_of(ctx.path), meta=meta)
