"""`run_llm_stage` / `run_llm_program`: the engine as two functions, for scripts and callers
that have rows (or a Ray Dataset) and a function or two rather than a stage class. Both build
an `LLMStage` and hand it to the one executor (`raypipe.llm.executor.run_stage`): same resume,
commits, rejects, pending rows, limits, cache and dry runs as every stage.
"""

from __future__ import annotations

from typing import Any, Literal

from raypipe.llm.config import LLMConfig
from raypipe.llm.stage import LLMStage

Executor = Literal["auto", "ray", "local"]


class FunctionStage(LLMStage):
    """A stage made of plain functions: `build_messages(row)` + `parse(row, text)`, or an async
    `program(row, client)`."""

    def __init__(self, name: str, llm: LLMConfig, rows, *, build_messages=None, parse=None,
                 program=None, output_schema=None, inputs=(), uses_llm: bool = True):
        if (program is None) == (build_messages is None or parse is None):
            raise ValueError("give either build_messages and parse, or program")
        super().__init__(config=None)
        self.name, self._llm, self._rows = name, llm, rows
        self._build, self._parse, self._program = build_messages, parse, program
        self._schema, self._inputs, self._uses_llm = output_schema, list(inputs), uses_llm

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "_rows": None}  # the source stays on the driver

    def llm(self) -> LLMConfig:
        return self._llm

    def uses_llm(self) -> bool:
        return self._uses_llm

    def output_schema(self):
        return self._schema

    def source(self, *, use_ray: bool = True, allow_incomplete: bool = False):
        return self._rows

    def inputs(self) -> list[str]:
        return self._inputs

    def prompt(self, row: dict) -> list[dict]:
        return self._build(row)

    def parse(self, row: dict, completion) -> Any:
        return self._parse(row, completion.text)

    async def program(self, row: dict, client) -> Any:
        if self._program is not None:
            return await self._program(row, client)
        return await super().program(row, client)


def run_llm_stage(inputs, *, llm: LLMConfig, build_messages, parse, out_dir: str, stage: str,
                  output_schema=None, dry_run: bool = False, executor: Executor = "auto",
                  source_name: str = "", log=None, **kwargs) -> dict:
    """One request per row (plus re-asks): `build_messages(row) -> messages`,
    `parse(row, completion_text) -> dict | list[dict]` (raise ValueError to re-ask with the
    error, RowError to reject). Returns the summary also written to `out_dir/summary.json`."""
    from raypipe.llm.executor import run_stage

    spec = FunctionStage(stage, llm, inputs, build_messages=build_messages, parse=parse,
                         output_schema=output_schema)
    return run_stage(spec, out=out_dir, executor=executor, dry_run=dry_run, log=log,
                     source_name=source_name, **kwargs)


def run_llm_program(inputs, *, llm: LLMConfig, program, out_dir: str, stage: str,
                    output_schema=None, executor: Executor = "auto", source_name: str = "",
                    log=None, **kwargs) -> dict:
    """`program(row, client) -> dict | list[dict]` makes any number of calls through `client`."""
    from raypipe.llm.executor import run_stage

    spec = FunctionStage(stage, llm, inputs, program=program, output_schema=output_schema)
    return run_stage(spec, out=out_dir, executor=executor, log=log, source_name=source_name, **kwargs)
