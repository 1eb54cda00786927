"""A local OpenAI-compatible chat-completions server for tests and benchmarks.

    with MockLLMServer(responder=fn, latency_s=0.01, faults=FaultConfig(rate_5xx=0.1)) as srv:
        client = openai.AsyncOpenAI(base_url=srv.base_url, api_key="test")
        ...
        srv.stats.requests, srv.stats.by_key   # what the server saw

It listens on 127.0.0.1 only (a free port), answers `POST /v1/chat/completions` with a body
shaped like OpenAI's (including `usage`), and can misbehave on purpose: latency, 429 with
Retry-After, 5xx, answers slower than any client timeout, dropped connections, malformed JSON,
and its own requests/min and tokens/min limits. It counts requests per content key (a hash of
the request body) so tests can assert that nothing was paid for twice.

By default it runs in a background thread of the calling process. `process=True` runs it in
a child process (the responder must then be picklable: a module-level function), which keeps
the server's CPU use off the measured process in benchmarks; stats then come over HTTP.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any, Callable

# A responder gets the request body and returns the assistant's text, or a message dict
# {"content": str | None, "tool_calls": [{"name": ..., "arguments": dict | JSON text}, ...]}
# for a function-calling answer (ids and the OpenAI wire shape are filled in by the server).
Responder = Callable[[dict], Any]

STATS_PATH = "/_raypipe/stats"
TAG_HEADER = "X-Raypipe-Test-Tag"  # clients may tag their requests (LLMConfig.extra_headers)


class ResponderError(Exception):
    """Raised by a responder to answer with an HTTP error (e.g. 400 for one bad request)."""

    def __init__(self, status: int, message: str = "error"):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class FaultConfig:
    """Shares of requests that fail on purpose; drawn independently per request (seeded)."""

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_timeout: float = 0.0  # the server sleeps `timeout_sleep_s`, past the client's timeout
    rate_drop: float = 0.0  # the connection is closed without an answer
    rate_malformed: float = 0.0  # status 200 with a body that is not JSON
    retry_after_s: float | None = 0.05  # Retry-After header on 429s (None: no header)
    timeout_sleep_s: float = 30.0
    seed: int = 0
    fail_first: int = 0  # deterministic: the first N requests of every content key fail ...
    fail_first_with: str = "5xx"  # ... with "429" | "5xx" | "timeout" | "drop" | "malformed"
    # An outage: from `outage_after_s` after the first request, for `outage_s` seconds, every
    # connection is dropped without an answer (as an endpoint that is down).
    outage_after_s: float | None = None
    outage_s: float = 0.0


@dataclass
class ServerStats:
    requests: int = 0  # every chat-completions request received
    ok: int = 0  # answered 200 with a completion
    status: Counter = field(default_factory=Counter)  # status code (or "drop") -> count
    by_key: Counter = field(default_factory=Counter)  # content key -> requests received
    ok_by_key: Counter = field(default_factory=Counter)  # content key -> 200 answers
    first_request_t: float | None = None  # time.time() of the first request
    last_ok_t: float | None = None  # time.time() of the last 200 answer
    max_in_flight: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ok_times: list = field(default_factory=list)  # time.time() of each 200 answer (first 1M)
    # [time.time() of arrival, TAG_HEADER value or None, HTTP status] per request (first 1M):
    # tells apart the traffic of several clients (e.g. two jobs) in time
    arrivals: list = field(default_factory=list)

    def ok_rate(self) -> float:
        """200 answers per second between the first request and the last answer (n answers
        span n - 1 intervals)."""
        if self.ok < 2 or self.first_request_t is None or self.last_ok_t is None:
            return 0.0
        return (self.ok - 1) / max(self.last_ok_t - self.first_request_t, 1e-9)

    def steady_rate(self, trim: float = 0.1) -> float:
        """Answers per second over the central (1 - 2*trim) share of answers: the rate once
        started and before the tail, without start-up and drain."""
        times = sorted(self.ok_times)
        if len(times) < 10:
            return self.ok_rate()
        lo, hi = int(len(times) * trim), int(len(times) * (1 - trim)) - 1
        return (hi - lo) / max(times[hi] - times[lo], 1e-9)

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["status"] = {str(k): v for k, v in self.status.items()}
        d["by_key"], d["ok_by_key"] = dict(self.by_key), dict(self.ok_by_key)
        d["ok_times"] = list(self.ok_times)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "ServerStats":
        d = dict(d)
        status = Counter()
        for k, v in d.pop("status").items():
            status[int(k) if k.isdigit() else k] = v
        return cls(
            status=status,
            by_key=Counter(d.pop("by_key")),
            ok_by_key=Counter(d.pop("ok_by_key")),
            **d,
        )


def request_key(body: dict) -> str:
    """The content key the server counts by: the request body minus transport details."""
    content = {k: v for k, v in body.items() if k not in ("stream", "user")}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def count_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def answer_message(answer: Any, key: str) -> dict:
    """The OpenAI assistant message for a responder's answer (text or message dict)."""
    if isinstance(answer, str):
        return {"role": "assistant", "content": answer}
    calls = []
    for i, call in enumerate(answer.get("tool_calls") or []):
        arguments = call.get("arguments", {})
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        calls.append({"id": call.get("id") or f"call_{key[:8]}_{i}", "type": "function",
                      "function": {"name": call["name"], "arguments": arguments}})
    message: dict = {"role": "assistant", "content": answer.get("content")}
    if calls:
        message["tool_calls"] = calls
    return message


