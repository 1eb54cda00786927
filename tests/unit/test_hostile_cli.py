"""The one error contract at the CLI (issue 14 item 5): a user error is `raypipe: error:` lines
and exit 2, never a traceback; RAYPIPE_DEBUG shows the traceback only when it is true."""

from __future__ import annotations

import io
import os

import pytest

from raypipe.cli import main
from raypipe.contract import user_error_lines
from raypipe.console import heartbeat
from raypipe.data import BFCL_MINI_DIR, SAMPLES_JSONL
from raypipe.errors import FatalJobError, RaypipeError

pytestmark = pytest.mark.unit


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("raypipe: error: "), err
    return err[0][len("raypipe: error: "):]


@pytest.mark.parametrize("value", ["", "0", "false", "no", "off"])
def test_raypipe_debug_false_values_keep_the_one_line(monkeypatch, capsys, tmp_path, value):
    monkeypatch.setenv("RAYPIPE_DEBUG", value)
    assert main(["stats", str(tmp_path / "nope.jsonl")]) == 2
    assert _one_error(capsys) == f"{tmp_path / 'nope.jsonl'}: no such file or folder"


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_raypipe_debug_true_values_show_the_traceback(monkeypatch, tmp_path, value):
    monkeypatch.setenv("RAYPIPE_DEBUG", value)
    with pytest.raises(RaypipeError, match="no such file or folder"):
        main(["stats", str(tmp_path / "nope.jsonl")])


def test_unusable_output_paths_are_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    convert = ["convert", "--from", "canonical", str(SAMPLES_JSONL), "--out"]
    assert main([*convert, str(tmp_path / "afile")]) == 2
    assert _one_error(capsys) == f"{tmp_path / 'afile'}: is a file; the output must be a folder"
    assert main([*convert, str(tmp_path / "afile" / "sub")]) == 2
    assert _one_error(capsys).endswith(f"cannot be created: {tmp_path / 'afile'} is a file")
    if os.geteuid() == 0:  # root writes through permission bits; a kernel folder refuses it
        assert main([*convert, "/sys/kernel/raypipe-out"]) == 2
        assert _one_error(capsys).startswith("/sys/kernel/raypipe-out: not writable")
    else:
        (tmp_path / "ro").mkdir(mode=0o555)
        assert main([*convert, str(tmp_path / "ro" / "out")]) == 2
        assert "not writable" in _one_error(capsys)


def test_score_out_a_directory_is_one_line(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    (results / "gorilla_openfunctions_v1_test_simple_result.json").write_text(
        '{"id": "simple_0", "result": "[]"}\n')
    assert main(["score", "bfcl", "--data", str(BFCL_MINI_DIR), "--lang", "en", "--results", str(results),
                 "--decoder", "pythonic", "--out", str(tmp_path), "--subset"]) == 2
    assert str(tmp_path) in _one_error(capsys)


def test_shard_rows_zero_is_one_line(tmp_path, capsys):
    assert main(["convert", "--from", "canonical", str(SAMPLES_JSONL), "--out", str(tmp_path / "o"),
                 "--shard-rows", "0"]) == 2
    assert _one_error(capsys) == "convert.shard_rows: must be >= 1, got 0"


@pytest.mark.parametrize("args, message", [
    (["convert", "--from", "csv", "x"], "argument --from: invalid choice: 'csv'"),
    (["convert", "--from", "xlam", "x", "--out", "o", "--shard-rows", "many"],
     "argument --shard-rows: invalid int value: 'many'"),
])
def test_argparse_errors_are_one_line_with_exit_2(capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    assert message in _one_error(capsys)


def test_user_errors_are_found_inside_wrapping_exceptions():
    def raised(outer, inner):
        try:
            try:
                raise inner
            except Exception as exc:
                raise outer from exc
        except Exception as exc:
            return exc

    assert user_error_lines(raised(RuntimeError("wrapper"), FatalJobError("key X is not set"))) == [
        "key X is not set"]
    assert user_error_lines(RuntimeError("a bug")) is None
    multi = RaypipeError("line one\nline two")
    assert user_error_lines(multi) == ["line one | line two"]
    disk = OSError(28, "No space left on device", "/data/out")
    assert user_error_lines(disk) == ["/data/out: No space left on device"]


def test_a_long_step_is_never_silent():
    stream = io.StringIO()
    with heartbeat("step 0:convert", stream=stream, every_s=0.05):
        import time

        time.sleep(0.3)
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 3 and all(line.startswith("[raypipe] step 0:convert: still running (") for line in lines)
