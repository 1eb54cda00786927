import json

import pytest

pytestmark = pytest.mark.integration


def test_bench_infer_prints_both_orders_side_by_side(bfcl_data, capsys):
    from raypipe.cli import main

    assert main(["bench", "infer", "--data", str(bfcl_data), "--items", "5", "--batch-size", "2",
                 "--max-new-tokens", "2"]) == 0
    out = capsys.readouterr().out
    figures = json.loads(out.strip().splitlines()[-1])
    arrival, ordered = figures["arrival order"], figures["sorted by length"]
    assert arrival["generated_tokens"] == ordered["generated_tokens"]  # same work, other batching
    assert ordered["padding_share"] <= arrival["padding_share"]
    assert "speed-up sorted / arrival" in out
