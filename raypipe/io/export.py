"""Canonical samples -> the training-data layouts other trainers read.

- ``openai``: OpenAI chat fine-tuning JSONL (``messages`` with ``tool_calls`` whose ``arguments``
  are JSON strings and carry ids, ``tool`` results with ``tool_call_id``, ``tools``). Read by
  TRL's SFTTrainer (``messages`` + ``tools`` columns), axolotl (``type: chat_template``) and
  LLaMA-Factory (``formatting: openai``).
- ``sharegpt``: ShareGPT JSONL as LLaMA-Factory reads it (``conversations`` of ``from``/``value``
  turns: human, gpt, function_call, observation; ``system``; ``tools`` as a JSON string).
- ``llamafactory``: a LLaMA-Factory ``dataset_dir``: the ShareGPT rows as one JSON array (the
  layout of its glaive tool-call demos) and ``dataset_info.json`` naming it.

Every row also carries a ``raypipe`` field, a JSON string that consumers ignore, holding what the
layout cannot say (id, source, lang, meta, lineage, call ids that were made up for OpenAI, and,
only for a sample the layout cannot express, its messages or functions), so
``raypipe convert --from openai|sharegpt`` gives back the very same samples. ``bare=True`` leaves
it out (and ``reasoning_content``, which OpenAI's own fine-tuning API does not accept).
"""

from __future__ import annotations

import json
from typing import Any, Callable

from raypipe.io.formats.base import ConversionError, apply_ids, strip_made_up_ids
from raypipe.schema import Sample, canonical_json, content_id
from raypipe.templates.render import unwrap_spec

FORMATS = ("openai", "sharegpt", "llamafactory")
EXTRA = "raypipe"  # the field with what the layout cannot carry


# -- OpenAI chat fine-tuning rows -----------------------------------------------------------------


