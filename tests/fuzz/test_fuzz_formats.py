"""Fuzz convert, validate and stats with damaged files of every input format.

For each format a few valid records (raypipe's own sample data) are damaged (see
fuzz_mutations) and the commands run in-process on the result. Invariants (fuzz_harness):
exit 0 or 2 (validate: 1 = problems found), never a traceback; convert accounts for every record
(in = out + rejected, in = the records in the file), every reject has a reason, no file in the
output folder that convert does not own is lost; validate checks as many rows as convert read;
everything convert keeps is a valid canonical sample (read back, id checked, validated).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given

from fuzz_harness import check_dataset, run_cli
from fuzz_mutations import damaged_files
from raypipe.data import IF_JSONL, SAMPLES_JSONL, SOURCES_DIR

pytestmark = pytest.mark.unit


def _jsonl(path: Path, n: int) -> list:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][:n]


def _array(path: Path, n: int) -> list:
    return json.loads(path.read_text(encoding="utf-8"))[:n]


BFCL_DIR = SOURCES_DIR / "bfcl_v3"
# format -> (records, layout, file name, id key)
SEEDS = {
    "canonical": (_jsonl(SAMPLES_JSONL, 5) + _jsonl(IF_JSONL, 1), "jsonl", "samples.jsonl", "id"),
    "openai": (_jsonl(SOURCES_DIR / "openai_chat.jsonl", 4), "jsonl", "openai.jsonl", None),
    "chat": (_jsonl(SOURCES_DIR / "chat_messages.jsonl", 4), "jsonl", "chat.jsonl", None),
    "openorca": (_jsonl(SOURCES_DIR / "openorca.jsonl", 4), "jsonl", "orca.jsonl", "id"),
    "xlam": (_array(SOURCES_DIR / "xlam.json", 4), "array", "xlam.json", "id"),
    "glaive": (_array(SOURCES_DIR / "glaive_v2.json", 3), "array", "glaive.json", None),
    "sharegpt": (_array(SOURCES_DIR / "sharegpt_tools.json", 3), "array", "sharegpt.json", None),
    "bfcl": (_jsonl(BFCL_DIR / "BFCL_v3_simple.json", 4), "jsonl", "BFCL_v3_simple.json", "id"),
}


@pytest.fixture(scope="module")
def workdir():
    folder = Path(tempfile.mkdtemp(prefix="raypipe-fuzz-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def check_format(fmt: str, damaged, workdir: Path) -> None:
    case = Path(tempfile.mkdtemp(dir=workdir))
    try:
        _, _, name, _ = SEEDS[fmt]
        src = case / "in" / name
        src.parent.mkdir()
        src.write_bytes(damaged.data)
        if fmt == "bfcl":  # answers live beside the questions, as in BFCL's layout
            shutil.copytree(BFCL_DIR / "possible_answer", src.parent / "possible_answer")
        out = case / "out"
        out.mkdir()
        (out / "NOTES.txt").write_text("the user's own file")

        rc, _, _ = run_cli(["convert", "--from", fmt, src, "--out", out])
        assert (out / "NOTES.txt").exists(), "convert lost a file it does not own"
        if rc != 0:
            return
        summary = check_dataset(out, damaged.expected_records)

        rc, _, err = run_cli(["validate", "--from", fmt, src, "--max-show", "1"], allowed=(0, 1, 2))
        if rc != 2:
            checked = int(err.strip().splitlines()[-1].split(" rows checked")[0])
            assert checked == summary["counts"]["in"], (checked, summary["counts"])

        if fmt == "canonical":
            run_cli(["stats", src])  # a bad row: one error line (exit 2), never a crash
    finally:
        shutil.rmtree(case, ignore_errors=True)


@pytest.mark.parametrize("fmt", sorted(SEEDS))
def test_convert_validate_stats_survive_damaged_files(fmt, fuzz_settings, workdir):
    records, layout, _, id_key = SEEDS[fmt]

    @fuzz_settings
    @given(damaged=damaged_files(records, layout, id_key))
    def run(damaged):
        check_format(fmt, damaged, workdir)

    run()


@pytest.mark.parametrize("fmt", sorted(SEEDS))
def test_seed_files_convert_cleanly(fmt, workdir):
    """The undamaged seeds convert with no reject: what the fuzzer damages starts valid."""
    records, layout, name, _ = SEEDS[fmt]
    from fuzz_mutations import serialize

    case = Path(tempfile.mkdtemp(dir=workdir))
    src = case / "in" / name
    src.parent.mkdir()
    src.write_bytes(serialize(records, layout, {}))
    if fmt == "bfcl":
        shutil.copytree(BFCL_DIR / "possible_answer", src.parent / "possible_answer")
    run_cli(["convert", "--from", fmt, src, "--out", case / "out"], allowed=(0,))
    summary = check_dataset(case / "out", len(records))
    assert summary["counts"]["rejected"] == 0, summary
