"""`raypipe synth translate` / job step `synth_translate`: structure-preserving translation
(function names, keys, enums, numbers and ids come back byte-identical, or the answer is
re-asked, then rejected). Prompts and checks: `raypipe.synth.translate`."""

from __future__ import annotations

import asyncio
from typing import Any

from raypipe.llm.stage import LLMStage
from raypipe.synth.translate import (
    STAGE,
    TranslateConfig,
    apply_translation,
    build_translate_messages,
    check_translation,
    chunk_turns,
)


class TranslateStage(LLMStage):
    name = STAGE
    command = ("synth", "translate")
    step = "synth_translate"
    help = "translate samples, keeping every function-call detail intact"
    config_class = TranslateConfig
    reads = ("id", "lang", "functions", "messages")

    def requests(self, row: dict) -> list[list[dict]]:
        from raypipe.schema import Sample

        sample, language = Sample.from_row(row), self.config.language()
        if sample.lang == language.code:  # rejected without a request
            return []
        return [build_translate_messages(sample, a, b, language)
                for a, b in chunk_turns(sample.messages, self.config.max_chunk_chars)]

    async def program(self, row: dict, client) -> Any:
        """One request per chunk of turns (concurrently), each re-asked with every violation
        until `check_translation` passes; a chunk that never passes rejects the sample."""
        from raypipe.llm.errors import RowError
        from raypipe.schema import Sample
        from raypipe.synth.engine import checked, valid_input, valid_output

        language = self.config.language()
        sample = valid_input(Sample.from_row(row))
        if sample.lang == language.code:
            raise RowError(f"already translated: the sample's language is {language.code}")

        async def ask(start: int, end: int) -> list[dict]:
            validate = checked(lambda answer: check_translation(sample, start, end, answer, language))
            try:
                answer = await client.chat_json(build_translate_messages(sample, start, end, language),
                                                validate=validate)
            except RowError as exc:
                raise RowError(f"{exc.reason} [turns {start}..{end - 1}]") from None
            return answer["messages"]

        chunks = await asyncio.gather(*(ask(a, b) for a, b in chunk_turns(sample.messages,
                                                                            self.config.max_chunk_chars)))
        return valid_output(apply_translation(sample, [t for chunk in chunks for t in chunk], language))


def run_translate(cfg: TranslateConfig, **kwargs) -> dict[str, Any]:
    from raypipe.stages._run import run_configured

    return run_configured(TranslateStage(cfg), **kwargs)
