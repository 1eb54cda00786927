"""`raypipe render` and `raypipe bench packing` run in-process (no Ray)."""

import json

import pytest

from raypipe.cli import main
from raypipe.data import SAMPLES_JSONL

pytestmark = pytest.mark.unit


def test_render_plain_marks_exactly_the_trained_spans(capsys):
    assert main(["render", "--format", "tools-dt", "--limit", "2", "--plain", str(SAMPLES_JSONL)]) == 0
    out = capsys.readouterr().out
    assert out.count("### ") == 2
    assert "[[<|use_tool|>[" in out and "<|im_end|>]]" in out
    for marked in out.split("[[")[1:]:
        span = marked.split("]]\n")[0]
        assert "<|im_start|>" not in span  # headers, user and tool turns are never marked


def test_render_train_on_last_marks_one_span_per_sample(capsys):
    main(["render", "--limit", "3", "--plain", "--train-on", "last", str(SAMPLES_JSONL)])
    out = capsys.readouterr().out
    assert out.count("[[") == 3


def test_render_colours_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    main(["render", "--limit", "1", str(SAMPLES_JSONL)])
    out = capsys.readouterr().out
    assert "\033[42;30m<|use_tool|>" in out and "[[" not in out


def test_render_prints_the_chat_template(capsys):
    main(["render", "--format", "system-dt", "--chat-template"])
    assert "{% generation %}" in capsys.readouterr().out.replace("{%- generation -%}", "{% generation %}")


def test_render_unknown_format_is_one_clear_error(capsys):
    assert main(["render", "--format", "nope", str(SAMPLES_JSONL)]) == 2
    assert "unknown format 'nope'" in capsys.readouterr().err


def test_bench_packing_reaches_95_percent_at_2048(capsys):
    assert main(["bench", "packing", "--json", "--seq-len", "2048"]) == 0
    report = json.loads(capsys.readouterr().out)
    fractions = report["non_pad_fraction"]
    assert fractions["packed"] >= 0.95
    assert fractions["padded"] < fractions["packed"]
    assert report["packed_over_padded"] == pytest.approx(fractions["packed"] / fractions["padded"], rel=1e-2)
    assert report["samples"] == 55 and report["rejected"] == 0


def test_render_sample_the_format_cannot_write_names_the_sample(tmp_path, capsys):
    from raypipe.schema import Message, Sample, ToolCall

    sample = Sample(functions=[], messages=[Message("user", "x"), Message("assistant", tool_calls=[ToolCall("get-weather", {})])])
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps(sample.to_dict()) + "\n")
    assert main(["render", "--format", "tools-dt", str(path)]) == 2
    err = capsys.readouterr().err
    assert sample.id in err and "get-weather" in err
    assert main(["render", "--format", "tools-dt-json", "--plain", str(path)]) == 0  # JSON style can
