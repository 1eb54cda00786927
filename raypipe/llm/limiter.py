"""The job-wide rate limiter: requests/min and tokens/min shared by every actor on every node.

`RateSchedule` is the arithmetic (a generic cell-rate algorithm: each request reserves the next
free slot, so callers never burst above the rate). `RateLimiterActor` is a named Ray actor
holding one schedule for the whole job; workers call `reserve` (it answers at once with how long
to wait, so the actor is never a bottleneck), correct the token estimate with the `usage` the
API returned, and report 429s, which pause everybody and lower the rate for a while.
"""

from __future__ import annotations

import hashlib
import time


class RateSchedule:
    MIN_SCALE = 0.25  # adaptive back-off never goes below a quarter of the configured rate
    DECREASE_EVERY_S = 2.0

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None):
        self.rps = requests_per_minute / 60.0 if requests_per_minute else None
        self.tps = tokens_per_minute / 60.0 if tokens_per_minute else None
        self.next_request = 0.0  # earliest start of the next request (monotonic seconds)
        self.next_tokens = 0.0  # earliest time the token budget has room again
        self.scale = 1.0  # < 1 after 429s: the endpoint's real limit is lower than configured
        self.throttled = 0
        self.last_decrease = float("-inf")
        self.lowest_scale = 1.0  # for the job log: how far the back-off went

    def reserve(self, tokens: int, now: float) -> float:
        """Book one request of about `tokens` tokens; return the seconds to wait before sending."""
        start = now
        if self.rps:
            start = max(start, self.next_request)
            self.next_request = start + 1.0 / (self.rps * self.scale)
        if self.tps:
            start = max(start, self.next_tokens)
            self.next_tokens = max(self.next_tokens, now) + tokens / (self.tps * self.scale)
        return start - now

    def done(self, delta_tokens: int) -> None:
        """A request succeeded; its `usage` said it cost `delta_tokens` more (or fewer) than
        booked. Also recovers slowly towards the configured rate after a back-off."""
        if self.tps:
            self.next_tokens += delta_tokens / (self.tps * self.scale)
        if self.scale < 1.0:
            self.scale = min(1.0, self.scale + 0.005)

    def throttle(self, retry_after_s: float, now: float) -> None:
        """The endpoint answered 429: nobody sends before Retry-After, and slow down by 10%
        -- once per `DECREASE_EVERY_S`: a burst of 429s from one hiccup (a stalled server
        answering a queue at once) is one congestion event, not twenty."""
        self.throttled += 1
        if now - self.last_decrease >= self.DECREASE_EVERY_S:
            self.last_decrease = now
            self.scale = max(self.MIN_SCALE, self.scale * 0.9)
            self.lowest_scale = min(self.lowest_scale, self.scale)
        self.next_request = max(self.next_request, now + retry_after_s)
        self.next_tokens = max(self.next_tokens, now + retry_after_s)


def limiter_name(base_url: str, model: str, rpm: float | None, tpm: float | None) -> str:
    digest = hashlib.sha256(f"{base_url}|{model}|{rpm}|{tpm}".encode()).hexdigest()[:16]
    return f"raypipe-llm-limiter-{digest}"


class _LimiterActor:
    def __init__(self, requests_per_minute, tokens_per_minute):
        self.schedule = RateSchedule(requests_per_minute, tokens_per_minute)

    def reserve(self, tokens: int) -> float:
        return self.schedule.reserve(tokens, time.monotonic())

    def done(self, delta_tokens: int) -> None:
        self.schedule.done(delta_tokens)

    def throttle(self, retry_after_s: float) -> None:
        self.schedule.throttle(retry_after_s, time.monotonic())

    def state(self) -> dict:
        s = self.schedule
        return {"scale": s.scale, "lowest_scale": s.lowest_scale, "throttled": s.throttled}


def get_or_create_limiter(name: str, requests_per_minute, tokens_per_minute):
    """The named limiter actor of this job (created by the driver; workers look it up).

    Not detached: it lives as long as the job's driver, so limits never leak into later jobs.
    """
    import ray

    actor_cls = ray.remote(num_cpus=0, max_concurrency=1)(_LimiterActor)
    return actor_cls.options(name=name, get_if_exists=True).remote(
        requests_per_minute, tokens_per_minute
    )


class LocalLimiter:
    """The same schedule for in-process runs (no Ray): same interface, awaited directly."""

    def __init__(self, requests_per_minute, tokens_per_minute):
        self.schedule = RateSchedule(requests_per_minute, tokens_per_minute)

    async def reserve(self, tokens: int) -> float:
        return self.schedule.reserve(tokens, time.monotonic())

    async def done(self, delta_tokens: int) -> None:
        self.schedule.done(delta_tokens)

    async def throttle(self, retry_after_s: float) -> None:
        self.schedule.throttle(retry_after_s, time.monotonic())


class RayLimiter:
    """Worker-side handle to the limiter actor, with the same awaitable interface."""

    def __init__(self, name: str):
        import ray

        self.actor = ray.get_actor(name)

    async def reserve(self, tokens: int) -> float:
        return await self.actor.reserve.remote(tokens)

    async def done(self, delta_tokens: int) -> None:
        self.actor.done.remote(delta_tokens)  # fire and forget

    async def throttle(self, retry_after_s: float) -> None:
        self.actor.throttle.remote(retry_after_s)
