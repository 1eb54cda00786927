"""Rate limits shared by a team: one limiter per (endpoint, model, API key) for the whole cluster.

`RateSchedule` is the arithmetic (a generic cell-rate algorithm: every request takes the next
free slot, so callers never burst above the rate).

On Ray, the schedule lives in ONE detached actor per (endpoint, model, API-key fingerprint), in
the fixed namespace "raypipe", so every job of every user that sends with the same key shares
its budget. Its name is a hash; the key never appears anywhere (the fingerprint is a hash of a
hash of the key, and only a hash of the fingerprint is the name). It runs on the head node (a
worker node's loss cannot take it down) and exits after `IDLE_EXIT_S` without calls.

Slot times are wall-clock times, so the network delay of a lease does not shift them: nodes
are assumed NTP-synchronised (a node whose clock is off by d sends d early or late).

Workers never ask it once per request: `RayLimiter` *leases* a block of send slots (about
`LEASE_WINDOW_S` of the key's rate, shared among the clients that lease) and hands them out
locally. 429s, successes and token corrections from `usage` travel with the next lease call.
A failed call (actor gone, node lost, timeout) is transient: the worker finds or re-creates
the actor and tries again, the request waits meanwhile, and no row is ever rejected for it.

Two jobs that configure different limits for one key: the lowest limit of the clients that
leased in the last `CLIENT_TTL_S` seconds holds for all of them (a job cannot raise the budget
of a key another job is still using carefully).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import math
import random
import time
import uuid

NAMESPACE = "raypipe"
PROTOCOL = "v1"  # part of the actor's name: jobs of another raypipe version get their own
LEASE_WINDOW_S = 1.0  # one lease covers about this long of the key's rate, split among clients
MAX_BLOCK = 256  # slots per lease at most
CLIENT_TTL_S = 60.0  # a client that has not leased for this long no longer counts
IDLE_EXIT_S = 900.0  # the actor exits after this long without calls (a later job re-creates it)
LATE_SLOT_S = 0.25  # a slot this far in the past is dropped, not used (no bursts)
LEASE_TIMEOUT_S = 10.0
# A new actor (first start, restart, or re-created after a loss) hands out no slot sooner than
# this: slots its lost predecessor leased run out by then, so the two schedules never overlap.
START_PAUSE_S = LEASE_WINDOW_S + LATE_SLOT_S


class RateSchedule:
    MIN_SCALE = 0.25  # adaptive back-off never goes below a quarter of the configured rate
    DECREASE_EVERY_S = 2.0

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None):
        self.set_limits(requests_per_minute, tokens_per_minute)
        self.next_request = 0.0  # earliest start of the next request (monotonic seconds)
        self.next_tokens = 0.0  # earliest time the token budget has room again
        self.scale = 1.0  # < 1 after 429s: the endpoint's real limit is lower than configured
        self.throttled = 0
        self.last_decrease = float("-inf")
        self.lowest_scale = 1.0  # for the job log: how far the back-off went

    def set_limits(self, requests_per_minute: float | None, tokens_per_minute: float | None) -> None:
        self.rpm, self.tpm = requests_per_minute, tokens_per_minute
        self.rps = requests_per_minute / 60.0 if requests_per_minute else None
        self.tps = tokens_per_minute / 60.0 if tokens_per_minute else None

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

    def correct(self, delta_tokens: int) -> None:
        """The answers' `usage` said they cost `delta_tokens` more (or fewer) than booked."""
        if self.tps:
            self.next_tokens += delta_tokens / (self.tps * self.scale)

    def recover(self, successes: int = 1) -> None:
        """Successful answers bring the rate slowly back after a back-off (0.5% each)."""
        if self.scale < 1.0:
            self.scale = min(1.0, self.scale + 0.005 * successes)

    def done(self, delta_tokens: int) -> None:
        """One request succeeded (correct + recover)."""
        self.correct(delta_tokens)
        self.recover(1)

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

    def slots_per_second(self, tokens: int) -> float:
        rates = []
        if self.rps:
            rates.append(self.rps * self.scale)
        if self.tps:
            rates.append(self.tps * self.scale / max(tokens, 1))
        return min(rates) if rates else 1000.0


def key_fingerprint(api_key: str) -> str:
    """sha256 of the sha256 of the key: stable per key, says nothing about it."""
    return hashlib.sha256(hashlib.sha256(api_key.encode("utf-8")).digest()).hexdigest()


