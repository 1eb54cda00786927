"""Items the zh-TW leaderboard's own checker scored (its published score files): same verdicts,
same error types, same first error message.

`reference_vectors.jsonl` keeps only the published raw output and verdict of each item; the item
itself (functions, possible answers) is read from the benchmark in ../shared at test time, so no
benchmark data is copied into the repo (the test skips when ../shared is absent)."""

import functools
import json
from pathlib import Path

import pytest

from raypipe.eval.bfcl_data import load_bfcl
from raypipe.eval.scoring import score_item

pytestmark = pytest.mark.unit

VECTORS = Path(__file__).resolve().parents[1] / "data" / "bfcl" / "reference_vectors.jsonl"
ROWS = [json.loads(line) for line in VECTORS.read_text(encoding="utf-8").splitlines() if line.strip()]


@functools.lru_cache(maxsize=1)
def _load_items(data_dir):
    return {it.id: it for it in load_bfcl(data_dir, "zhtw", sorted({r["category"] for r in ROWS}))}


@pytest.fixture
def benchmark_items(bfcl_data):  # `bfcl_data` skips with its reason when ../shared is absent
    return _load_items(bfcl_data)


@pytest.mark.parametrize("row", ROWS, ids=[r["source"].rsplit(" ", 2)[-2] + "-" + r["id"] for r in ROWS])
def test_same_verdict_as_the_reference_checker(row, benchmark_items):
    item = benchmark_items[row["id"]]
    assert item.category == row["category"]
    outcome = score_item(item, row["raw"], row["decoder"], row["underscore_to_dot"])
    if row["error_type"] is None:
        assert outcome["valid"]
        return
    assert not outcome["valid"]
    assert outcome["error_type"] == row["error_type"]
    if row["error"] is not None:  # None where the reference's message is a Python exception text
        assert outcome["errors"][0] == row["error"]


DECODES = [json.loads(line) for line in (VECTORS.parent / "reference_decodes.jsonl").read_text(encoding="utf-8").splitlines()
           if line.strip()]


@pytest.mark.parametrize("row", DECODES, ids=[r["source"].rsplit("/", 2)[-2] + "-" + r["source"].rsplit(" ", 1)[-1]
                                             for r in DECODES])
def test_same_decoding_as_the_reference(row):
    from raypipe.eval.decoders import decode

    assert decode(row["raw"], row["decoder"]) == row["decoded"]
