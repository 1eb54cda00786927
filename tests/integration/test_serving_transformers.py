"""End to end: a tiny model fine-tuned by raypipe's recipe, served by the real `transformers serve`
on 127.0.0.1, answers an OpenAI `tools` request (through the real `openai` client) with
`tool_calls`, streaming and not.

A random tiny model emits garbage, so the test first overfits it on two function-calling samples
with the SFT recipe itself (in this process, no Ray: LoRA + DeepSpeed ZeRO-2 on the CPU, then the
merged export), in the JSON-call format `tools-dt-json`. The exported tokenizer carries the chat
template and the `response_template`; nothing else tells the server how to read calls back.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from raypipe.schema import Message, Sample, ToolCall

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

FORMAT = "tools-dt-json"
STEPS_PER_EPOCH, EPOCHS = 4, 30  # 2 samples x ratio 8 / batch 4; 120 optimizer steps


def call_samples() -> list[Sample]:
    """Two short conversations (short sequences train fast on a CPU), each calling a different
    function: one with a dotted name, one with nested and unicode arguments."""
    def spec(name, properties, required):
        return {"name": name, "description": name.replace("_", " "),
                "parameters": {"type": "object", "properties": properties, "required": required}}

    weather = spec("get_weather", {"city": {"type": "string"}, "days": {"type": "array", "items": {"type": "integer"}},
                                   "unit": {"type": "string", "enum": ["c", "f"]}}, ["city"])
    factorial = spec("math.factorial", {"number": {"type": "integer"}}, ["number"])
    return [
        Sample(functions=[weather, factorial], messages=[
            Message("user", "Weather in 台北 for days 1 and 2, in c?"),
            Message("assistant", None, tool_calls=[ToolCall("get_weather", {"city": "台北", "days": [1, 2], "unit": "c"})])]),
        Sample(functions=[weather, factorial], messages=[
            Message("user", "What is 5 factorial?"),
            Message("assistant", None, tool_calls=[ToolCall("math.factorial", {"number": 5})])]),
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    pytest.importorskip("fastapi", reason="transformers serve needs the serve extra: pip install 'raypipe[serve]'")
    pytest.importorskip("uvicorn", reason="transformers serve needs the serve extra: pip install 'raypipe[serve]'")
    from raypipe.train.config import DataSource, SFTConfig, TinyModelSettings
    from raypipe.train.launch import run_training
    from raypipe.train.sft import sft_loop

    root = tmp_path_factory.mktemp("serve")
    samples = call_samples()
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps(s.to_dict()) + "\n" for s in samples), encoding="utf-8")
    cfg = SFTConfig(
        model="tiny", tiny_model=TinyModelSettings(), format=FORMAT, out=str(root / "run"), name="serve-test",
        data=[DataSource(path=str(data), kind="samples", ratio=8)], num_workers=0,
        global_batch_size=4, micro_batch_size=4, epochs=EPOCHS, lr=1e-2, warmup_steps=3,
        checkpoint_every=1000, log_every=20, merge=True,
        pack=False,  # 2 samples x ratio 8 = 16 rows per epoch (packed they would fit one row)
    )
    summary = run_training(cfg, sft_loop)
    assert summary["steps"] == STEPS_PER_EPOCH * EPOCHS
    model = summary["merged"]

    port = _free_port()
    exe = shutil.which("transformers", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-m", "transformers.cli.transformers"]
    log = open(root / "server.log", "w")
    server = subprocess.Popen(
        [*command, "serve", model, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise AssertionError("transformers serve did not start:\n" + (root / "server.log").read_text()[-3000:])
                time.sleep(0.5)
        import openai

        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="not-needed", max_retries=0, timeout=120)
        yield client, model, samples, root / "server.log"
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server's own process group (start_new_session)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def request(sample):
    """The OpenAI request for the sample's last assistant turn: its messages before it and its tools."""
    from raypipe.templates.jinja import to_chat_messages

    messages, tools = to_chat_messages(sample)
    return messages[:-1], tools, [(c.name, c.arguments) for c in sample.messages[-1].tool_calls]


def test_tools_request_returns_openai_tool_calls(served):
    client, model, samples, log = served
    for sample in samples:
        messages, tools, expected = request(sample)
        response = client.chat.completions.create(model=model, messages=messages, tools=tools, max_tokens=96,
                                                  temperature=0)
        choice = response.choices[0]
        assert choice.finish_reason == "tool_calls", (choice, log.read_text()[-2000:])
        calls = choice.message.tool_calls
        assert [(c.type, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
            ("function", name, args) for name, args in expected]
        assert all(c.id for c in calls)
        assert not choice.message.content  # the Decision Token and call blocks are not content


def test_streamed_tools_request_returns_the_same_tool_calls(served):
    client, model, samples, _ = served
    messages, tools, expected = request(samples[0])
    stream = client.chat.completions.create(model=model, messages=messages, tools=tools, max_tokens=96,
                                            temperature=0, stream=True)
    calls: dict[int, dict] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                entry = calls.setdefault(delta.index, {"name": "", "arguments": ""})
                entry["name"] += delta.function.name or ""
                entry["arguments"] += delta.function.arguments or ""
    assert finish == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())] == expected
