"""The one shape of an LLM stage. A stage is declared, not run: `raypipe.llm.executor.run_stage`
runs every stage the same way (Ray Data actors or in-process, resume, commits, rejects, rate
limits, cache, progress, dry runs).

    class ReasonStage(LLMStage):
        name = "reasoning"
        reads = ("id", "messages", "functions")

        def prompt(self, row):                      # the messages of the one request
            return [{"role": "user", "content": ...}]

        def parse(self, row, completion):           # raise ValueError to re-ask with the
            return {...}                            # error, RowError to reject the row

or, for stages that make several calls per row, one coroutine:

        async def program(self, row, client):       # any number of client.chat / chat_json /
            return {...}                            # ask calls; dict or list of dicts

A stage instance holds plain data only (its config): it is pickled to the workers, where
`self.clients` (one `LLMClient` per entry of `llms()`) is set before rows run. Everything else
(sources, output schema, extra endpoints) has a default that a stage may override.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from raypipe.llm.config import LLMConfig


class LLMStage:
    name: str = ""  # the stage's name in rejects, summaries and progress lines
    reads: tuple[str, ...] = ("id",)  # input columns it needs; a missing one stops the run
    # Declared by stages that are also commands and job steps (raypipe/stages/ is scanned):
    command: tuple[str, ...] = ()  # e.g. ("synth", "reasoning") -> `raypipe synth reasoning`
    step: str = ""  # job step kind, e.g. "synth_reasoning"
    help: str = ""
    config_class: type | None = None  # a dataclass with `inputs`, `out`, `llm` and RunOptions

    def __init__(self, config: Any):
        self.config = config
        self.clients: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "clients": {}}  # live clients are made on the worker

    # -- what the executor asks of a stage (defaults suit the sample-in, sample-out stages) -----
    def llm(self) -> LLMConfig:
        return self.config.llm

    def llms(self) -> dict[str, LLMConfig]:
        """Every endpoint the stage talks to; "default" is the one `program` receives."""
        return {"default": self.llm()}

    def uses_llm(self) -> bool:
        """False when this configuration makes no request (no key needed, nothing to pay)."""
        return True

    def output_schema(self):
        from raypipe.schema import arrow_schema

        return arrow_schema()

    def source(self, *, use_ray: bool = True, allow_incomplete: bool = False):
        """The input rows: a Ray Dataset under Ray (nothing is read until it runs), else a
        list of row dicts."""
        from raypipe.io import iter_samples, read_samples

        if use_ray:
            return read_samples(self.config.inputs, allow_incomplete=allow_incomplete)
        return [s.to_row() for s in iter_samples(self.config.inputs, allow_incomplete=allow_incomplete)]

    def summary_extra(self) -> dict[str, Any]:
        """Stage-specific facts for summary.json (settings that shaped the output)."""
        return {}

    def inputs(self) -> list[str]:
        """Paths the stage reads (an output among them is refused before anything runs)."""
        return list(getattr(self.config, "inputs", []) or [])

    def source_fingerprint(self) -> str | None:
        """What the source is, so that a finished run over the same source is not read again:
        by default the input files' paths, sizes and modification times. None: always run."""
        import hashlib
        import json

        from raypipe.io import fs
        from raypipe.io.dataset import expand_inputs

        paths = self.inputs()
        if not paths:
            return None
        files = expand_inputs(paths)
        spec = [self.name, *[[f, *fs.stat(f)] for f in files]]
        return hashlib.sha256(json.dumps(spec).encode()).hexdigest()

    # -- the work, per row --------------------------------------------------------------------
    def prompt(self, row: dict) -> list[dict]:
        raise TypeError(f"stage {self.name!r} defines neither prompt() nor program()")

    def parse(self, row: dict, completion) -> Any:
        raise TypeError(f"stage {self.name!r} defines prompt() without parse()")

    def requests(self, row: dict) -> list[list[dict]]:
        """The requests a row would cost (first attempts), for dry runs."""
        return [self.prompt(row)]

    async def program(self, row: dict, client) -> Any:
        """Default: one request from `prompt`, parsed by `parse`, re-asked on ValueError."""
        from raypipe.llm.errors import RowError

        try:
            messages = self.prompt(row)
        except (KeyError, ValueError, TypeError) as exc:
            raise RowError(f"build error: {type(exc).__name__}: {exc}") from None
        return await client.ask(messages, lambda completion: self.parse(row, completion))


@dataclass(kw_only=True)
class RunOptions:
    """How a stage run behaves; every stage config inherits these (job key = CLI flag)."""

    dry_run: bool = field(default=False, metadata={
        "help": "render every request; print request count, tokens and cost; call nothing"})
    retry_rejects: bool = field(default=False, metadata={
        "help": "try the rows rejected by earlier runs again (they are pending until they finish)"})
    allow_incomplete: bool = field(default=False, metadata={
        "help": "read inputs whose run did not finish (their committed rows only)"})
