"""`LLMClient`: the one place where raypipe talks to an OpenAI-compatible chat API.

Every call goes through, in this order: the request cache (a hit costs nothing), in-flight
de-duplication (identical requests in one worker are sent once), the concurrency cap, the
job-wide rate limiter, and the retry loop. Retries live here and only here:

- retryable: 429, 408, 409, 5xx, timeouts, connection errors, malformed response bodies;
  exponential backoff with full jitter, or the server's Retry-After when it sends one; once
  the retries are spent -> `TransientError` (the row stays pending; a re-run retries it);
- not retryable: any other 4xx -> `RowError` at once (the row goes to rejects);
- 401/403, or an endpoint with no successful answer for `endpoint_down_after_s` (counted from
  the client's start when it never answered) -> `FatalJobError` (the job stops, one message).

The client is created on the worker from a plain `LLMConfig`; it refuses to be pickled, and the
API key it reads from the environment never appears in what it returns or raises: error texts
and answers are redacted (`raypipe.llm.redact`: the key and any 8+ character piece of it).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from raypipe.errors import FatalJobError
from raypipe.llm.cache import RequestCache, cache_key
from raypipe.llm.config import LLMConfig
from raypipe.llm.errors import RowError, TransientError
from raypipe.llm.redact import redact, redact_obj

POOL_SIZE = 16  # connections per HTTP pool (see LLMClient._pools)
LATE_SLOT_S = 0.25  # woke up this much after the rate-limit slot: book another one
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403})


@dataclass
class Completion:
    text: str
    usage: dict[str, int]  # prompt_tokens, completion_tokens (zeros for cache hits)
    cached: bool = False
    finish_reason: str | None = None
    # OpenAI function-calling answers: [{"id", "type": "function", "function": {"name",
    # "arguments": JSON text}}] exactly as the endpoint sent them (None when it sent none).
    tool_calls: list[dict] | None = None

    def message(self) -> dict:
        """The assistant message as the OpenAI wire format has it (for the next request)."""
        out: dict = {"role": "assistant", "content": self.text or None}
        if self.tool_calls:
            out["tool_calls"] = self.tool_calls
        return out


@dataclass
class Accounting:
    """What this client did; the stage sends deltas of it to the driver with each batch."""

    requests: int = 0  # HTTP requests sent (attempts, retries included)
    responses: int = 0  # successful answers
    cache_hits: int = 0
    retries: int = 0
    throttled: int = 0  # 429 answers
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)  # kind -> count

    def add(self, name: str, amount: float = 1) -> None:
        setattr(self, name, getattr(self, name) + amount)

    def snapshot(self) -> dict:
        return {
            "requests": self.requests, "responses": self.responses, "cache_hits": self.cache_hits,
            "retries": self.retries, "throttled": self.throttled,
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "cost_usd": self.cost_usd, "failures": dict(self.failures),
        }


# The Accounting of the batch (or row) being processed: set by the stage around a batch so that
# concurrent batches of one worker each count only their own requests.
batch_accounting: contextvars.ContextVar[Accounting | None] = contextvars.ContextVar(
    "batch_accounting", default=None
)


def estimate_tokens(messages: list[dict]) -> int:
    """chars/4: good enough to book rate-limit budget before `usage` corrects it."""
    return max(1, sum(len(str(m.get("content") or "")) for m in messages) // 4)


class LLMClient:
    def __init__(self, config: LLMConfig, limiter: Any = None, cache: RequestCache | None = None,
                 on_send: Callable[[], Any] | None = None):
        self.config = config
        self.on_send = on_send  # awaited before every HTTP request (spend is booked on disk)
        self.in_flight = 0  # HTTP requests on the wire now
        self.limiter = limiter  # LocalLimiter / RayLimiter or None
        self.cache = cache if cache is not None else (
            RequestCache(config.cache_dir) if config.cache_dir else None
        )
        self.acct = Accounting()
        self._openai: list | None = None
        self._pool_load: list[int] = []
        self._io = None  # thread pool for cache I/O, created on first use
        self._api_key: str | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._inflight: dict[str, asyncio.Future] = {}
        self._pause_until = 0.0  # after a 429 every request of this worker waits until then
        self._last_success = time.monotonic()
        self._ever_answered = False

    def __reduce__(self):
        raise TypeError("LLMClient holds a live connection: pass the LLMConfig and build it on the worker")

    # -- plumbing ------------------------------------------------------------------------
    def _pools(self) -> list:
        """Several AsyncOpenAI clients, each with its own small connection pool: the HTTP
        pool scans all its connections for every request, so one pool of 128 connections
        costs O(in-flight) CPU per request; pools of <= POOL_SIZE keep that flat."""
        if self._openai is None:
            import openai
            from openai._base_client import DEFAULT_CONNECTION_LIMITS

            self._api_key = self.config.api_key()
            n_pools = -(-self.config.concurrency // POOL_SIZE)
            per_pool = -(-self.config.concurrency // n_pools)
            # (the limits class is taken from openai so as not to name the HTTP library it
            # bundles: its module name varies between versions)
            limits = type(DEFAULT_CONNECTION_LIMITS)(
                max_connections=self.config.concurrency + 16,
                max_keepalive_connections=per_pool + 4,
            )
            self._openai = [
                openai.AsyncOpenAI(
                    base_url=self.config.base_url,
                    api_key=self._api_key,
                    max_retries=0,  # retries are ours (jitter, Retry-After, accounting)
                    timeout=self.config.timeout_s,
                    default_headers=self.config.extra_headers or None,
                    http_client=openai.DefaultAsyncHttpxClient(limits=limits, timeout=self.config.timeout_s),
                )
                for _ in range(n_pools)
            ]
            for pool in self._openai:  # openai resolves these lazily (~0.4 s): not in a rate slot
                pool.chat.completions.with_raw_response  # noqa: B018
            self._pool_load = [0] * n_pools
            self._semaphore = asyncio.Semaphore(self.config.concurrency)
        return self._openai

    def scrub(self, text: str) -> str:
        """Remove the API key (and any 8+ character piece of it) from any text that may reach
        a log, a reject, a cache or an output."""
        return redact(text, self._api_key or self._key_from_env())

    def _key_from_env(self) -> str | None:
        import os

        return os.environ.get(self.config.api_key_env)

    def request_params(self, params: dict) -> dict:
        temperature = self.config.temperature if self.config.temperature is not None else 0.0
        out = {"temperature": temperature, "max_tokens": self.config.max_tokens}
        if self.config.response_format:
            out["response_format"] = {"type": self.config.response_format}
        out.update(params)
        return out

    async def close(self) -> None:
        if self.cache is not None:  # writes the answers still buffered (one segment)
            await self._in_io_thread(self.cache.close)
        if self._openai is not None:
            for pool in self._openai:
                await pool.close()
            self._openai = None

    async def _in_io_thread(self, fn, *args):
        """Cache reads/writes off the event loop, on a pool sized for the requests in flight
        (asyncio's default pool has cpu+4 threads: too few for an object-store cache)."""
        if self._io is None:
            from concurrent.futures import ThreadPoolExecutor

            self._io = ThreadPoolExecutor(max_workers=min(64, self.config.concurrency),
                                          thread_name_prefix="raypipe-cache")
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    # -- the API ---------------------------------------------------------------------------
    async def chat(self, messages: list[dict], **params: Any) -> Completion:
        """One chat completion (cached, de-duplicated, rate limited, retried). Extra `params`
        go to the endpoint as they are (`tools=[...]`, `tool_choice=...`, `seed=...`) and
        are part of the cache key; the answer's `tool_calls` come back on the Completion."""
        params = self.request_params(params)
        key = cache_key(self.config.model, messages, params)
        if self.cache is not None:
            entry = await self._in_io_thread(self.cache.get, key)
            if entry is not None:
                self._count("cache_hits")
                return Completion(entry["text"], {"prompt_tokens": 0, "completion_tokens": 0},
                                  cached=True, finish_reason=entry.get("finish_reason"),
                                  tool_calls=entry.get("tool_calls"))
        if key in self._inflight:  # the same request is on its way: share its answer
            completion = await asyncio.shield(self._inflight[key])
            return Completion(completion.text, {"prompt_tokens": 0, "completion_tokens": 0},
                              cached=True, finish_reason=completion.finish_reason,
                              tool_calls=completion.tool_calls)
        future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            completion = await self._send_with_retries(messages, params)
            if self.cache is not None:
                entry = {"text": completion.text, "finish_reason": completion.finish_reason,
                         "usage": completion.usage, "model": self.config.model, "created": time.time()}
                if completion.tool_calls:
                    entry["tool_calls"] = completion.tool_calls
                await self._in_io_thread(self.cache.put, key, entry)
            future.set_result(completion)
            return completion
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: nobody else may be waiting
            raise
        finally:
            del self._inflight[key]

    async def ask(self, messages: list[dict], parse: Callable[[Completion], Any], *,
                  feedback: Callable[[Exception], str] | None = None,
                  max_reasks: int | None = None, **params: Any) -> Any:
        """The one re-ask loop: `parse(completion)` returns the value, raises `ValueError` to
        re-ask with the error fed back (at most `max_reasks` times, default the config's), or
        `RowError` to reject at once. After the last re-ask: `RowError` with the last reason."""
        max_reasks = self.config.max_reasks if max_reasks is None else max_reasks
        messages = list(messages)
        reason = ""
        for attempt in range(max_reasks + 1):
            completion = await self.chat(messages, **params)
            try:
                return parse(completion)
            except RowError:
                raise
            except ValueError as exc:
                reason = str(exc) if str(exc).startswith(("parse error", "validation error")) else f"parse error: {exc}"
                if attempt < max_reasks:
                    note = feedback(exc) if feedback else (
                        f"That answer could not be used: {exc}. Answer again, correcting this.")
                    messages = [*messages, completion.message(), {"role": "user", "content": note}]
        raise RowError(f"{self.scrub(reason)} (after {max_reasks} re-asks)")

    async def chat_json(self, messages: list[dict], validate: Callable[[Any], Any] | None = None,
                        *, max_reasks: int | None = None, **params: Any) -> Any:
        """The answer parsed as JSON and checked by `validate(obj)` (which may return a new
        object to use instead, or None to keep the parsed one, and raises ValueError to
        re-ask); re-asked through `ask` with the JSON or validation problem fed back."""

        def parse(completion: Completion) -> Any:
            try:
                obj = parse_json_answer(completion.text)
            except ValueError as exc:
                raise ValueError(f"parse error: {exc}") from None
            if validate is None:
                return obj
            try:
                checked = validate(obj)
            except RowError:
                raise
            except ValueError as exc:
                raise ValueError(f"validation error: {exc}") from None
            return obj if checked is None else checked

        def feedback(exc: Exception) -> str:
            text = str(exc)
            if text.startswith("parse error: "):
                return f"Your answer is not valid JSON ({text[13:]}). Reply again with only the corrected JSON."
            return (f"Your answer does not meet the requirements: {text.removeprefix('validation error: ')} "
                    "Reply again with only the corrected JSON.")

        return await self.ask(messages, parse, feedback=feedback, max_reasks=max_reasks, **params)

    # -- retries -----------------------------------------------------------------------------
    async def _send_with_retries(self, messages: list[dict], params: dict) -> Completion:
        pools = self._pools()
        assert self._semaphore is not None
        booked = estimate_tokens(messages) + int(params.get("max_tokens") or 0)
        if params.get("tools"):
            booked += len(json.dumps(params["tools"])) // 4
        last = ""
        for attempt in range(self.config.max_retries + 1):
            wait = self._pause_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if self.limiter is not None:
                await self._wait_for_slot(booked)
            async with self._semaphore:
                if self.on_send is not None:
                    await self.on_send()
                self._count("requests")
                self.in_flight += 1
                try:
                    # The raw body, parsed here: skips building pydantic models per answer
                    # (a third of the client's CPU per request); a malformed body is a
                    # ValueError and retried like any other bad answer.
                    pick = min(range(len(pools)), key=self._pool_load.__getitem__)
                    self._pool_load[pick] += 1
                    try:
                        raw = await pools[pick].chat.completions.with_raw_response.create(
                            model=self.config.model, messages=messages, **params
                        )
                    finally:
                        self._pool_load[pick] -= 1
                        self.in_flight -= 1
                    completion = completion_from_body(json.loads(raw.text))
                except Exception as exc:  # classified below; nothing escapes unclassified
                    error = exc
                    kind, status, retry_after = classify(exc)
                else:
                    self._last_success = time.monotonic()
                    self._ever_answered = True
                    completion.text = self.scrub(completion.text)
                    if completion.tool_calls:
                        completion.tool_calls = redact_obj(completion.tool_calls, self._api_key)
                    self._account(completion)
                    if self.limiter is not None:
                        used = completion.usage["prompt_tokens"] + completion.usage["completion_tokens"]
                        await self.limiter.done(used - booked)
                    return completion
            self._count_failure(kind)
            last = self.scrub(describe(kind, status, error))
            if kind == "fatal":
                raise FatalJobError(
                    f"{self.config.base_url} refused the credentials (HTTP {status}): check the "
                    f"API key in environment variable {self.config.api_key_env}"
                )
            if kind == "client":
                raise RowError(f"http error: {last}")
            if status == 429:
                self._count("throttled")
            if attempt == self.config.max_retries:
                break
            backoff = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** attempt)
            # Full jitter, and never sooner than the server's Retry-After.
            delay = max(retry_after or 0.0, random.uniform(0.5, 1.0) * backoff)
            if status == 429:
                self._pause_until = max(self._pause_until, time.monotonic() + delay)
                if self.limiter is not None:
                    await self.limiter.throttle(delay)
            self._count("retries")
            await asyncio.sleep(delay)
        self.check_endpoint(last)
        raise TransientError(f"http error: {last} (gave up after {self.config.max_retries + 1} attempts)")

    def check_endpoint(self, last_error: str) -> None:
        """The stop rule: no successful answer for `endpoint_down_after_s` (since this client
        started, when it never had one) stops the job instead of leaving every row pending."""
        down_for = time.monotonic() - self._last_success
        if down_for <= self.config.endpoint_down_after_s:
            return
        if not self._ever_answered:
            raise FatalJobError(
                f"{self.config.base_url} never answered ({down_for:.0f}s of failed requests; last "
                f"error: {last_error}); check llm.base_url and that the endpoint is up")
        raise FatalJobError(
            f"{self.config.base_url} is down: no successful answer for {down_for:.0f}s (last "
            f"error: {last_error}); the rows not done are pending: re-run the same command to resume")

    async def _wait_for_slot(self, booked: int) -> None:
        """Wait for the limiter's slot. A worker that wakes up much later than its slot (a
        starved CPU) books a new one instead of sending in a bunch with the other late ones."""
        for _ in range(3):
            delay = await self.limiter.reserve(booked)
            if delay <= 0:
                return
            due = time.monotonic() + delay
            await asyncio.sleep(delay)
            if time.monotonic() - due <= LATE_SLOT_S:
                return

    def _count(self, name: str, amount: float = 1) -> None:
        self.acct.add(name, amount)
        local = batch_accounting.get()
        if local is not None:
            local.add(name, amount)

    def _count_failure(self, kind: str) -> None:
        for acct in (self.acct, batch_accounting.get()):
            if acct is not None:
                acct.failures[kind] = acct.failures.get(kind, 0) + 1

    def _account(self, completion: Completion) -> None:
        prompt, done = completion.usage["prompt_tokens"], completion.usage["completion_tokens"]
        self._count("responses")
        self._count("prompt_tokens", prompt)
        self._count("completion_tokens", done)
        self._count("cost_usd", self.config.cost_usd(prompt, done))


