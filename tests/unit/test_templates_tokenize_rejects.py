"""The tokenize stage rejects with a reason what must not be trained: samples the strict
validator refuses (undeclared functions, wrong argument types), decision-only negatives under
a format without the Decision Token, and DPO pairs whose sides cannot be compared turn for
turn. Called without Ray (the stage is a plain class)."""

import json
from pathlib import Path

import pytest

from raypipe.schema import Message, Sample, ToolCall
from raypipe.templates import IGNORE_INDEX, add_special_tokens, render
from raypipe.templates.tokenize import PairMismatch, empty_target, tokenize_pair
from raypipe.templates.tokenize_stage import TokenizeStage
from raypipe.tiny import make_tiny_tokenizer

pytestmark = pytest.mark.unit

WEATHER = {"name": "get_weather", "parameters": {"type": "object", "required": ["city"],
                                                 "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}


def call_sample(name="get_weather", args=None, more_turns=False) -> Sample:
    messages = [Message("user", "Weather in Taipei?"),
                Message("assistant", tool_calls=[ToolCall(name, args if args is not None else {"city": "Taipei"})])]
    if more_turns:
        messages += [Message("tool", '{"temp": 30}', name=name), Message("assistant", "It is 30 degrees.")]
    return Sample(functions=[WEATHER], messages=messages, source="test")


def decision_only() -> Sample:
    return Sample(functions=[WEATHER], messages=[Message("user", "Book me a flight."), Message("assistant", "")],
                  meta={"target": "decision_only"}, source="NF")


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    texts = [render(s, f) for s in (call_sample(more_turns=True), decision_only()) for f in ("tools-dt", "tools")]
    tok = make_tiny_tokenizer(texts * 3, vocab_size=400)
    add_special_tokens(tok, "tools-dt")
    path = tmp_path_factory.mktemp("tok")
    tok.save_pretrained(str(path))
    return str(path)


def stage(tokenizer_dir, fmt="tools-dt", pairs=False):
    from raypipe.templates import get_format

    return TokenizeStage(tokenizer_dir, get_format(fmt).to_dict(), pairs=pairs)


def test_calls_to_undeclared_functions_are_rejected_with_the_validators_reason(tokenizer_dir):
    out = stage(tokenizer_dir).row(call_sample(name="book_flight").to_row())
    assert out["reason"] == "invalid sample: messages[1].tool_calls[0].name: undeclared function 'book_flight'"
    assert json.loads(out["raw"])["messages"][1]["tool_calls"][0]["name"] == "book_flight"


def test_wrong_argument_types_are_rejected_with_the_validators_reason(tokenizer_dir):
    out = stage(tokenizer_dir).row(call_sample(args={"city": "Taipei", "days": "three"}).to_row())
    assert out["reason"] == ("invalid sample: messages[1].tool_calls[0].arguments.days: "
                             "expected integer, got str 'three'")


def test_a_valid_sample_is_tokenized(tokenizer_dir):
    out = stage(tokenizer_dir).row(call_sample().to_row())
    assert out.get("reason") is None and out["num_trained"] > 0 and out["num_tokens"] == len(out["input_ids"])


def test_decision_only_negatives_are_rejected_without_a_decision_token(tokenizer_dir):
    out = stage(tokenizer_dir, "tools").row(decision_only().to_row())
    assert out["reason"].startswith("empty target: messages[1] is a decision-only negative")
    assert "format 'tools' has no Decision Token" in out["reason"]
    ok = stage(tokenizer_dir, "tools-dt").row(decision_only().to_row())  # trains <|answer|><|im_end|>
    assert ok.get("reason") is None and ok["num_trained"] == 2
    assert empty_target(decision_only(), "tools-dt") is None


def test_pairs_compare_the_same_turns(tokenizer_dir):
    """The positive trajectory goes on after the corrupted turn; its DPO labels stop where the
    negative one ends, while its SFT labels cover every assistant turn."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    chosen = call_sample(more_turns=True)
    rejected = Sample(functions=chosen.functions, messages=[
        chosen.messages[0], Message("assistant", tool_calls=[ToolCall("get_weather", {"city": "Tainan"})])])
    t = tokenize_pair(chosen, rejected, 1, tok, "tools-dt")
    trained = lambda labels: [x for x in labels if x != IGNORE_INDEX]  # noqa: E731
    first_turn = tokenize_pair(call_sample(), rejected, 1, tok, "tools-dt")["chosen_labels"]
    assert trained(t["chosen_dpo_labels"]) == trained(first_turn)  # the first assistant turn only
    assert len(trained(t["chosen_labels"])) > len(trained(t["chosen_dpo_labels"]))  # SFT: both turns
    assert trained(t["rejected_labels"]) and t["rejected_labels"] != t["chosen_dpo_labels"]


def test_pairs_that_differ_before_the_turn_are_rejected(tokenizer_dir):
    chosen = call_sample(more_turns=True)
    other_prompt = Sample(functions=chosen.functions, messages=[Message("user", "Weather in Tainan?"), chosen.messages[1]])
    with pytest.raises(PairMismatch, match=r"differ at messages\[0\], before turn 1"):
        tokenize_pair(chosen, other_prompt, 1, None, "tools-dt")
    row = {"id": "p1", "chosen": chosen.to_row(), "rejected": other_prompt.to_row(), "turn": 1, "source": "t"}
    out = stage(tokenizer_dir, pairs=True).pair(row)
    assert out["reason"].startswith("pair mismatch: chosen and rejected differ at messages[0]")


def test_a_pair_whose_negative_calls_an_undeclared_function_is_rejected(tokenizer_dir):
    chosen = call_sample(more_turns=True)
    bad = Sample(functions=chosen.functions, messages=[chosen.messages[0],
                                                      Message("assistant", tool_calls=[ToolCall("nope", {})])])
    row = {"id": "p2", "chosen": chosen.to_row(), "rejected": bad.to_row(), "turn": 1, "source": "t"}
    out = stage(tokenizer_dir, pairs=True).pair(row)
    assert out["reason"] == "rejected: invalid sample: messages[1].tool_calls[0].name: undeclared function 'nope'"


def test_tokenized_data_follows_the_commit_contract(tokenizer_dir, tmp_path, monkeypatch):
    """A re-run that fails leaves the last good output readable; a file no commit names is
    invisible; counts add up (in = out + rejected)."""
    import raypipe.templates.tokenize_stage as ts
    from raypipe.io.dataset import open_dataset

    inputs = tmp_path / "in.jsonl"
    samples = [call_sample(), call_sample(name="book_flight")]
    inputs.write_text("".join(json.dumps(s.to_dict()) + "\n" for s in samples), encoding="utf-8")
    out = tmp_path / "tok"
    first = ts.tokenize_local([str(inputs)], str(out), tokenizer_dir, "tools-dt")
    assert (first["rows_in"], first["rows_out"], first["rejected"]) == (2, 1, 1)
    good = ts.tokenized_files(str(out))
    assert len(good) == 1 and open_dataset(str(out)).complete

    (out / "data" / "orphan.parquet").write_bytes(Path(good[0]).read_bytes())  # an orphan
    assert ts.tokenized_files(str(out)) == good

    def crash(*args, **kwargs):
        raise RuntimeError("killed mid-run")

    monkeypatch.setattr(ts, "_finalize", crash)  # the re-run dies after committing its blocks
    with pytest.raises(RuntimeError):
        ts.tokenize_local([str(inputs)], str(out), tokenizer_dir, "tools-dt", max_tokens=4)
    assert ts.tokenized_files(str(out)) == good  # the last good output, still whole
    assert ts.read_summary(str(out))["rows_out"] == 1