def echo_responder(body: dict) -> str:
    """Default responder: echoes the last user message."""
    users = [m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "user"]
    return f"echo: {users[-1] if users else ''}"


class _Bucket:
    """Token bucket the server enforces (per minute limits, `burst_s` seconds of capacity)."""

    def __init__(self, per_minute: float, burst_s: float):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self.level = self.capacity
        self.t = time.monotonic()

    def take(self, n: float) -> float:
        """Take `n` if available and return 0, else return the seconds until it would be."""
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.t) * self.rate)
        self.t = now
        need = min(n, self.capacity)
        if self.level >= need:
            self.level -= n
            return 0.0
        return (need - self.level) / self.rate


class _App:
    def __init__(self, responder, latency_s, faults, rpm, tpm, burst_s, api_key, model_name):
        self.responder = responder or echo_responder
        self.latency_s = latency_s
        self.faults = faults or FaultConfig()
        self.rng = random.Random(self.faults.seed)
        self.rpm = _Bucket(rpm, burst_s) if rpm else None
        self.tpm = _Bucket(tpm, burst_s) if tpm else None
        self.api_key = api_key
        self.model_name = model_name
        self.stats = ServerStats()
        self.in_flight = 0
        self.lock = threading.Lock()  # stats are read from other threads

    def build(self):
        from aiohttp import web

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get(STATS_PATH, self.get_stats)
        app.router.add_post("/_raypipe/reset", self.reset)
        return app

    async def models(self, request):
        from aiohttp import web

        return web.json_response({"object": "list", "data": [{"id": self.model_name, "object": "model"}]})

    async def get_stats(self, request):
        from aiohttp import web

        with self.lock:
            return web.json_response(self.stats.to_json())

    async def reset(self, request):
        from aiohttp import web

        with self.lock:
            self.stats = ServerStats()
        return web.json_response({"ok": True})

    def _error(self, status: int, message: str, headers: dict | None = None):
        from aiohttp import web

        with self.lock:
            self.stats.status[status] += 1
        body = {"error": {"message": message, "type": "mock_error", "code": status}}
        return web.json_response(body, status=status, headers=headers)

    async def chat(self, request):
        entry = [time.time(), request.headers.get(TAG_HEADER), None]
        with self.lock:
            if len(self.stats.arrivals) < 1_000_000:
                self.stats.arrivals.append(entry)
        response = await self._chat(request)
        entry[2] = response.status  # a dropped connection reads 500
        return response

    async def _chat(self, request):
        from aiohttp import web

        now = time.time()
        with self.lock:
            self.stats.requests += 1
            if self.stats.first_request_t is None:
                self.stats.first_request_t = now
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self._error(400, "request body is not JSON")
        key = request_key(body)
        with self.lock:
            self.stats.by_key[key] += 1
        if self.api_key is not None:
            if request.headers.get("Authorization") != f"Bearer {self.api_key}":
                return self._error(401, "invalid api key")

        prompt_text = "".join(str(m.get("content") or "") for m in body.get("messages", []))
        prompt_tokens = count_tokens(prompt_text)
        try:
            message = answer_message(self.responder(body), key)
        except ResponderError as exc:
            return self._error(exc.status, exc.message)
        text = message["content"] or ""
        completion_tokens = count_tokens(text + json.dumps(message.get("tool_calls") or ""))
        # Limits are checked on arrival, as real endpoints do (tokens: prompt + completion).
        if self.rpm is not None:
            wait = self.rpm.take(1)
            if wait:
                return self._error(429, "rate limit (requests/min)", {"Retry-After": f"{wait:.3f}"})
        if self.tpm is not None:
            wait = self.tpm.take(prompt_tokens + completion_tokens)
            if wait:
                return self._error(429, "rate limit (tokens/min)", {"Retry-After": f"{wait:.3f}"})

        f = self.faults
        draw = self.rng.random()
        edges = [
            ("429", f.rate_429), ("5xx", f.rate_5xx), ("timeout", f.rate_timeout),
            ("drop", f.rate_drop), ("malformed", f.rate_malformed),
        ]
        fault = None
        since_first = now - (self.stats.first_request_t or now)
        if f.outage_after_s is not None and f.outage_after_s <= since_first < f.outage_after_s + f.outage_s:
            fault, edges = "drop", []
        elif f.fail_first and self.stats.by_key[key] <= f.fail_first:
            fault, edges = f.fail_first_with, []
        for name, rate in edges:
            if draw < rate:
                fault = name
                break
            draw -= rate
        if fault == "429":
            headers = {"Retry-After": f"{f.retry_after_s:g}"} if f.retry_after_s is not None else None
            return self._error(429, "injected rate limit", headers)
        if fault == "5xx":
            status = 503 if f.fail_first else self.rng.choice([500, 502, 503])
            return self._error(status, "injected server error")

        self.in_flight += 1
        with self.lock:
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.in_flight)
        try:
            if fault == "timeout":
                await asyncio.sleep(f.timeout_sleep_s)
                return self._error(504, "injected timeout")
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            if fault == "drop":
                with self.lock:
                    self.stats.status["drop"] += 1
                request.transport.abort()
                return web.Response(status=500)
            if fault == "malformed":
                with self.lock:
                    self.stats.status["malformed"] += 1
                return web.Response(status=200, text='{"id": "chatcmpl-x", "choices": [', content_type="application/json")
            with self.lock:
                self.stats.ok += 1
                self.stats.ok_by_key[key] += 1
                self.stats.status[200] += 1
                self.stats.last_ok_t = time.time()
                if len(self.stats.ok_times) < 1_000_000:
                    self.stats.ok_times.append(self.stats.last_ok_t)
                self.stats.prompt_tokens += prompt_tokens
                self.stats.completion_tokens += completion_tokens
            return web.json_response(
                {
                    "id": f"chatcmpl-{key}",
                    "object": "chat.completion",
                    "created": int(now),
                    "model": body.get("model", self.model_name),
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                }
            )
        finally:
            self.in_flight -= 1


