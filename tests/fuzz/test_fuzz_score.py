"""Fuzz `raypipe score bfcl` with damaged result files: model output is hostile input.

Result files of raypipe's mini benchmark (perfect answers) are damaged as files (fuzz_mutations)
and in the model output itself (huge numbers, deep nesting, code, broken decision tokens).
Invariant: exit 0 with a report written, or exit 2 with `raypipe: error:` lines; never a
traceback.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_harness import run_cli
from fuzz_mutations import Damaged, damage_bytes, mutate_records, serialize
from raypipe.data import BFCL_MINI_DIR
from raypipe.eval.bfcl_data import load_bfcl, reference_calls, result_file_name
from raypipe.templates.pythonic import format_calls

pytestmark = pytest.mark.unit

HOSTILE_OUTPUTS = [
    "[get_current_weather(location=" + "9" * 5000 + ")]",
    "[get_current_weather(location=10**4000 * 10**4000)]",
    "[get_current_weather(location=1e999, unit=-1e999)]",
    "[" * 3000 + "]" * 3000,
    "[get_current_weather(location=" + "[" * 2000 + "]" * 2000 + ")]",
    '{"name": "get_current_weather", "arguments": ' + "[" * 3000 + "]" * 3000 + "}",
    "[__import__('os').system('echo pwned')]",
    "[get_current_weather(location=lambda: 1)]",
    "<|use_tool|>[get_current_weather(",
    "<|answer|>\u0000 answer",
    "<|tool_call_begin|>{not json<|tool_call_end|>",
    "[f(**{'a': 1})]",
    "[get_current_weather(location='Taipei', location='Tokyo')]",
    "",
]


def _results() -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for item in load_bfcl(BFCL_MINI_DIR, "en"):
        raw = format_calls(reference_calls(item)) if item.ground_truth else "No function applies."
        rows.setdefault(item.category, []).append({"id": item.id, "result": raw})
    return rows


RESULTS = _results()


@st.composite
def damaged_results(draw):
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    category = rng.choice(sorted(RESULTS))
    records = json.loads(json.dumps(RESULTS[category]))
    for _ in range(rng.randint(0, 2)):  # hostile model output
        rng.choice(records)["result"] = rng.choice(HOSTILE_OUTPUTS)
    records, raw, how = mutate_records(records, rng, rng.randint(0, 2), "id")
    data = serialize(records, "jsonl", raw)
    if rng.random() < 0.4:
        data, more = damage_bytes(data, rng, rng.randint(1, 2))
        how += more
    return category, Damaged(data, None, how)


def _has_hostile_output_fixes() -> bool:
    """Scoring's own fixes for hostile output (issue 14 item 4: BOM, deep and huge values in
    result files, numbers the checker cannot compare) come from the scoring branch; its reader
    grew an `on_too_deep` hook with them."""
    import inspect

    from raypipe.eval.bfcl_data import read_jsonl

    return "on_too_deep" in inspect.signature(read_jsonl).parameters


@pytest.mark.skipif(not _has_hostile_output_fixes(),
                    reason="needs scoring's hostile-output fixes (issue 14 item 4, branch bfcl)")
def test_score_survives_damaged_result_files(fuzz_settings):
    workdir = Path(tempfile.mkdtemp(prefix="raypipe-fuzz-score-"))
    try:
        @fuzz_settings
        @given(case=damaged_results())
        def run(case):
            category, damaged = case
            folder = Path(tempfile.mkdtemp(dir=workdir))
            try:
                results = folder / "results"
                results.mkdir()
                for cat, rows in RESULTS.items():
                    path = results / result_file_name(cat)
                    if cat == category:
                        path.write_bytes(damaged.data)
                    else:
                        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
                out = folder / "REPORT.json"
                rc, _, _ = run_cli(["score", "bfcl", "--data", BFCL_MINI_DIR, "--lang", "en",
                                    "--results", results, "--decoder", "pythonic", "--out", out])
                if rc == 0:
                    report = json.loads(out.read_text(encoding="utf-8"))
                    assert set(report["categories"]) == set(RESULTS)
            finally:
                shutil.rmtree(folder, ignore_errors=True)

        run()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
