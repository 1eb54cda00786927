"""The graph CLI end to end: build, stats with the drawn PNG, the benchmark command."""

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "multiturn_tools.json"


def test_graph_cli_build_stats_png_and_bench(tmp_path, capsys):
    from raypipe.cli import main

    assert main(["graph", "build", "--tools", str(FIXTURE), "--out", str(tmp_path / "g"), "--min-score", "0.35"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["nodes"] == 10 and built["pool"]["duplicates"] == 1
    assert (tmp_path / "g" / "graph.png").stat().st_size > 1000
    assert main(["graph", "stats", str(tmp_path / "g"), "--png", str(tmp_path / "s.png"), "--nodes", "5"]) == 0
    out = capsys.readouterr().out
    stats = json.loads(out[: out.rindex("}") + 1])
    assert stats["nodes"] == 10 and stats["isolated_nodes"] >= 1
    assert sum(stats["degree_histogram"].values()) == 10
    assert (tmp_path / "s.png").exists() and "5 tools drawn" in out
    assert main(["graph", "stats", str(tmp_path)]) == 2  # not a graph: one-line error
    assert main(["bench", "toolgraph", "--sizes", "60,120", "--dense-max", "120", "--json"]) == 0
    bench = json.loads(capsys.readouterr().out)
    assert [r["tools"] for r in bench["sizes"]] == [60, 120]
    assert all(r["same_edges"] for r in bench["sizes"])
