"""BFCL answers from a hosted model (any OpenAI-compatible endpoint), through raypipe's LLM engine.

Two modes:

- ``fc`` (function calling): the item's functions go as ``tools=`` (`raypipe.eval.bfcl_tools`:
  BFCL types in JSON Schema, ``.`` in names as ``_``); the result is BFCL's FC-mode form,
  ``[{name: "<arguments JSON>"}]`` when the model called, else its text. Score with
  ``--decoder openai --underscore-to-dot``.
- ``prompt``: no tools; a system prompt lists the functions and asks for ``[f(a=1)]``; the
  result is the text. Score with ``--decoder pythonic``.

Every request goes through `raypipe.llm.run_llm_program`, so rate limits, retries, the request
cache and resume by item id are the engine's (a re-run with the same run directory skips the
items already answered and takes repeated requests from the cache).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from raypipe.config import input_paths
from raypipe.errors import RaypipeError

STAGE = "bfcl_generate"


@dataclass
class HostedConfig:
    llm: dict[str, Any] = field(default_factory=dict)  # raypipe.llm.LLMConfig keys (model, base_url, ...)
    mode: Literal["fc", "prompt"] = "fc"
    system_prompt_file: str | None = input_paths(default=None)  # prompt mode: text with a {functions} placeholder
    python_hint: bool = True  # upstream's "Note that the provided function is in Python 3 syntax."

    def __post_init__(self) -> None:
        from raypipe.config import load_config
        from raypipe.llm import LLMConfig

        if isinstance(self.llm, LLMConfig):
            self.llm = asdict(self.llm)
        load_config(LLMConfig, self.llm, where="hosted.llm")  # every key problem at once
        if self.mode not in ("fc", "prompt"):
            raise ValueError(f"hosted.mode must be 'fc' or 'prompt', got {self.mode!r}")
        if self.system_prompt_file is not None and self.mode != "prompt":
            raise ValueError("hosted.system_prompt_file applies to prompt mode only")

    def llm_config(self):
        from raypipe.config import load_config
        from raypipe.llm import LLMConfig

        return load_config(LLMConfig, self.llm, where="hosted.llm")

    def system_prompt_template(self) -> str | None:
        if self.system_prompt_file is None:
            return None
        path = Path(self.system_prompt_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RaypipeError(f"system prompt file {path}: {exc.strerror or exc}") from None
        if "{functions}" not in text:
            raise RaypipeError(f"system prompt file {path} has no {{functions}} placeholder")
        return text


def request_rows(items: list[Any], hosted: HostedConfig) -> list[dict[str, str]]:
    """One engine row per item: its id and the request (messages, tools) as JSON text."""
    from raypipe.eval.bfcl_tools import prompt_mode_messages, to_openai_tools

    template = hosted.system_prompt_template()
    rows = []
    for item in items:
        if hosted.mode == "fc":
            messages = [dict(m) for m in item.question]
            tools = to_openai_tools(item.functions, hosted.python_hint)
        else:
            messages = prompt_mode_messages(item.question, item.functions, template, hosted.python_hint)
            tools = []
        rows.append({"id": item.id, "messages": json.dumps(messages, ensure_ascii=False),
                     "tools": json.dumps(tools, ensure_ascii=False)})
    return rows


def system_prompt_of(hosted: HostedConfig) -> str:
    """The prompt-mode system prompt template in use (for the run manifest)."""
    from raypipe.eval.bfcl_tools import DEFAULT_SYSTEM_PROMPT

    return hosted.system_prompt_template() or DEFAULT_SYSTEM_PROMPT


async def _answer(row: dict, client) -> dict:
    from raypipe.eval.bfcl_tools import fc_result

    tools = json.loads(row["tools"])
    completion = await client.chat(json.loads(row["messages"]), **({"tools": tools} if tools else {}))
    result = fc_result(completion.tool_calls, completion.text)
    return {"id": row["id"], "result": json.dumps(result, ensure_ascii=False),
            "finish_reason": str(completion.finish_reason or "")}


def generate_hosted(items: list[Any], hosted: HostedConfig, out_dir: Path, log=print) -> tuple[dict[str, Any], dict]:
    """({item id: BFCL result} for every item, the engine's summary), asked through the engine
    (resumable in `out_dir`; rows an earlier run rejected are asked again).

    The glue with the engine is this one function: rows in, `run_llm_program`, the committed
    rows read back (`raypipe.io.dataset.read_committed`)."""
    import pyarrow as pa

    from raypipe.io.dataset import read_committed
    from raypipe.llm import run_llm_program

    schema = pa.schema([("id", pa.string()), ("result", pa.string()), ("finish_reason", pa.string())])
    summary = run_llm_program(request_rows(items, hosted), llm=hosted.llm_config(), program=_answer,
                              out_dir=str(out_dir), stage=STAGE, output_schema=schema, log=lambda m: log(m),
                              retry_rejects=True)
    table = read_committed(str(out_dir))
    answers = {row["id"]: json.loads(row["result"]) for row in (table.to_pylist() if table is not None else [])}
    missing = [it.id for it in items if it.id not in answers]
    if missing:
        raise RaypipeError(
            f"{len(missing)} of {len(items)} BFCL items got no answer from {hosted.llm.get('base_url', 'the endpoint')} "
            f"(first: {missing[0]}; {summary.get('rejected', 0)} rejected, reasons {summary.get('reject_reasons')}); "
            f"see the rejects of {out_dir}. Nothing was scored; re-run the same command to ask them again "
            "(answered items are kept)."
        )
    return answers, summary
