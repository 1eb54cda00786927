"""`raypipe synth negatives` / job step `synth_negatives`: non-function-call samples made by
removing the called functions (the seed's NF data). Decision-only targets need no request; with
`teacher_answer` a teacher writes the direct answer. Both go through the same executor and write
the same layout. Rules: `raypipe.synth.negatives`."""

from __future__ import annotations

from typing import Any

from raypipe.llm.stage import LLMStage
from raypipe.synth.negatives import STAGE, NegativesConfig


class NegativesStage(LLMStage):
    name = STAGE
    command = ("synth", "negatives")
    step = "synth_negatives"
    help = "non-function-call samples: remove the called functions"
    config_class = NegativesConfig
    reads = ("id", "functions", "messages")

    def __init__(self, config: NegativesConfig):
        from raypipe.synth.negatives import load_pool

        super().__init__(config)
        self.pool = load_pool(config.tool_pool)  # read once on the driver, shipped as data

    def uses_llm(self) -> bool:
        return self.config.teacher_answer

    def summary_extra(self) -> dict[str, Any]:
        from raypipe.synth.negatives import DECISION_ONLY

        cfg = self.config
        return {"target": "direct_answer" if cfg.teacher_answer else DECISION_ONLY, "seed": cfg.seed,
                "fraction": cfg.fraction, "min_functions": cfg.min_functions}

    def source(self, *, use_ray: bool = True, allow_incomplete: bool = False):
        from raypipe.synth.negatives import selected

        rows = super().source(use_ray=use_ray, allow_incomplete=allow_incomplete)
        seed, fraction = self.config.seed, self.config.fraction
        if fraction >= 1.0:
            return rows
        if use_ray:
            return rows.filter(lambda row: selected(row["id"], seed, fraction))
        return [r for r in rows if selected(r["id"], seed, fraction)]

    def _negative(self, row: dict):
        from raypipe.llm.errors import RowError
        from raypipe.schema import Sample
        from raypipe.synth.negatives import NegativeError, make_negative

        cfg = self.config
        try:
            return make_negative(Sample.from_row(row), self.pool, seed=cfg.seed,
                                 min_functions=cfg.min_functions, drop_lookalikes=cfg.drop_lookalikes)
        except NegativeError as exc:
            raise RowError(str(exc)) from None

    def requests(self, row: dict) -> list[list[dict]]:
        from raypipe.synth.negatives import build_answer_messages

        if not self.config.teacher_answer:
            return []
        return [build_answer_messages(self._negative(row))]  # RowError: counted as a build error

    async def program(self, row: dict, client) -> Any:
        from raypipe.synth.negatives import build_answer_messages, check_direct_answer, with_direct_answer

        negative = self._negative(row)
        if not self.config.teacher_answer:
            return negative.to_row()
        info = negative.meta["negative"]

        def parse(completion) -> str:
            problems = check_direct_answer(completion.text, negative, info["removed"] + info["lookalikes_removed"])
            if problems:
                raise ValueError("; ".join(problems))
            return completion.text

        text = await client.ask(build_answer_messages(negative), parse)
        return with_direct_answer(negative, text).to_row()


def run_negatives(cfg: NegativesConfig, **kwargs) -> dict[str, Any]:
    from raypipe.stages._run import run_configured

    return run_configured(NegativesStage(cfg), **kwargs)
