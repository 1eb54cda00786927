"""`raypipe eval agent replay` on the shipped retail data: stable output that equals, byte for
byte, what tau2-bench's own code (commit a2c02472, run outside this repo) produces."""

import hashlib
import json
from pathlib import Path

import pytest

from raypipe.cli import main

RETAIL = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks" / "tau2-retail"
# sha256 of the replay file written by the benchmark's own environment on the same data
BENCHMARK_REPLAY_SHA256 = "9475cd59edf5d891fb8e10549528ad1f96536c1cd0b72fbe5a84aac231b05ec1"


@pytest.fixture
def retail():
    if not RETAIL.exists():
        pytest.skip(f"tau2-bench retail data not found at {RETAIL} (shared/ is absent)")
    return RETAIL


def test_replay_matches_the_benchmark_and_is_stable(retail, tmp_path, capsys):
    outs = []
    for name in ("a.jsonl", "b.jsonl"):
        assert main(["eval", "agent", "replay", "--domain", str(retail), "--out", str(tmp_path / name)]) == 0
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]
    assert hashlib.sha256(outs[0]).hexdigest() == BENCHMARK_REPLAY_SHA256
    rows = [json.loads(line) for line in outs[0].decode().splitlines()]
    assert len(rows) == 114 and set(rows[0]) == {"task_id", "final_db_sha256", "responses"}
    assert rows[0]["final_db_sha256"] == "a1d26dbec68853754a65a4212e202ff86f5ba28470c8cc99100fcdedcbc9a142"
    failing = [(r["task_id"], x["content"]) for r in rows for x in r["responses"] if x["error"]]
    assert len(failing) == 18
    assert ("105", "Error: Insufficient gift card balance to pay for the price difference") in failing
    assert '"tool_calls": 550, "error_answers": 18' in capsys.readouterr().out


def test_replay_of_a_split_and_clear_errors(retail, tmp_path, capsys):
    out = tmp_path / "test.jsonl"
    assert main(["eval", "agent", "replay", "--domain", str(retail), "--split", "test", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 40
    assert main(["eval", "agent", "replay", "--domain", str(retail), "--split", "nope", "--out", str(out)]) == 2
    assert "no split 'nope'" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("tasks.json", "policy.md", "tools.json"):
        (bad / name).write_bytes((retail / name).read_bytes())
    (bad / "db.json").write_text('{"products": {}, "users": {}, "orders": {"#W1": {"order_id": "#W1"}}}')
    assert main(["eval", "agent", "replay", "--domain", str(bad), "--out", str(out)]) == 2
    assert "db.json: orders['#W1'].user_id: missing" in capsys.readouterr().err
