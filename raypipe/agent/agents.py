"""The agent under test: an OpenAI-compatible endpoint in function-calling mode, or a
raypipe-fine-tuned model rendered with raypipe's templates and parsed with raypipe's parser.

Both answer `await act(messages, tools)` with an assistant message
``{"role": "assistant", "content": str | None, "tool_calls": [{"id", "name", "arguments"}]}``.
Output that cannot be used (tool-call arguments that are not a JSON object, a completion the
template parser rejects) raises `AgentError`: model behaviour, scored as a failed episode.

Local models generate through a `BatchingGenerator`: every open episode of the process submits
its prompt and one generation pass serves all of them (see docs/agent.md for why).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable

from raypipe.agent.episode import AgentError

AGENT_INSTRUCTIONS = """You are a customer-service agent. Help the user while following the \
policy below exactly. Each turn, either write a message to the user or call tools; when you \
need information or want to act, use the tools."""


def system_prompt(policy: str) -> str:
    return f"<instructions>\n{AGENT_INSTRUCTIONS}\n</instructions>\n<policy>\n{policy}\n</policy>"


def to_wire(message: dict) -> dict:
    """A trajectory message in the OpenAI wire format (arguments as JSON text)."""
    if message["role"] == "tool":
        return {"role": "tool", "tool_call_id": message["tool_call_id"], "content": message["content"]}
    out = {"role": message["role"], "content": message.get("content")}
    if message.get("tool_calls"):
        out["tool_calls"] = [
            {"id": c["id"], "type": "function",
             "function": {"name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)}}
            for c in message["tool_calls"]
        ]
    return out


def from_wire_calls(tool_calls: list[dict] | None, step: int) -> list[dict]:
    calls = []
    for i, call in enumerate(tool_calls or []):
        fn = call.get("function") or {}
        raw = fn.get("arguments")
        try:
            arguments = json.loads(raw) if isinstance(raw, str) and raw.strip() else (raw or {})
        except json.JSONDecodeError as exc:
            raise AgentError(f"tool call {fn.get('name')!r}: arguments are not JSON ({exc.msg})") from None
        if not isinstance(arguments, dict):
            raise AgentError(f"tool call {fn.get('name')!r}: arguments must be a JSON object")
        calls.append({"id": call.get("id") or f"call_{step}_{i}", "name": str(fn.get("name")),
                      "arguments": arguments})
    return calls


class OpenAIAgent:
    """Any OpenAI-compatible endpoint: `tools=` sent, `tool_calls` read."""

    def __init__(self, client: Any, system: str, seed: int | None = None):
        self.client = client
        self.system = system
        self.seed = seed

    async def act(self, messages: list[dict], tools: list[dict]) -> dict:
        wire = [{"role": "system", "content": self.system}] + [to_wire(m) for m in messages]
        params: dict = {"tools": tools}
        if self.seed is not None:
            params["seed"] = self.seed
        completion = await self.client.chat(wire, **params)
        calls = from_wire_calls(completion.tool_calls, len(messages))
        message = {"role": "assistant", "content": completion.text or None}
        if calls:
            message["tool_calls"] = calls
        return message


class TemplateAgent:
    """A raypipe fine-tune: the conversation rendered in its format, the completion parsed."""

    def __init__(self, generator: "BatchingGenerator", fmt: Any, system: str):
        from raypipe.templates import get_format

        self.generator = generator
        self.fmt = get_format(fmt)
        self.system = system

    async def act(self, messages: list[dict], tools: list[dict]) -> dict:
        from raypipe.templates import ParseError, parse_completion, render_prompt

        prompt = render_prompt([{"role": "system", "content": self.system}, *messages], tools, self.fmt)
        text = await self.generator.generate(prompt)
        try:
            parsed = parse_completion(text, self.fmt)
        except ParseError as exc:
            raise AgentError(f"parse error: {exc}; completion: {text[:200]!r}") from None
        message: dict = {"role": "assistant", "content": parsed.content or None}
        if parsed.reasoning:
            message["reasoning"] = parsed.reasoning
        if parsed.calls:
            message["tool_calls"] = [{"id": f"call_{len(messages)}_{i}", "name": c.name,
                                      "arguments": dict(c.arguments)} for i, c in enumerate(parsed.calls)]
        return message


class BatchingGenerator:
    """One generation pass over the prompts of all open episodes of this process.

    Episodes submit prompts concurrently; a pass starts once every open episode is waiting
    (or `max_batch` prompts are queued, or the oldest has waited `window_s`: episodes busy
    with their user simulator do not hold the others back for long). The pass runs in a
    thread, so the event loop keeps serving the user simulators' HTTP calls meanwhile.
    """

    def __init__(self, generate_batch: Callable[[list[str]], list[str]], max_batch: int = 16,
                 window_s: float = 0.05):
        self.generate_batch = generate_batch
        self.max_batch = max_batch
        self.window_s = window_s
        self.open_episodes = 0
        self.passes = 0  # generation passes run (for tests and the log)
        self.prompts = 0
        self._queue: list[tuple[str, asyncio.Future, float]] = []
        self._worker: asyncio.Task | None = None

    async def generate(self, prompt: str) -> str:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((prompt, future, time.monotonic()))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._run())
        return await future

    async def _run(self) -> None:
        while self._queue:
            while (len(self._queue) < min(self.max_batch, max(self.open_episodes, 1))
                   and time.monotonic() - self._queue[0][2] < self.window_s):
                await asyncio.sleep(self.window_s / 10)
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch:]
            try:
                texts = await asyncio.get_running_loop().run_in_executor(
                    None, self.generate_batch, [p for p, _, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiting episode gets the failure
                for _, future, _ in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.passes += 1
            self.prompts += len(batch)
            for (_, future, _), text in zip(batch, texts):
                if not future.done():
                    future.set_result(text)


def transformers_generate_batch(gen: Any) -> Callable[[list[str]], list[str]]:
    """Batched generation with transformers (CPU), from a `GenerationConfig`."""
    from raypipe.infer.hf_stage import TransformersGenerateStage

    stage = TransformersGenerateStage(gen.model, adapter=gen.adapter, max_new_tokens=gen.max_new_tokens,
                                      stop=gen.stop, dtype=gen.dtype, temperature=gen.temperature,
                                      top_p=gen.top_p, seed=gen.seed)

    def generate(prompts: list[str]) -> list[str]:
        return [row["generated_text"] for row in stage.generate(prompts)]

    return generate


def vllm_generate_batch(gen: Any) -> Callable[[list[str]], list[str]]:
    """Batched generation with vLLM's offline engine (GPU), from a `GenerationConfig`."""
    from raypipe.errors import MissingExtraError
    from raypipe.infer.vllm_stage import check_adapter_vocab, engine_kwargs, sampling_params, vllm_available

    if not vllm_available():
        raise MissingExtraError("vllm", "vllm")
    check_adapter_vocab(gen)
    from vllm import LLM, SamplingParams

    llm = LLM(model=gen.model, **engine_kwargs(gen))
    params = SamplingParams(**sampling_params(gen))
    lora = None
    if gen.adapter:
        from vllm.lora.request import LoRARequest

        lora = LoRARequest("adapter", 1, gen.adapter)

    def generate(prompts: list[str]) -> list[str]:
        outputs = llm.generate(prompts, params, lora_request=lora, use_tqdm=False)
        return [o.outputs[0].text for o in outputs]

    return generate