def limiter_name(base_url: str, model: str, api_key: str) -> str:
    """The actor's name for (endpoint, model, key): a hash of the fingerprint, never the key."""
    ident = f"{PROTOCOL}|{base_url.rstrip('/')}|{model}|{key_fingerprint(api_key)}"
    return f"raypipe-limiter-{PROTOCOL}-{hashlib.sha256(ident.encode('utf-8')).hexdigest()[:32]}"


def limiter_name_for(llm) -> str:
    """The limiter name of an `LLMConfig` (reads the key from its environment variable)."""
    return limiter_name(llm.base_url, llm.model, llm.api_key())


class SharedLimiterActor:
    """The schedule of one key, leased out in blocks. Async actor: calls never wait on each
    other (no method awaits), and the idle watch runs beside them."""

    def __init__(self, requests_per_minute, tokens_per_minute, idle_exit_s: float = IDLE_EXIT_S):
        self.schedule = RateSchedule(requests_per_minute, tokens_per_minute)
        start = time.monotonic() + START_PAUSE_S
        self.schedule.next_request = self.schedule.next_tokens = start
        self.idle_exit_s = idle_exit_s
        self.clients: dict[str, tuple[float | None, float | None, float]] = {}
        self.last_call = time.monotonic()
        self.leases = self.slots = 0
        self._watch = None

    async def lease(self, client: str, want: int, tokens: int, requests_per_minute=None,
                    tokens_per_minute=None, delta_tokens: int = 0, successes: int = 0,
                    throttled: int = 0, retry_after_s: float = 0.0, lead_s: float = 0.0) -> list[float]:
        """Book up to `want` slots of `tokens` tokens each for `client`; returns each slot's
        wall-clock time (time.time(): a reply's network delay does not shift it). Carries the client's limits and its feedback since its
        last lease: token corrections, successes, and 429s (with the longest Retry-After).
        `lead_s`: the client's last lease round trip; no slot starts sooner, so a reply's
        slots are not already past (and sent together) when it arrives."""
        now = time.monotonic()
        self._touch(now)
        self.clients[client] = (requests_per_minute, tokens_per_minute, now)
        self._apply_limits(now)
        if delta_tokens:
            self.schedule.correct(delta_tokens)
        if successes:
            self.schedule.recover(successes)
        if throttled:
            self.schedule.throttle(retry_after_s, now)
            self.schedule.throttled += throttled - 1
        share = self.schedule.slots_per_second(tokens) * LEASE_WINDOW_S / max(1, len(self.clients))
        n = max(1, min(int(want), MAX_BLOCK, math.ceil(share)))
        self.leases += 1
        self.slots += n
        lead = min(max(float(lead_s), 0.0), 1.0)
        wall = time.time() + lead
        return [wall + self.schedule.reserve(tokens, now + lead) for _ in range(n)]

    async def state(self) -> dict:
        """Effective limits and counters (no key, no fingerprint: nothing to leak)."""
        import ray

        self._touch(time.monotonic())
        s = self.schedule
        return {"requests_per_minute": s.rpm, "tokens_per_minute": s.tpm, "scale": s.scale,
                "lowest_scale": s.lowest_scale, "throttled": s.throttled, "clients": len(self.clients),
                "leases": self.leases, "slots": self.slots,
                "node_id": ray.get_runtime_context().get_node_id()}

    def _apply_limits(self, now: float) -> None:
        """The lowest limit among the clients seen in the last CLIENT_TTL_S seconds."""
        self.clients = {c: v for c, v in self.clients.items() if now - v[2] <= CLIENT_TTL_S}
        rpms = [v[0] for v in self.clients.values() if v[0]]
        tpms = [v[1] for v in self.clients.values() if v[1]]
        rpm, tpm = (min(rpms) if rpms else None), (min(tpms) if tpms else None)
        if (rpm, tpm) != (self.schedule.rpm, self.schedule.tpm) and (rpm or tpm):
            self.schedule.set_limits(rpm, tpm)

    def _touch(self, now: float) -> None:
        self.last_call = now
        if self._watch is None:
            self._watch = asyncio.get_running_loop().create_task(self._exit_when_idle())

    async def _exit_when_idle(self) -> None:
        while True:
            await asyncio.sleep(min(30.0, self.idle_exit_s / 4))
            if time.monotonic() - self.last_call >= self.idle_exit_s:
                import ray

                # Not a crash: no restart. A later lease finds no actor and creates a new one.
                ray.kill(ray.get_runtime_context().current_actor, no_restart=True)
                return


