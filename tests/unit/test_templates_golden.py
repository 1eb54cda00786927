"""Golden files: renderer == checked-in text == Jinja twin under transformers' apply_chat_template.

After an intended format change: RAYPIPE_UPDATE_GOLDEN=1 pytest tests/unit/test_templates_golden.py
and review the diff of tests/golden/templates/.
"""

import json
import os
from pathlib import Path

import pytest

from raypipe.data import IF_JSONL, SAMPLES_JSONL
from raypipe.schema import Sample
from raypipe.templates import IGNORE_INDEX, PRESETS, add_special_tokens, render, render_prompt, tokenize_sample
from raypipe.templates.jinja import chat_template, save_tokenizer, to_chat_messages
from raypipe.tiny import make_tiny_tokenizer

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "templates"


def all_samples() -> list[Sample]:
    return [
        Sample.from_dict(json.loads(line))
        for path in (SAMPLES_JSONL, IF_JSONL, GOLDEN / "extra_samples.jsonl")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def joined(texts: dict[str, str]) -> str:
    return "".join(f"=== {sample_id} ===\n{text}" for sample_id, text in texts.items())


@pytest.fixture(scope="module")
def tokenizer():
    texts = [render(s, "tools-dt") for s in all_samples()[:10]]
    return make_tiny_tokenizer(texts, vocab_size=400)


@pytest.mark.parametrize("name", list(PRESETS))
def test_renderer_golden_and_jinja_twin_agree(name, tokenizer):
    samples = all_samples()
    expected = joined({s.id: render(s, name) for s in samples})
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("RAYPIPE_UPDATE_GOLDEN") == "1":
        path.write_text(expected, encoding="utf-8")
    assert path.exists(), f"missing {path}; run with RAYPIPE_UPDATE_GOLDEN=1"
    assert path.read_text(encoding="utf-8") == expected, f"{path} differs from the renderer"

    template = chat_template(name)
    twin = {}
    for s in samples:
        messages, tools = to_chat_messages(s)
        twin[s.id] = tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=False, chat_template=template
        )
    assert joined(twin) == expected


@pytest.mark.parametrize("name", ["tools-dt", "system-dt-cot", "tools-dt-json", "none"])
def test_generation_prompt_matches_render_prompt(name, tokenizer):
    template = chat_template(name)
    for s in all_samples():
        last = max(i for i, m in enumerate(s.messages) if m.role == "assistant")
        messages, tools = to_chat_messages(Sample(functions=s.functions, messages=s.messages[:last]))
        out = tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=True, chat_template=template
        )
        assert out == render_prompt(s.messages[:last], s.functions, name)


def test_openai_style_request_renders_like_the_sample(tokenizer):
    """What vLLM's server passes: wrapped tools, tool_calls with ids, tool_call_id on results."""
    messages = [
        {"role": "user", "content": "Weather in Taipei?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": {"city": "Taipei", "days": 2}}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "30C"},
    ]
    tools = [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}]
    out = tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=True, chat_template=chat_template("tools-dt")
    )
    assert out == (
        '<|im_start|>tools\n[{"name": "w", "parameters": {"type": "object"}}]<|im_end|>\n'
        "<|im_start|>user\nWeather in Taipei?<|im_end|>\n"
        '<|im_start|>assistant\n<|use_tool|>[w(city="Taipei", days=2)]<|im_end|>\n'
        "<|im_start|>tool\n30C<|im_end|>\n<|im_start|>assistant\n"
    )


def test_saved_tokenizer_carries_template_and_tokens(tmp_path, tokenizer):
    from transformers import AutoTokenizer

    tok = make_tiny_tokenizer(["hello world"] * 3, vocab_size=300)
    save_tokenizer(tok, "tools-dt", tmp_path)
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))
    sample = all_samples()[0]
    messages, tools = to_chat_messages(sample)
    assert loaded.apply_chat_template(messages, tools=tools, tokenize=False) == render(sample, "tools-dt")
    assert len(loaded("<|use_tool|>", add_special_tokens=False)["input_ids"]) == 1


def test_generation_tags_mark_the_trained_tokens(tokenizer):
    """transformers' return_assistant_tokens_mask agrees with raypipe's labels."""
    tok = make_tiny_tokenizer([render(s, "tools-dt") for s in all_samples()[:10]], vocab_size=400)
    add_special_tokens(tok, "tools-dt")
    template = chat_template("tools-dt")
    for sample in all_samples()[:8]:
        messages, tools = to_chat_messages(sample)
        out = tok.apply_chat_template(
            messages, tools=tools, chat_template=template, tokenize=True, return_dict=True,
            return_assistant_tokens_mask=True,
        )
        ours = tokenize_sample(sample, tok, "tools-dt")
        assert list(out["input_ids"]) == ours["input_ids"]
        assert list(out["assistant_masks"]) == [int(x != IGNORE_INDEX) for x in ours["labels"]]
