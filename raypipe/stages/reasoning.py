"""`raypipe synth reasoning` / job step `synth_reasoning`: a chain-of-thought reason for every
tool-call turn (the seed's FC-Reason data). Prompts and checks: `raypipe.synth.reasoning`."""

from __future__ import annotations

import asyncio
from typing import Any

from raypipe.llm.stage import LLMStage
from raypipe.synth.reasoning import (
    STAGE,
    ReasoningConfig,
    build_reasoning_messages,
    call_turns,
    check_reason,
    with_reasons,
)


class ReasoningStage(LLMStage):
    name = STAGE
    command = ("synth", "reasoning")
    step = "synth_reasoning"
    help = "add chain-of-thought reasons to tool-call turns (teacher LLM)"
    config_class = ReasoningConfig
    reads = ("id", "functions", "messages")

    def requests(self, row: dict) -> list[list[dict]]:
        from raypipe.schema import Sample

        sample = Sample.from_row(row)
        return [build_reasoning_messages(sample, t, self.config.few_shot)
                for t in call_turns(sample, self.config.overwrite)]

    async def program(self, row: dict, client) -> Any:
        """One request per tool-call turn (concurrently), each re-asked with its problems until
        it passes `check_reason`; a turn that never passes rejects the sample."""
        from raypipe.llm.errors import RowError
        from raypipe.schema import Sample
        from raypipe.synth.engine import checked, valid_input, valid_output

        cfg = self.config
        sample = valid_input(Sample.from_row(row))
        turns = call_turns(sample, cfg.overwrite)
        if not turns:
            if not call_turns(sample, overwrite=True) and not cfg.keep_without_calls:
                raise RowError("no tool calls: the sample has no assistant turn with tool calls to explain")
            return row  # nothing to explain: no call, or every call turn has its reason

        async def ask(turn: int) -> str:
            validate = checked(lambda answer: check_reason(
                answer, sample, turn, min_chars=cfg.min_chars, max_chars=cfg.max_chars,
                require_all_functions=cfg.require_all_functions))
            try:
                answer = await client.chat_json(build_reasoning_messages(sample, turn, cfg.few_shot),
                                                validate=validate)
            except RowError as exc:
                raise RowError(f"{exc.reason} [turn messages[{turn}]]") from None
            return answer["reason"]

        reasons = await asyncio.gather(*(ask(t) for t in turns))
        return valid_output(with_reasons(sample, dict(zip(turns, reasons))))


def run_reasoning(cfg: ReasoningConfig, **kwargs) -> dict[str, Any]:
    from raypipe.stages._run import run_configured

    return run_configured(ReasoningStage(cfg), **kwargs)