def to_openai_row(sample: Sample, *, bare: bool = False) -> dict[str, Any]:
    made_up: list[str] = []
    messages: list[dict[str, Any]] = []
    pending: list[str] = []  # ids of calls awaiting their result, in order
    for m in sample.messages:
        out: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.role == "assistant":
            if m.tool_calls:
                calls = []
                for k, c in enumerate(m.tool_calls):
                    cid = c.id or f"call_{sample.id[:12]}_{len(messages)}_{k}"
                    if not c.id:
                        made_up.append(cid)
                    calls.append({"id": cid, "type": "function",
                                  "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}})
                out["tool_calls"] = calls
                pending = [c["id"] for c in calls]
            if m.reasoning is not None and not bare:
                out["reasoning_content"] = m.reasoning
        elif m.role == "tool":
            tid = m.tool_call_id or (pending[0] if pending else None)
            if tid is not None:
                out["tool_call_id"] = tid
                if not m.tool_call_id:
                    made_up.append(tid)
            if tid in pending:
                pending.remove(tid)
            if m.name is not None:
                out["name"] = m.name
            if out["content"] is None:
                out["content"] = ""
        messages.append(out)
    row: dict[str, Any] = {"messages": messages}
    if sample.functions:
        row["tools"] = [{"type": "function", "function": unwrap_spec(f)} for f in sample.functions]
    for option in ("parallel_tool_calls", "tool_choice"):
        if option in sample.meta:
            row[option] = sample.meta[option]
    if not bare:
        row[EXTRA] = _extra(sample, row, "openai", made_up)
    return row


# -- ShareGPT rows (LLaMA-Factory's tags) ---------------------------------------------------------


def to_sharegpt_row(sample: Sample, *, bare: bool = False) -> dict[str, Any]:
    messages = list(sample.messages)
    row: dict[str, Any] = {}
    if messages and messages[0].role == "system":
        row["system"] = messages.pop(0).content or ""
    turns: list[dict[str, str]] = []
    i = 0
    while i < len(messages):
        m = messages[i]
        if m.role == "assistant" and m.tool_calls:
            calls = [{"name": c.name, "arguments": c.arguments} for c in m.tool_calls]
            value = calls[0] if len(calls) == 1 else calls
            turns.append({"from": "function_call", "value": json.dumps(value, ensure_ascii=False)})
        elif m.role == "tool":  # the results of one call turn are one observation
            results = [m.content or ""]
            while i + 1 < len(messages) and messages[i + 1].role == "tool":
                i += 1
                results.append(messages[i].content or "")
            turns.append({"from": "observation", "value": results[0] if len(results) == 1 else _json_list(results)})
        else:
            turns.append({"from": {"user": "human", "assistant": "gpt"}.get(m.role, m.role), "value": m.content or ""})
        i += 1
    row["conversations"] = turns
    row["tools"] = json.dumps([unwrap_spec(f) for f in sample.functions], ensure_ascii=False)
    if not bare:
        row[EXTRA] = _extra(sample, row, "sharegpt", [])
    return row


def _json_list(results: list[str]) -> str:
    """Parallel results as one JSON list, each result parsed when it is JSON."""
    items = []
    for r in results:
        try:
            items.append(json.loads(r))
        except ValueError:
            items.append(r)
    return json.dumps(items, ensure_ascii=False)


def llamafactory_trainable(row: dict[str, Any]) -> bool:
    """Whether LLaMA-Factory's ShareGPT converter keeps the row: human/observation turns at odd
    positions, gpt/function_call at even ones, an even count (it skips other rows)."""
    turns = row["conversations"]
    allowed = ({"human", "observation"}, {"gpt", "function_call"})
    return len(turns) % 2 == 0 and all(t["from"] in allowed[k % 2] for k, t in enumerate(turns))


# -- what the layout cannot carry ------------------------------------------------------------------


def _extra(sample: Sample, row: dict[str, Any], fmt: str, made_up: list[str]) -> str:
    from raypipe.io.formats import SourceContext, formats

    extra: dict[str, Any] = {"id": sample.id, "content_id": content_id(sample.functions, sample.messages),
                             "source": sample.source, "lang": sample.lang, "meta": sample.meta,
                             "lineage": [x.__dict__ for x in sample.lineage]}
    if made_up:
        extra["made_up_ids"] = made_up
    try:  # what converting the row back would give without this field
        native = formats()[fmt].convert(row, SourceContext(path="", source=sample.source, lang=sample.lang))
        messages, functions = strip_made_up_ids(native.messages, made_up), native.functions
    except (ConversionError, KeyError, TypeError, ValueError):
        messages, functions = None, None
    if messages is not None and any(c.id for m in sample.messages for c in m.tool_calls) \
            and not any(c.id for m in messages for c in m.tool_calls):  # a layout without call ids
        extra["call_ids"] = [c.id for m in sample.messages for c in m.tool_calls]
        extra["result_ids"] = [m.tool_call_id for m in sample.messages if m.role == "tool"]
        messages = apply_ids(messages, extra["call_ids"], extra["result_ids"])
    if messages is None or [m.to_dict() for m in messages] != [m.to_dict() for m in sample.messages]:
        extra["messages"] = [m.to_dict() for m in sample.messages]
    if functions is None or canonical_json(functions) != canonical_json(sample.functions):
        extra["functions"] = sample.functions
    return json.dumps(extra, ensure_ascii=False, sort_keys=True)


ROW_MAKERS: dict[str, Callable[..., dict[str, Any]]] = {
    "openai": to_openai_row, "sharegpt": to_sharegpt_row, "llamafactory": to_sharegpt_row,
}


# -- writing an export folder -------------------------------------------------------------------------


def export_samples(inputs: list[str], out_dir: str, to: str, *, name: str = "raypipe", bare: bool = False,
                   allow_incomplete: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write the samples of `inputs` (canonical files or datasets) to `out_dir` in layout `to`,
    with the consumers' config snippets; returns the summary (also written as export.json)."""
    from raypipe.errors import RaypipeError
    from raypipe.io import fs
    from raypipe.io.dataset import check_not_input
    from raypipe.io.readers import iter_samples

    if to not in FORMATS:
        raise RaypipeError(f"unknown export format {to!r} (known: {', '.join(FORMATS)})")
    check_not_input(out_dir, inputs)
    fs.make_dirs(out_dir)
    data_name = f"{name}.json" if to == "llamafactory" else f"{name}.jsonl"
    data_path = fs.join(out_dir, data_name)
    counts = {"rows": 0, "patched": 0, "made_up_call_ids": 0, "not_trainable_by_llamafactory": 0}
    filesystem, inner = fs.resolve(data_path + ".tmp")
    with filesystem.open_output_stream(inner) as sink:
        if to == "llamafactory":
            sink.write(b"[\n")
        for sample in iter_samples(inputs, allow_incomplete=allow_incomplete):
            row = ROW_MAKERS[to](sample, bare=bare)
            extra = json.loads(row.get(EXTRA) or "{}")
            counts["patched"] += int("messages" in extra or "functions" in extra)
            counts["made_up_call_ids"] += len(extra.get("made_up_ids", []))
            if to != "openai" and not llamafactory_trainable(row):
                counts["not_trainable_by_llamafactory"] += 1
            if to == "llamafactory":
                text = ("" if counts["rows"] == 0 else ",\n") + json.dumps(row, ensure_ascii=False, indent=2)
            else:
                text = json.dumps(row, ensure_ascii=False) + "\n"
            sink.write(text.encode("utf-8"))
            counts["rows"] += 1
        if to == "llamafactory":
            sink.write(b"\n]\n")
    filesystem.move(inner, fs.resolve(data_path)[1])  # whole file or none
    snippets = write_snippets(out_dir, to, name, data_name)
    summary = {"to": to, "data": data_path, "snippets": snippets, "bare": bare, **counts}
    fs.write_text(fs.join(out_dir, "export.json"), json.dumps(summary, indent=1) + "\n")
    log(f"{counts['rows']} samples -> {data_path} ({to})")
    if counts["not_trainable_by_llamafactory"]:
        log(f"{counts['not_trainable_by_llamafactory']} row(s) are not a human/gpt alternation ending with the "
            "assistant: LLaMA-Factory skips them (e.g. prompts without an answer)")
    for path in snippets:
        log(f"config snippet: {path}")
    return summary


def write_snippets(out_dir: str, to: str, name: str, data_name: str) -> list[str]:
    """The consumers' config for the export: LLaMA-Factory's dataset_info.json, an axolotl dataset
    entry, a TRL script header."""
    from raypipe.io import fs

    data = fs.join(out_dir, data_name)
    written = []
    if to in ("sharegpt", "llamafactory"):
        info = {name: {
            "file_name": data_name, "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                     "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"},
        }}
        path = fs.join(out_dir, "dataset_info.json")
        fs.write_text(path, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    if to == "openai":
        path = fs.join(out_dir, "axolotl.yaml")
        fs.write_text(path, AXOLOTL.format(data=data))
        written.append(path)
        path = fs.join(out_dir, "trl_sft.py")
        fs.write_text(path, TRL.format(data=data))
        written.append(path)
    return written


AXOLOTL = """\
# axolotl: add this dataset entry to your config (chat_template reads messages + tools;
# tool-call arguments given as JSON strings are decoded by axolotl).
datasets:
  - path: {data}
    ds_type: json
    type: chat_template
    field_messages: messages
    field_tools: tools
    roles_to_train: ["assistant"]
"""

TRL = """\
# TRL: supervised fine-tuning on this export (messages + tools columns).
# Use the tokenizer raypipe saved with the model (`raypipe tokenize` or `raypipe train` output):
# its chat template renders these rows exactly as raypipe renders the samples, JSON-string
# arguments included, and marks the assistant tokens for assistant_only_loss.
from datasets import load_dataset
from transformers import AutoTokenizer
from trl import SFTConfig, SFTTrainer

dataset = load_dataset("json", data_files="{data}", split="train")
tokenizer = AutoTokenizer.from_pretrained("PATH/TO/RAYPIPE/TOKENIZER")
trainer = SFTTrainer(
    model="PATH/TO/BASE/MODEL",
    processing_class=tokenizer,
    train_dataset=dataset,
    args=SFTConfig(output_dir="sft-out", assistant_only_loss=True),
)
trainer.train()
"""
