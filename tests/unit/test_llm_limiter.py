"""The shared limiter's protocol without Ray: the actor class runs in this process behind a
stand-in handle, so leasing, feedback, the lowest-limit rule, failure retries and naming are
checked exactly (tests/integration/test_llm_limiter_ray.py runs the real actor on Ray)."""

import asyncio
import concurrent.futures
import hashlib
import time

import pytest

from raypipe.llm import limiter as lim
from raypipe.llm.limiter import RayLimiter, SharedLimiterActor, key_fingerprint, limiter_name

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def no_start_pause(monkeypatch):
    """A new actor's start pause (tested on its own below) would shift every figure here."""
    monkeypatch.setattr(lim, "START_PAUSE_S", 0.0)

KEY = "sk-live-abcdef0123456789"


class _Ref:
    def __init__(self, future):
        self._future = future

    def future(self):
        return self._future


def make_limiter(actor: SharedLimiterActor, rpm=None, tpm=None) -> tuple[RayLimiter, dict]:
    """A RayLimiter whose lease calls run `actor.lease` directly (same arguments as over Ray)."""
    seen = {"calls": 0, "fail": 0, "args": [], "slots": []}

    class Handle:
        class lease:  # noqa: N801 (mirrors `actor.lease.remote`)
            @staticmethod
            def remote(*args, **kwargs):
                seen["calls"] += 1
                seen["args"].append((args, kwargs))
                future = concurrent.futures.Future()
                if seen["fail"]:
                    seen["fail"] -= 1
                    future.set_exception(RuntimeError("actor died"))
                    return _Ref(future)
                task = asyncio.get_running_loop().create_task(actor.lease(*args, **kwargs))

                def finish(t):
                    seen["slots"].extend(t.result())
                    future.set_result(t.result())

                task.add_done_callback(finish)
                return _Ref(future)

    limiter = RayLimiter("raypipe-limiter-test", rpm, tpm)
    limiter._find_actor = lambda: Handle
    return limiter, seen


def test_the_name_hides_the_key_and_separates_endpoints_models_and_keys():
    name = limiter_name("https://api.example.com/v1/", "gpt-4o-mini", KEY)
    assert name == limiter_name("https://api.example.com/v1", "gpt-4o-mini", KEY)
    assert name != limiter_name("https://api.example.com/v1", "gpt-4o", KEY)
    assert name != limiter_name("https://other.example.com/v1", "gpt-4o-mini", KEY)
    assert name != limiter_name("https://api.example.com/v1", "gpt-4o-mini", KEY + "x")
    single = hashlib.sha256(KEY.encode()).hexdigest()
    assert key_fingerprint(KEY) != single  # a hash of a hash
    for secret in (KEY, KEY[-8:], single[:12], key_fingerprint(KEY)[:12]):
        assert secret not in name
    assert name.startswith("raypipe-limiter-v1-") and len(name) < 64


def test_workers_lease_blocks_so_the_actor_is_not_called_per_request():
    actor = SharedLimiterActor(requests_per_minute=6000, tokens_per_minute=None)  # 100/s

    async def main():
        limiter, seen = make_limiter(actor, rpm=6000)
        async def send_time():
            return time.monotonic() + await limiter.reserve(10)

        waits = await asyncio.gather(*(send_time() for _ in range(200)))
        for _ in range(200):
            await limiter.done(0)
        return waits, seen

    waits, seen = asyncio.run(main())
    # the first request leases alone (nobody else waits yet); then a lease covers ~1 s of the
    # rate = 100 slots: 3 calls for 200 requests (one slot left over, unused)
    assert seen["calls"] == 3 and actor.slots == 201
    slots = sorted(seen["slots"])
    spacing = [b - a for a, b in zip(slots, slots[1:])]
    assert min(spacing) >= 0.01 - 1e-3  # the slots handed out are never closer than the rate
    times = sorted(waits)  # each request's send time: its slot, or now if the slot just passed
    assert 1.98 - 0.25 <= times[-1] - times[0] < 2.5


