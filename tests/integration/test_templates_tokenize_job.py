"""`raypipe tokenize` on local Ray: Parquet columns, labels, rejects with reasons, counts, job step."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from raypipe.data import IF_JSONL, SAMPLES_JSONL
from raypipe.schema import Message, Sample
from raypipe.templates import IGNORE_INDEX, add_special_tokens, render, tokenize_sample
from raypipe.tiny import make_tiny_tokenizer

pytestmark = pytest.mark.integration


def read_lines(path: Path) -> list[Sample]:
    return [Sample.from_dict(json.loads(x)) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


@pytest.fixture(scope="module")
def base_tokenizer(tmp_path_factory):
    samples = read_lines(SAMPLES_JSONL)
    tok = make_tiny_tokenizer([render(s, "tools-dt") for s in samples], vocab_size=500)
    path = tmp_path_factory.mktemp("tok")
    tok.save_pretrained(str(path))
    return path


def test_tokenize_job_step_writes_data_rejects_summary(local_ray, base_tokenizer, tmp_path):
    from transformers import AutoTokenizer

    from raypipe.commands.tokenize import TokenizeConfig, _step

    no_assistant = Sample(functions=[], messages=[Message("user", "hello?")], source="bad")
    long_one = Sample(functions=[], messages=[Message("user", "x"), Message("assistant", "word " * 400)], source="long")
    extra = tmp_path / "extra.jsonl"
    extra.write_text("\n".join(json.dumps(s.to_dict()) for s in (no_assistant, long_one)) + "\n")
    out = tmp_path / "tok_out"
    config = TokenizeConfig(
        inputs=[str(SAMPLES_JSONL), str(IF_JSONL), str(extra)], out=str(out),
        tokenizer=str(base_tokenizer), format="tools-dt", max_tokens=300, num_workers=1,
    )
    summary = _step(config, None)

    n_in = len(read_lines(SAMPLES_JSONL)) + len(read_lines(IF_JSONL)) + 2
    assert summary["rows_in"] == n_in == summary["rows_out"] + summary["rejected"]
    assert summary["rejected_by_reason"]["nothing to train"] == 1
    assert summary["rejected_by_reason"]["too long"] >= 1
    assert len(summary["added_special_tokens"]) == 2  # <|answer|>, <|use_tool|>
    assert json.loads((out / "summary.json").read_text()) == summary

    data = pq.read_table(str(out / "data"))
    assert str(data.schema.field("input_ids").type) == "list<element: int32>"
    assert str(data.schema.field("num_tokens").type) == "int32"
    assert data.num_rows == summary["rows_out"]
    rejects = pq.read_table(str(out / "rejects")).to_pylist()
    bad = next(r for r in rejects if r["id"] == no_assistant.id)
    assert bad["stage"] == "tokenize" and bad["reason"] == "nothing to train: no assistant turn to train on"
    assert Sample.from_dict(json.loads(bad["raw"])).id == no_assistant.id

    # rows equal tokenize_sample with the saved tokenizer, which carries the chat template
    tok = AutoTokenizer.from_pretrained(str(out / "tokenizer"))
    assert tok.chat_template and add_special_tokens(tok, "tools-dt") == []
    by_id = {s.id: s for s in read_lines(SAMPLES_JSONL) + read_lines(IF_JSONL)}
    for row in data.to_pylist()[:10]:
        expected = tokenize_sample(by_id[row["id"]], tok, "tools-dt")
        assert row["input_ids"] == expected["input_ids"] and row["labels"] == expected["labels"]
        assert row["num_trained"] == sum(1 for x in row["labels"] if x != IGNORE_INDEX) > 0
        assert row["num_tokens"] == len(row["input_ids"]) <= 300
