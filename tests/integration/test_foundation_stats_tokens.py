"""Token counts in `raypipe stats` and the stats job step, with a tiny tokenizer built here."""

import json

import pytest

from raypipe.data import IF_JSONL, SAMPLES_JSONL
from raypipe.io import iter_samples

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from raypipe.tiny import make_tiny_tokenizer

    texts = SAMPLES_JSONL.read_text(encoding="utf-8").splitlines()
    path = tmp_path_factory.mktemp("tok")
    make_tiny_tokenizer(texts, vocab_size=400).save_pretrained(str(path))
    return str(path)


def _expected_tokens(tokenizer_dir, samples):
    from transformers import AutoTokenizer

    from raypipe.templates import add_special_tokens, get_format, render

    fmt = get_format("tools-dt")
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    add_special_tokens(tok, fmt)
    return [len(tok(render(s, fmt), add_special_tokens=False)["input_ids"]) for s in samples]


def test_stats_counts_tokens_of_rendered_samples(tokenizer_dir, capsys):
    from raypipe.cli import main
    from raypipe.commands.stats import RowStatsStage
    from raypipe.schema import samples_to_table

    samples = list(iter_samples([str(SAMPLES_JSONL), str(IF_JSONL)]))
    expected = _expected_tokens(tokenizer_dir, samples)
    assert main(["stats", str(SAMPLES_JSONL), str(IF_JSONL), "--tokenizer", tokenizer_dir, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["tokens_per_sample"]
    assert report["total"] == sum(expected) and report["max"] == max(expected) and report["min"] == min(expected)

    # the stage the job step runs as Ray actors, called as a plain class on one batch
    stage = RowStatsStage(tokenizer_dir, "tools-dt")
    rows = stage(samples_to_table(samples[-15:])).to_pylist()
    assert [r["tokens"] for r in rows] == expected[-15:]
    assert [r["functions"] for r in rows] == [0] * 15
