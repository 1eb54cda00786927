import json
from pathlib import Path

import pytest

from raypipe.cli import build_parser, main
from raypipe.data import IF_JSONL, SAMPLES_JSONL, SOURCES_DIR
from raypipe.commands import all_commands

pytestmark = pytest.mark.unit

BROKEN = Path(__file__).resolve().parents[1] / "data" / "broken"
COMMANDS = sorted(c.path for c in all_commands())


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_help_works_for_every_registered_command(path, capsys):
    with pytest.raises(SystemExit) as info:
        main([*path, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: raypipe " + " ".join(path))


def test_top_level_help_lists_the_foundation_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in ("convert", "validate", "stats", "run"):
        assert name in out
    assert build_parser().prog == "raypipe"


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("raypipe: error: ")
    return err[0]


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["convert", "--from", "xlam", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.json: no such file or folder" in _error_line(capsys)
    assert main(["validate", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such file or folder" in _error_line(capsys)
    assert main(["run", "--check", str(tmp_path / "nope.yaml")]) == 2
    assert "job file not found" in _error_line(capsys)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    assert main(["stats", str(bad)]) == 2
    assert f"{bad}:1: not valid JSON" in _error_line(capsys)


def test_convert_exits_nonzero_only_with_strict(tmp_path, capsys):
    src = str(BROKEN / "xlam.json")
    assert main(["convert", "--from", "xlam", src, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert f"{src} (xlam): 4 in, 1 out, 3 rejected" in err
    assert "total: 4 in = 1 out + 3 rejected" in err
    assert f"rejected {src}:14: query: missing" in err
    assert main(["convert", "--from", "xlam", src, "--out", str(tmp_path / "b"), "--strict"]) == 1
    capsys.readouterr()
    good = str(SOURCES_DIR / "xlam.json")
    assert main(["convert", "--from", "xlam", good, "--out", str(tmp_path / "c"), "--strict",
                 "--output", "jsonl"]) == 0
    (shard,) = (tmp_path / "c" / "data").glob("*-00000-d00000.jsonl")
    assert len(shard.read_text().splitlines()) == 8


def test_validate_prints_every_problem_with_file_line_and_path(capsys):
    assert main(["validate", "--from", "openai", str(BROKEN / "openai_chat.jsonl")]) == 1
    out = capsys.readouterr().out.splitlines()
    path = BROKEN / "openai_chat.jsonl"
    assert out[0] == f"{path}:2: not valid JSON: Expecting value (column 15)"
    assert out[2].startswith(f"{path}:4 [") and out[2].endswith(
        "]: messages[1].tool_calls[0].name: undeclared function 'get_weather'")
    assert out[3].endswith("messages[1].tool_calls[0].arguments.unit: 'kelvin' is not one of ['celsius', 'fahrenheit']")
    assert len(out) == 4
    assert main(["validate", str(SAMPLES_JSONL), str(IF_JSONL)]) == 0
    assert "55 rows checked, 55 valid" in capsys.readouterr().err


def test_stats_counts_sources_languages_calls_and_turns(capsys, tmp_path):
    assert main(["stats", str(SAMPLES_JSONL), str(IF_JSONL), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["samples"] == 55 and report["duplicates"] == 0
    assert report["by_source"] == {"raypipe-samples": 40, "raypipe-if": 15}
    assert report["by_lang"] == {"en": 45, "zh-TW": 10}
    assert report["without_calls"] == 15 + 6
    assert report["calls_per_sample"]["histogram"]["0"] == 21  # JSON keys are strings
    assert report["functions_per_sample"]["histogram"]["0"] == 15
    assert report["user_turns_per_sample"]["max"] == 2
    assert "tokens_per_sample" not in report
    assert main(["stats", str(SAMPLES_JSONL)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("samples: 40 (0 duplicates by content id)\n") and "calls_per_sample: mean" in text
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(SAMPLES_JSONL.read_bytes())
    assert main(["stats", str(SAMPLES_JSONL), str(copy), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["duplicates"] == 40