def get_or_create_limiter(name: str, requests_per_minute, tokens_per_minute,
                          idle_exit_s: float = IDLE_EXIT_S):
    """The shared limiter actor `name` (created on the head node if it does not exist)."""
    import ray

    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        pass
    actor_cls = ray.remote(SharedLimiterActor)
    return actor_cls.options(
        name=name, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
        num_cpus=0, resources={"node:__internal_head__": 0.001},  # the head node: never lost alone
        max_restarts=2, max_task_retries=0,  # a restarted schedule starts empty; callers retry
    ).remote(requests_per_minute, tokens_per_minute, idle_exit_s)


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
    """Worker-side handle to the shared limiter: leases slots in blocks and hands them out to
    this worker's requests; the feedback rides along with the next lease. Same awaitable
    interface as `LocalLimiter`. Created on the worker (holds no live handle when pickled)."""

    def __init__(self, name: str, requests_per_minute=None, tokens_per_minute=None):
        self.name = name
        self.rpm, self.tpm = requests_per_minute, tokens_per_minute
        self.client = uuid.uuid4().hex
        self._actor = None
        self._slots: collections.deque = collections.deque()  # (monotonic time, tokens booked)
        self._lock: asyncio.Lock | None = None
        self._waiting = 0
        self._asked: collections.deque = collections.deque()  # times of recent reserve() calls
        self._delta = self._successes = self._throttled = 0
        self._retry_after = 0.0
        self._round_trip = 0.0  # of the last lease call, seconds
        self.lease_calls = 0
        self.lease_failures = 0

    def __getstate__(self):
        return {"name": self.name, "rpm": self.rpm, "tpm": self.tpm}

    def __setstate__(self, state):
        self.__init__(state["name"], state["rpm"], state["tpm"])

    async def reserve(self, tokens: int) -> float:
        if self._lock is None:
            self._lock = asyncio.Lock()
        self._waiting += 1
        now = time.monotonic()
        self._asked.append(now)
        while self._asked[0] < now - LEASE_WINDOW_S:
            self._asked.popleft()
        try:
            async with self._lock:
                self._drop_slots(stale_only=True)
                if not self._slots:
                    # Ask for what waits now, or for a window's worth at the recent pace (the
                    # actor caps it at this client's share); unused slots go stale unused.
                    await self._lease(max(self._waiting, len(self._asked)), tokens)
                at, booked = self._slots.popleft()
                self._delta += tokens - booked  # this request's own estimate, not the block's
        finally:
            self._waiting -= 1
        return max(0.0, at - time.monotonic())

    async def done(self, delta_tokens: int) -> None:
        self._delta += delta_tokens
        self._successes += 1

    async def throttle(self, retry_after_s: float) -> None:
        """A 429: slots leased before it are not used; the next lease reports it at once."""
        self._drop_slots(stale_only=False)
        self._throttled += 1
        self._retry_after = max(self._retry_after, retry_after_s)

    def _drop_slots(self, stale_only: bool) -> None:
        limit = time.monotonic() - LATE_SLOT_S
        while self._slots and (not stale_only or self._slots[0][0] < limit):
            self._delta -= self._slots.popleft()[1]  # booked, never sent: give the tokens back

    async def _lease(self, want: int, tokens: int) -> None:
        attempt = 0
        while True:
            feedback = dict(delta_tokens=self._delta, successes=self._successes,
                            throttled=self._throttled, retry_after_s=self._retry_after)
            try:
                actor = self._actor or await asyncio.to_thread(self._find_actor)
                self._actor = actor
                sent = time.monotonic()
                ref = actor.lease.remote(self.client, want, tokens, self.rpm, self.tpm,
                                         lead_s=self._round_trip, **feedback)
                slots = await asyncio.wait_for(asyncio.wrap_future(ref.future()), LEASE_TIMEOUT_S)
                self._round_trip = time.monotonic() - sent
            except Exception:  # actor gone, node lost, timeout: transient, find it again
                self._actor = None
                self.lease_failures += 1
                attempt += 1
                await asyncio.sleep(min(5.0, 0.1 * 2 ** attempt) * random.uniform(0.5, 1.0))
                continue
            self.lease_calls += 1
            self._delta -= feedback["delta_tokens"]
            self._successes -= feedback["successes"]
            self._throttled -= feedback["throttled"]
            if not self._throttled:
                self._retry_after = 0.0
            offset = time.monotonic() - time.time()  # wall-clock slots -> this clock
            self._slots.extend((at + offset, tokens) for at in slots)
            return

    def _find_actor(self):
        return get_or_create_limiter(self.name, self.rpm, self.tpm)
