"""Data preparation under Ray: samples and DPO pairs are tokenized by the tokenize stage on Ray
workers (the driver cannot tokenize here: its tokenizers are made to fail), written as
tokenized Parquet, checked by Ray tasks and indexed; a re-run reuses the tokenized folders."""

import json
from pathlib import Path

import pytest

from raypipe.testing.samples import first_call_samples
from raypipe.testing.samples import wrong_values_negative as corrupt

pytestmark = pytest.mark.integration


def fail_here(*args, **kwargs):
    raise AssertionError("tokenized on the driver")


@pytest.fixture
def tokenizer(tmp_path):
    from raypipe.templates import add_special_tokens, render
    from raypipe.tiny import make_tiny_tokenizer

    tok = make_tiny_tokenizer([render(s, "tools-dt") for s in first_call_samples(4)] * 3, vocab_size=400)
    add_special_tokens(tok, "tools-dt")
    tok.save_pretrained(str(tmp_path / "tok"))
    return tok, str(tmp_path / "tok")


def test_samples_and_pairs_are_tokenized_on_ray_workers(local_ray, tmp_path, tokenizer, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    import raypipe.templates.tokenize as tokenize_module
    from raypipe.schema import Message, Sample, dpo_pair_schema
    from raypipe.train.config import DataSource, MDPOConfig, SFTConfig
    from raypipe.train.data import prepare_data

    tok, tok_dir = tokenizer
    monkeypatch.setattr(tokenize_module, "tokenize_sample", fail_here)
    monkeypatch.setattr(tokenize_module, "tokenize_pair", fail_here)
    samples = first_call_samples(4)
    bad = Sample(functions=[], messages=[Message("user", "hi")], source="bad")  # nothing to train
    data = tmp_path / "samples.jsonl"
    data.write_text("".join(json.dumps(s.to_dict()) + "\n" for s in [*samples, bad]), encoding="utf-8")

    cfg = SFTConfig(model="m", out=str(tmp_path / "sft"), num_workers=2, global_batch_size=2, micro_batch_size=1,
                    data=[DataSource(path=str(data), kind="samples", ratio=2, label="FC")])
    prepared = prepare_data(cfg, tok, "tools-dt", tmp_path / "sft", use_ray=True, tokenizer_dir=tok_dir)
    assert prepared.counts == {"rows_read": 5, "rows_rejected": 1, "rows_per_epoch": 8}
    assert sorted(set(r["id"] for r in prepared.rows)) == sorted(s.id for s in samples)
    folder = tmp_path / "sft" / "tokenized" / "source0"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["rows_out"] == 4 and summary["rejected_by_reason"] == {"nothing to train": 1}
    assert all(f.startswith(str(folder / "data")) and f.endswith(".parquet") for f in prepared.files)

    again = prepare_data(cfg, tok, "tools-dt", tmp_path / "sft", use_ray=True, tokenizer_dir=tok_dir)
    assert again.rows == prepared.rows and json.loads((folder / "summary.json").read_text()) == summary

    rows = [{"id": f"p{i}", "chosen": s.to_row(), "rejected": corrupt(s).to_row(), "turn": len(s.messages) - 1,
             "corruption": "wrong_argument_values", "source": "MAGNET", "meta": "{}"} for i, s in enumerate(samples)]
    pq.write_table(pa.Table.from_pylist(rows, schema=dpo_pair_schema()), tmp_path / "pairs.parquet")
    mdpo = MDPOConfig(model="m", out=str(tmp_path / "mdpo"), num_workers=2, global_batch_size=2,
                      micro_batch_size=1, data=[DataSource(path=str(tmp_path / "pairs.parquet"), kind="pairs")])
    pairs = prepare_data(mdpo, tok, "tools-dt", tmp_path / "mdpo", pairs=True, use_ray=True, tokenizer_dir=tok_dir)
    assert pairs.counts["rows_per_epoch"] == 4 and pairs.sources == ["MAGNET"]
    table = pq.read_table(Path(pairs.files[0]))
    assert {"chosen_input_ids", "chosen_labels", "chosen_dpo_labels", "rejected_input_ids",
            "rejected_labels"} <= set(table.column_names)
