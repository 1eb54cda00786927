import subprocess
import sys

import pytest

from raypipe.cli import main
from raypipe.commands import all_steps

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "argv, message",
    [
        (["synth", "mix", "--source", "IF", "--out", "o"], "--source 'IF': expected NAME=VALUE"),
        (["synth", "mix", "--source", "IF=a.jsonl", "--count", "FC=3", "--out", "o"], "no --source named 'FC'"),
        (["synth", "mix", "--source", "IF=a.jsonl", "--count", "IF=many", "--out", "o"], "not a number"),
        (["synth", "mix", "--source", "IF=a.jsonl", "--count", "IF=3", "--share", "IF=0.1", "--out", "o"],
         "give one of count, fraction, share"),
        (["synth", "translate", "in.jsonl", "--out", "o", "--lang", "vi"], "unknown target language 'vi'"),
        (["synth", "negatives", "in.jsonl", "--out", "o", "--fraction", "0"], "fraction must be in (0, 1]"),
        (["synth", "reasoning", "in.jsonl", "--out", "o", "--concurrency", "0"], "concurrency must be >= 1"),
    ],
)
def test_bad_arguments_fail_with_one_clear_line_before_anything_starts(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("raypipe: error:") and message in err


def test_steps_registered():
    steps = all_steps()
    for kind in ("synth_reasoning", "synth_translate", "synth_negatives", "synth_mix"):
        assert kind in steps


def test_command_module_is_cheap_to_import():
    code = ("import sys, raypipe.commands.synth_data; "
            "bad = [m for m in ('ray', 'openai', 'torch', 'pyarrow', 'numpy') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