def completion_from_body(body: dict) -> Completion:
    """A Completion from an OpenAI chat-completions response body (KeyError, IndexError,
    TypeError on a body of the wrong shape: classified as malformed and retried)."""
    choice = body["choices"][0]
    usage = body.get("usage") or {}
    message = choice.get("message") or {}
    tool_calls = message.get("tool_calls") or None
    if tool_calls is not None and not isinstance(tool_calls, list):
        raise TypeError("tool_calls is not a list")
    return Completion(
        text=message.get("content") or "",
        tool_calls=tool_calls,
        usage={
            "prompt_tokens": int(usage.get("prompt_tokens") or 0),
            "completion_tokens": int(usage.get("completion_tokens") or 0),
        },
        finish_reason=choice.get("finish_reason"),
    )


def classify(exc: BaseException) -> tuple[str, int | None, float | None]:
    """(kind, HTTP status, Retry-After seconds). kind: fatal | client | retry | connection."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status in FATAL_STATUS:
            return "fatal", status, None
        if status in RETRYABLE_STATUS or status >= 500:
            return "retry", status, _retry_after(exc.response)
        return "client", status, None
    if isinstance(exc, openai.APITimeoutError):
        return "retry", None, None
    if isinstance(exc, openai.APIConnectionError):
        return "connection", None, None
    if isinstance(exc, (ValueError, openai.APIResponseValidationError, IndexError, KeyError,
                        TypeError, AttributeError)):
        return "retry", None, None  # a malformed body (JSONDecodeError is a ValueError)
    raise exc


def describe(kind: str, status: int | None, exc: BaseException) -> str:
    import openai

    if status is not None:
        message = ""
        if isinstance(exc, openai.APIStatusError) and isinstance(exc.body, dict):
            message = str(exc.body.get("message") or exc.body.get("error") or "")
        return f"HTTP {status}{': ' + message[:200] if message else ''}"
    if isinstance(exc, openai.APITimeoutError):
        return "request timed out"
    if kind == "connection":
        return "connection error"
    return f"malformed response ({type(exc).__name__})"


def _retry_after(response) -> float | None:
    try:
        value = response.headers.get("retry-after-ms")
        if value is not None:
            return float(value) / 1000.0
        value = response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None  # HTTP-date form: fall back to our own backoff


def parse_json_answer(text: str) -> Any:
    """JSON from a completion: the whole text, or inside a ``` fence, or the outermost {...}."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0].strip()
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as first:
        start, end = stripped.find("{"), stripped.rfind("}")
        if 0 <= start < end:
            try:
                return json.loads(stripped[start : end + 1])
            except json.JSONDecodeError:
                pass
        raise ValueError(f"{first.msg} at char {first.pos}") from None
