"""`LLMConfig`: everything an LLM stage needs to reach an OpenAI-compatible endpoint.

A plain typed dataclass so pipelines embed it in their own step configs (`llm: {...}` in a job
YAML) and `raypipe.config.load_config` checks it. The API key is never a field: only the
*name* of the environment variable that holds it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from raypipe.config import env_var, number, output_path, url
from raypipe.errors import FatalJobError


@dataclass
class Price:
    """USD per one million tokens."""

    prompt: float = 0.0
    completion: float = 0.0


# Defaults for well-known model names; a job overrides or extends them with `llm.prices`.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o": Price(prompt=2.50, completion=10.00),
    "gpt-4o-mini": Price(prompt=0.15, completion=0.60),
    "gpt-4.1": Price(prompt=2.00, completion=8.00),
    "gpt-4.1-mini": Price(prompt=0.40, completion=1.60),
}


@dataclass
class LLMConfig:
    base_url: str = url(default="https://api.openai.com/v1")  # any OpenAI-compatible endpoint (vLLM, Azure...)
    model: str = "gpt-4o-mini"
    api_key_env: str = env_var(default="OPENAI_API_KEY")  # name of the env var holding the key (never the key)
    # None: the stage's own default (0 for stages that check or transform; > 0 for stages that
    # generate new dialogs, so that two dialogs over the same tools differ)
    temperature: float | None = number(ge=0, default=None)
    max_tokens: int = number(ge=1, default=1024)
    concurrency: int = 64  # requests in flight per actor
    num_actors: int = 2
    batch_size: int = 256  # rows per batch: the unit of commit (committed parts every 30 s)
    # The actors wait on the network: they reserve no CPU, so on small nodes the read tasks
    # that feed them always find one (with 0.25 x 4 actors on 1-CPU nodes, reads starved).
    actor_num_cpus: float = 0.0
    requests_per_minute: float | None = None  # whole job, all actors; None = no limit
    tokens_per_minute: float | None = None
    max_retries: int = 6
    backoff_base_s: float = 0.5  # first retry waits ~this, doubling each time (with jitter)
    backoff_max_s: float = 30.0
    timeout_s: float = number(gt=0, default=60.0)  # per request
    endpoint_down_after_s: float = number(gt=0, default=60.0)  # no successful answer for this long -> stop the job
    cache_dir: str | None = output_path(shared=True, default=None)  # local dir or pyarrow-FS URI (s3://...); None disables
    max_error_rate: float = 0.5  # share of rejected rows that stops the job ...
    min_rows_for_error_rate: int = 50  # ... once at least this many rows were processed
    max_reasks: int = 2  # structured output: re-asks after a parse/validation error
    response_format: str | None = None  # "json_object" asks the endpoint for JSON mode
    extra_headers: dict[str, str] = field(default_factory=dict)  # e.g. Azure api-version
    prices: dict[str, Price] = field(default_factory=dict)  # model -> Price, added to defaults
    progress_interval_s: float = 10.0  # live progress line period (0 disables)

    def __post_init__(self) -> None:
        problems = []
        if self.concurrency < 1:
            problems.append("concurrency must be >= 1")
        if self.num_actors < 1:
            problems.append("num_actors must be >= 1")
        if self.batch_size < 1:
            problems.append("batch_size must be >= 1")
        if self.max_retries < 0 or self.max_reasks < 0:
            problems.append("max_retries and max_reasks must be >= 0")
        if not 0.0 < self.max_error_rate <= 1.0:
            problems.append("max_error_rate must be in (0, 1]")
        for name in ("requests_per_minute", "tokens_per_minute"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                problems.append(f"{name} must be > 0 (or null for no limit)")
        if self.response_format not in (None, "json_object"):
            problems.append("response_format must be null or 'json_object'")
        if problems:
            raise ValueError("; ".join(problems))

    def with_default_temperature(self, temperature: float) -> "LLMConfig":
        """This config, with `temperature` where the user left it unset."""
        from dataclasses import replace

        return self if self.temperature is not None else replace(self, temperature=temperature)

    def price(self) -> Price:
        return self.prices.get(self.model) or DEFAULT_PRICES.get(self.model) or Price()

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        p = self.price()
        return (prompt_tokens * p.prompt + completion_tokens * p.completion) / 1e6

    def api_key(self) -> str:
        """Read the key from the environment (on the worker, when the client is created)."""
        key = os.environ.get(self.api_key_env)
        if not key:
            raise FatalJobError(
                f"environment variable {self.api_key_env} is not set (it must hold the API key "
                f"for {self.base_url}); on a cluster pass it with runtime_env env_vars"
            )
        return key