def _serve(app_state: _App, sock: socket.socket, ready: threading.Event, holder: dict) -> None:
    from aiohttp import web

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    runner = web.AppRunner(app_state.build(), access_log=None, handle_signals=False, shutdown_timeout=0.1)
    loop.run_until_complete(runner.setup())
    site = web.SockSite(runner, sock)
    loop.run_until_complete(site.start())
    stop = asyncio.Event()
    holder["loop"], holder["stop"] = loop, stop
    ready.set()
    loop.run_until_complete(stop.wait())
    loop.run_until_complete(runner.cleanup())
    pending = asyncio.all_tasks(loop)  # handlers still sleeping (injected timeouts)
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()


def _child_main(kwargs: dict, conn) -> None:
    """Entry point of the child process in `process=True` mode."""
    sock = _bind()
    conn.send(sock.getsockname()[1])
    app_state = _App(**kwargs)
    holder: dict = {}
    ready = threading.Event()
    t = threading.Thread(target=_serve, args=(app_state, sock, ready, holder), daemon=True)
    t.start()
    conn.recv()  # any message (or the parent closing the pipe) means stop
    holder["loop"].call_soon_threadsafe(holder["stop"].set)
    t.join(timeout=5)


def _bind() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


class MockLLMServer:
    def __init__(
        self,
        responder: Responder | None = None,
        latency_s: float = 0.0,
        faults: FaultConfig | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
        burst_s: float = 1.0,
        api_key: str | None = None,
        model_name: str = "mock-model",
        process: bool = False,
    ):
        self._kwargs = dict(
            responder=responder, latency_s=latency_s, faults=faults, rpm=rpm, tpm=tpm,
            burst_s=burst_s, api_key=api_key, model_name=model_name,
        )
        self.process = process
        self.port: int | None = None
        self._app: _App | None = None
        self._thread: threading.Thread | None = None
        self._holder: dict = {}
        self._proc = None
        self._conn = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "MockLLMServer":
        if self.process:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            parent, child = ctx.Pipe()
            self._proc = ctx.Process(target=_child_main, args=(self._kwargs, child), daemon=True)
            self._proc.start()
            self.port = parent.recv()
            self._conn = parent
            self._wait_listening()
            return self
        sock = _bind()
        self.port = sock.getsockname()[1]
        self._app = _App(**self._kwargs)
        ready = threading.Event()
        self._thread = threading.Thread(
            target=_serve, args=(self._app, sock, ready, self._holder), daemon=True,
            name="MockLLMServer",
        )
        self._thread.start()
        if not ready.wait(timeout=10):
            raise RuntimeError("MockLLMServer did not start")
        return self

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self._fetch_stats()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("MockLLMServer child process did not start")

    def _fetch_stats(self) -> ServerStats:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{STATS_PATH}", timeout=5) as r:
            return ServerStats.from_json(json.loads(r.read()))

    @property
    def stats(self) -> ServerStats:
        """A snapshot of what the server has seen so far."""
        if self.process:
            return self._fetch_stats()
        assert self._app is not None
        with self._app.lock:
            return ServerStats.from_json(self._app.stats.to_json())

    def reset_stats(self) -> None:
        if self.process:
            import urllib.request

            req = urllib.request.Request(f"http://127.0.0.1:{self.port}/_raypipe/reset", method="POST")
            urllib.request.urlopen(req, timeout=5).close()
            return
        assert self._app is not None
        with self._app.lock:
            self._app.stats = ServerStats()

    def stop(self) -> None:
        if self._proc is not None:
            try:
                self._conn.send("stop")
            except OSError:
                pass
            self._proc.join(timeout=5)
            if self._proc.is_alive():
                self._proc.kill()
            self._proc = None
        if self._thread is not None:
            loop, stop = self._holder["loop"], self._holder["stop"]
            loop.call_soon_threadsafe(stop.set)
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "MockLLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