def test_feedback_rides_with_the_next_lease_and_429s_drop_leased_slots():
    actor = SharedLimiterActor(requests_per_minute=600, tokens_per_minute=60_000)

    async def main():
        limiter, seen = make_limiter(actor, rpm=600, tpm=60_000)
        await asyncio.gather(*(limiter.reserve(100) for _ in range(4)))  # leases of 1 and 4
        await limiter.reserve(100)  # the slot left over
        await limiter.reserve(100)  # 6 asked in the last second: a lease of 6, 5 kept
        held = len(limiter._slots)
        await limiter.done(-40)
        await limiter.done(+10)
        await limiter.throttle(2.0)  # a 429: the rest of the block is given back, not used
        assert not limiter._slots and held >= 1
        wait = await limiter.reserve(100)
        return seen, wait, held

    seen, wait, held = asyncio.run(main())
    (_, first), *_, (_, second) = seen["args"]
    assert first == {"delta_tokens": 0, "successes": 0, "throttled": 0, "retry_after_s": 0.0,
                     "lead_s": 0.0}
    assert second["lead_s"] >= 0.0
    assert second["successes"] == 2 and second["throttled"] == 1 and second["retry_after_s"] == 2.0
    assert held == 5 and second["delta_tokens"] == -30 - 100 * held  # corrections + unused bookings
    assert actor.schedule.throttled == 1 and actor.schedule.scale == pytest.approx(0.9)
    assert wait >= 1.9  # nobody sends before Retry-After


def test_two_clients_share_one_budget_and_the_lowest_limit_wins():
    actor = SharedLimiterActor(requests_per_minute=1200, tokens_per_minute=None)

    async def main():
        a, _ = make_limiter(actor, rpm=1200)
        b, _ = make_limiter(actor, rpm=600)  # another job, stricter, same key
        await b.reserve(1)
        waits = await asyncio.gather(*(x.reserve(1) for _ in range(30) for x in (a, b)))
        return sorted(waits)

    waits = asyncio.run(main())
    assert actor.schedule.rpm == 600 and len(actor.clients) == 2
    # 61 requests from both clients together at 10/s: the last one waits ~6 s
    assert waits[-1] == pytest.approx(6.0, abs=0.3)


def test_a_failed_lease_is_retried_not_raised():
    actor = SharedLimiterActor(requests_per_minute=6000, tokens_per_minute=None)

    async def main():
        limiter, seen = make_limiter(actor, rpm=6000)
        seen["fail"] = 3  # the actor's node died three times in a row
        started = time.monotonic()
        wait = await limiter.reserve(1)
        return limiter, seen, wait, time.monotonic() - started

    limiter, seen, wait, took = asyncio.run(main())
    assert seen["calls"] == 4 and limiter.lease_failures == 3 and limiter.lease_calls == 1
    assert wait == pytest.approx(0.0, abs=0.05) and took < 5


def test_stale_slots_are_dropped_not_sent_in_a_burst(monkeypatch):
    actor = SharedLimiterActor(requests_per_minute=600, tokens_per_minute=None)

    async def main():
        limiter, seen = make_limiter(actor, rpm=600)
        await limiter.reserve(1)
        limiter._slots = type(limiter._slots)((time.monotonic() - 5, 1) for _ in range(3))
        await limiter.reserve(1)  # the 3 old slots are dropped and a new lease is taken
        return seen

    assert asyncio.run(main())["calls"] == 2


def test_a_slow_reply_does_not_hand_out_slots_already_past():
    actor = SharedLimiterActor(requests_per_minute=600, tokens_per_minute=None)

    async def main():
        return await actor.lease("c", 3, 1, 600, None, lead_s=0.3)

    before = time.time()
    slots = asyncio.run(main())
    assert slots[0] >= before + 0.3 and slots[1] - slots[0] == pytest.approx(0.1, abs=1e-6)


def test_clients_that_stopped_leasing_no_longer_set_the_limit(monkeypatch):
    actor = SharedLimiterActor(requests_per_minute=600, tokens_per_minute=None)

    async def main():
        await actor.lease("strict", 1, 1, 300, None)
        assert actor.schedule.rpm == 300
        monkeypatch.setattr(lim, "CLIENT_TTL_S", 0.0)
        await asyncio.sleep(0.01)
        await actor.lease("other", 1, 1, 600, None)
        return actor.schedule.rpm

    assert asyncio.run(main()) == 600


def test_the_actor_handle_pickles_as_plain_data():
    import pickle

    limiter = RayLimiter("raypipe-limiter-x", 600, None)
    limiter._actor = object()  # a live handle never travels
    clone = pickle.loads(pickle.dumps(limiter))
    assert clone.name == "raypipe-limiter-x" and clone.rpm == 600 and clone._actor is None


def test_a_new_actor_starts_after_its_predecessors_slots_ran_out(monkeypatch):
    """Re-created after a loss, the actor knows nothing of the slots its predecessor leased
    (up to one lease window ahead): it grants none before they have run out."""
    monkeypatch.setattr(lim, "START_PAUSE_S", 1.25)
    before = time.time()
    actor = SharedLimiterActor(requests_per_minute=600, tokens_per_minute=None)
    slots = asyncio.run(actor.lease("c", 2, 1, 600, None))
    assert slots[0] >= before + 1.25 and slots[1] - slots[0] == pytest.approx(0.1, abs=1e-6)
