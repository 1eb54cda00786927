import json
from pathlib import Path

import pytest

from raypipe.errors import RaypipeError
from raypipe.schema import Message, Sample, ToolCall
from raypipe.templates import (
    IGNORE_INDEX,
    PRESETS,
    NothingToTrain,
    TokenizationDrift,
    add_special_tokens,
    get_format,
    render,
    render_spans,
    special_tokens,
    tokenize_sample,
)
from raypipe.tiny import make_tiny_tokenizer
from raypipe.data import IF_JSONL, SAMPLES_JSONL

EXTRA = Path(__file__).resolve().parents[1] / "golden" / "templates" / "extra_samples.jsonl"

pytestmark = pytest.mark.unit

ALL_FORMAT_TOKENS = sorted({t for name in PRESETS for t in special_tokens(get_format(name))})


def all_samples() -> list[Sample]:
    return [
        Sample.from_dict(json.loads(line))
        for path in (SAMPLES_JSONL, IF_JSONL, EXTRA)
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def weather_sample() -> Sample:
    return Sample(
        functions=[{"name": "get_weather", "parameters": {"type": "object", "properties": {}}}],
        messages=[
            Message("system", "Be brief."),
            Message("user", "Weather in Taipei?"),
            Message("assistant", tool_calls=[ToolCall("get_weather", {"city": "Taipei"})]),
            Message("tool", '{"temp": 30}', name="get_weather"),
            Message("assistant", "30 degrees."),
        ],
    )


@pytest.fixture(scope="module")
def tokenizer():
    """A real byte-level BPE tokenizer trained here on renders of the sample data."""
    texts = [render(s, name) for s in all_samples() for name in PRESETS]
    tok = make_tiny_tokenizer(texts, vocab_size=600)
    for name in PRESETS:
        add_special_tokens(tok, name)
    return tok


def trained_runs(ids: list[int], labels: list[int], tok) -> list[str]:
    """Decoded text of each maximal run of trained tokens."""
    runs, current = [], []
    for i, label in zip(ids, labels):
        if label == IGNORE_INDEX:
            if current:
                runs.append(current)
            current = []
        else:
            assert label == i
            current.append(i)
    if current:
        runs.append(current)
    return [tok.decode(r, skip_special_tokens=False) for r in runs]


def test_add_special_tokens_adds_single_special_tokens_once():
    tok = make_tiny_tokenizer(["hello world [f(a=1)]"] * 3, vocab_size=300)
    added = add_special_tokens(tok, "tools-dt-cot")
    assert len(added) == 4  # im_start / im_end exist already
    for token in special_tokens(get_format("tools-dt-cot")):
        assert len(tok(token, add_special_tokens=False)["input_ids"]) == 1
    # registered as special: skip_special_tokens=True (vLLM's default) drops them
    assert "<|use_tool|>" in tok.all_special_tokens
    ids = tok("<|use_tool|>[f()]<think>r</think>", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == "[f()]r"
    assert tok("x<|use_tool|>[", add_special_tokens=False)["input_ids"][1] == tok.convert_tokens_to_ids("<|use_tool|>")
    assert add_special_tokens(tok, "tools-dt-cot") == []


def test_missing_special_tokens_are_reported():
    tok = make_tiny_tokenizer(["hello world"] * 3, vocab_size=300)
    with pytest.raises(RaypipeError, match="<\\|answer\\|>.*add_special_tokens"):
        tokenize_sample(weather_sample(), tok, "tools-dt")


@pytest.mark.parametrize("name", list(PRESETS))
def test_masks_over_the_sample_data(tokenizer, name):
    fmt = get_format(name)
    for sample in all_samples():
        out = tokenize_sample(sample, tokenizer, fmt)  # asserts per-turn == full tokens
        ids, labels = out["input_ids"], out["labels"]
        assert len(ids) == len(labels)
        assert tokenizer.decode(ids, skip_special_tokens=False) == render(sample, fmt)
        spans = render_spans(sample.messages, sample.functions, fmt)
        # trained tokens are exactly the assistant bodies with their <|im_end|>, nothing else
        assert trained_runs(ids, labels, tokenizer) == [s.text for s in spans if s.trained]


def test_decision_token_and_im_end_trained_tool_results_not(tokenizer):
    sample = weather_sample()
    out = tokenize_sample(sample, tokenizer, "tools-dt")
    ids, labels = out["input_ids"], out["labels"]
    tid = tokenizer.convert_tokens_to_ids
    for token in ("<|use_tool|>", "<|answer|>"):
        positions = [i for i, x in enumerate(ids) if x == tid(token)]
        assert positions and all(labels[i] == ids[i] for i in positions)
    im_end = [i for i, x in enumerate(ids) if x == tid("<|im_end|>")]
    trained_ends = [i for i in im_end if labels[i] != IGNORE_INDEX]
    assert len(trained_ends) == 2 and len(im_end) == 6  # system, tools, user, tool untrained
    # the tool turn: from its <|im_start|> to its <|im_end|>, nothing trained
    tool_start = next(i for i, x in enumerate(ids) if x == tid("<|im_start|>") and tokenizer.decode(ids[i + 1 : i + 2]) == "tool")
    tool_end = next(i for i in im_end if i > tool_start)
    assert all(label == IGNORE_INDEX for label in labels[tool_start : tool_end + 2])
    assert labels[0] == IGNORE_INDEX and labels[-1] == IGNORE_INDEX  # trailing newline


def test_train_on_last_trains_only_the_last_assistant_turn(tokenizer):
    out = tokenize_sample(weather_sample(), tokenizer, "tools-dt", train_on="last")
    assert trained_runs(out["input_ids"], out["labels"], tokenizer) == ["<|answer|>30 degrees.<|im_end|>"]
    assert out["input_ids"] == tokenize_sample(weather_sample(), tokenizer, "tools-dt")["input_ids"]


def test_nothing_to_train_is_rejected_with_a_reason(tokenizer):
    sample = Sample(functions=[], messages=[Message("user", "Hi")])
    with pytest.raises(NothingToTrain) as err:
        tokenize_sample(sample, tokenizer, "tools-dt")
    assert err.value.reason == "no assistant turn to train on"


def test_empty_assistant_turn_still_trains_im_end(tokenizer):
    sample = Sample(functions=[], messages=[Message("user", "Hi"), Message("assistant", "")])
    out = tokenize_sample(sample, tokenizer, "tools")
    assert trained_runs(out["input_ids"], out["labels"], tokenizer) == ["<|im_end|>"]


class PrefixingTokenizer:
    """Adds a start token to every call, as sentencepiece tokenizers do: spans would drift."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, texts, add_special_tokens=False):
        batch = self.inner(texts, add_special_tokens=False)["input_ids"]
        return {"input_ids": [[0, *ids] for ids in batch]}


def test_boundary_drift_is_detected_not_mis_masked(tokenizer):
    with pytest.raises(TokenizationDrift, match="differ from the full render"):
        tokenize_sample(weather_sample(), PrefixingTokenizer(tokenizer), "tools-dt", check=False)


def test_bad_train_on_value(tokenizer):
    with pytest.raises(RaypipeError, match="train_on"):
        tokenize_sample(weather_sample(), tokenizer, "tools-dt", train_on="first")


def test_tool_calls_with_unicode_tokenize_cleanly(tokenizer):
    sample = Sample(
        functions=[],
        messages=[
            Message("user", "台北天氣？"),
            Message("assistant", tool_calls=[ToolCall("w", {"city": "台北 🌧", "n": -1.5e-3})]),
        ],
    )
    out = tokenize_sample(sample, tokenizer, "tools-dt")
    assert trained_runs(out["input_ids"], out["labels"], tokenizer) == [
        '<|use_tool|>[w(city="台北 🌧", n=-0.0015)]<|im_end|>'
    ]


LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def test_no_boundary_drift_with_a_llama3_style_pretokenizer():
    """The Llama-3/Qwen2 split regex merges newlines with punctuation; turn borders still hold."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [render(s, name) for s in all_samples() for name in ("tools", "system-dt")]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok)
    for name in ("tools", "system-dt", "tools-dt-json"):
        add_special_tokens(fast, name)
        for sample in all_samples():
            out = tokenize_sample(sample, fast, name)  # raises TokenizationDrift on a mismatch
            assert fast.decode(out["input_ids"]) == render(sample, name)
