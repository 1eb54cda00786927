"""Items the zh-TW leaderboard's own checker scored (its published score files): same verdicts,
same error types, same first error message."""

import json
from pathlib import Path

import pytest

from raypipe.eval.bfcl_data import BfclItem
from raypipe.eval.scoring import score_item

pytestmark = pytest.mark.unit

VECTORS = Path(__file__).resolve().parents[1] / "data" / "bfcl" / "reference_vectors.jsonl"
ROWS = [json.loads(line) for line in VECTORS.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("row", ROWS, ids=[r["source"].rsplit(" ", 2)[-2] + "-" + r["category"] for r in ROWS])
def test_same_verdict_as_the_reference_checker(row):
    functions = row["function"] if isinstance(row["function"], list) else [row["function"]]
    truth = row["possible_answer"]
    item = BfclItem(
        id="x", category=row["category"], question=[], functions=functions,
        ground_truth=None if truth is None else [{k: v} for k, v in truth.items()],
    )
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
