"""BFCL question files (Berkeley Function Calling Leaderboard), V1 and V3/V4 layouts.

V1 (`gorilla_openfunctions_v1_test_<category>.json`, JSON Lines despite the name):
    {"id": "simple_0", "question": "...", "function": {...} or [{...}, ...]}
V3/V4 (`BFCL_v3_<category>.json`, `BFCL_v4_<category>.json`): `question` is a list of turns,
each a list of messages (a turn may be empty: multi_turn_miss_func reveals functions there):
    {"id": "multi_turn_base_0", "question": [[{"role": "user", "content": "..."}], [...]],
     "involved_classes": ["GorillaFileSystem", "TwitterAPI"], "initial_config": {...}, "path": [...],
     "excluded_function": ["cp"]}

Multi-turn, memory and web-search items name API classes instead of listing functions: their
functions are the specs in `multi_turn_func_doc/<class file>.json` (next to the question file or
next to its folder, as in the repositories), minus `excluded_function`. A class BFCL does not map
is looked up as its snake_case name; the memory items' generic `MemoryAPI` reads the key-value
backend's docs (`memory_kv.json`, BFCL's first memory category).

A sample holds the prompt only (no assistant turn). `meta` carries `bfcl_id`, `category`, the
`ground_truth` from the matching `possible_answer/<same file name>` when one exists (else the
item's own `ground_truth`, as V1 executable files have), `turn_starts` (message index where each
turn begins) and every other field of the item as given (`involved_classes`, `initial_config`,
`path`, `missed_function`, `excluded_function`, memory `scenario`, V1 `execution_result_type`,
...). The language is `zh-TW` for files under a `zhtw` folder, else detected from the text,
unless `--lang` says otherwise.

Files of the data folder that hold no questions (`multi_turn_func_doc/`, `unused_datasets/`,
`possible_answer/`, the format-sensitivity index) are skipped with one line each (`skip_reason`).
"""

from __future__ import annotations

import functools
import json
import posixpath
import re
from typing import Any

from raypipe import safejson
from raypipe.io import fs
from raypipe.io.formats.base import ConversionError, SourceContext, lang_for, require
from raypipe.schema import Message, Sample

# BFCL's own mapping (bfcl_eval/constants): API class -> file in multi_turn_func_doc/.
CLASS_DOC_FILES = {
    "GorillaFileSystem": "gorilla_file_system.json", "MathAPI": "math_api.json",
    "MessageAPI": "message_api.json", "TwitterAPI": "posting_api.json", "TicketAPI": "ticket_api.json",
    "TradingBot": "trading_bot.json", "TravelAPI": "travel_booking.json",
    "VehicleControlAPI": "vehicle_control.json", "WebSearchAPI": "web_search.json",
    "MemoryAPI_kv": "memory_kv.json", "MemoryAPI_vector": "memory_vector.json",
    "MemoryAPI_rec_sum": "memory_rec_sum.json", "MemoryAPI": "memory_kv.json",
}
FUNC_DOC_DIR = "multi_turn_func_doc"
_OWN_KEYS = ("id", "question", "function", "ground_truth")
_CATEGORY = re.compile(r"(?:gorilla_openfunctions_v1_test_|BFCL_v\d+_)(.+)\.jsonl?$")


def category_of(path: str, item_id: str) -> str:
    m = _CATEGORY.search(posixpath.basename(path.replace("\\", "/")))
    if m:
        return m.group(1)
    return item_id.rsplit("_", 1)[0] if "_" in item_id else ""


def lang_of(path: str) -> str | None:
    """zh-TW for the zh-TW benchmark's `zhtw` folder; None: detect from the text."""
    parts = {p.lower() for p in re.split(r"[\\/]", path)}
    return "zh-TW" if parts & {"zhtw", "zh-tw", "zh_tw"} else None


def skip_reason(path: str) -> str | None:
    """Why a file of a BFCL data folder holds no question records, or None."""
    parts = path.replace("\\", "/").split("/")
    if FUNC_DOC_DIR in parts[:-1]:
        return "BFCL function docs (read for the multi-turn items that name their class)"
    if "unused_datasets" in parts[:-1]:
        return "BFCL unused_datasets (not part of the benchmark; no ids)"
    if "possible_answer" in parts[:-1]:
        return "BFCL possible answers (read with their question file)"
    if "format_sensitivity" in parts[-1]:
        return "BFCL format-sensitivity index (lists of question ids, not questions)"
    return None


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


@functools.lru_cache(maxsize=64)
def _doc_file(path: str) -> tuple[str, ...]:
    return tuple(line for _, line in fs.iter_lines(path) if line.strip())


def class_functions(path: str, classes: list[Any]) -> list[dict[str, Any]]:
    """The function specs of `classes`, read from the doc folder of the question file `path`."""
    folder = posixpath.dirname(path.replace("\\", "/"))
    doc_dirs = [posixpath.join(folder, FUNC_DOC_DIR), posixpath.join(posixpath.dirname(folder), FUNC_DOC_DIR)]
    functions: list[dict[str, Any]] = []
    for cls in classes:
        name = CLASS_DOC_FILES.get(str(cls), f"{_snake(str(cls))}.json")
        found = next((posixpath.join(d, name) for d in doc_dirs if fs.exists(posixpath.join(d, name))), None)
        if found is None:
            raise ConversionError(f"involved_classes: no function docs for {cls!r} (looked for {name} in "
                                  f"{FUNC_DOC_DIR}/ next to the file and next to its folder)")
        try:
            functions += [json.loads(line) for line in _doc_file(found)]  # fresh dicts per sample
        except json.JSONDecodeError as exc:
            raise ConversionError(f"involved_classes: {found} is not JSON Lines ({exc.msg})") from None
    return functions


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
    classes = record.get("involved_classes")
    if not functions and classes:  # multi-turn, memory, web search: functions by API class
        if not isinstance(classes, list):
            raise ConversionError("involved_classes: expected a list of class names")
        excluded = record.get("excluded_function") or []
        functions = [f for f in class_functions(ctx.path, classes) if f.get("name") not in excluded]
    meta: dict[str, Any] = {"bfcl_id": item_id, "category": category_of(ctx.path, item_id)}
    if len(starts) > 1:
        meta["turn_starts"] = starts
    meta.update({k: v for k, v in record.items() if k not in _OWN_KEYS and v is not None})
    ground_truth = possible_answers(ctx.path).get(item_id, record.get("ground_truth"))
    if ground_truth is not None:
        meta["ground_truth"] = ground_truth
    return Sample(functions=list(functions), messages=messages, source=ctx.source,
                  lang=ctx.lang or lang_of(ctx.path) or lang_for(ctx, messages), meta=meta)
