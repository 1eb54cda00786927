"""Fuzz `raypipe run --check` with damaged job files.

A job whose every path exists (inputs from raypipe's data, outputs in a temporary folder) is
damaged in its values (type swaps, dropped and unknown keys, huge numbers, tags, alias bombs,
deep nesting) and as bytes (truncation, flips, bad UTF-8). Invariant: exit 0 or 2 with one
`raypipe: error:` line per problem, never a traceback, and quickly (an alias bomb is refused
before it is expanded).
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from fuzz_harness import run_cli
from fuzz_mutations import SWAPS, damage_bytes
from raypipe.data import IF_JSONL, SAMPLES_JSONL, SOURCES_DIR, TOOLS_JSON

pytestmark = pytest.mark.unit

RAW = "RAYPIPEFUZZRAW{}"


def _bomb(levels: int, width: int) -> str:
    parts = [f"&a0 [{', '.join(['x'] * width)}]"]
    for i in range(1, levels):
        parts.append(f"&a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "[" + ", ".join(parts) + "]"


RAW_VALUES = [
    _bomb(9, 9), _bomb(30, 2), _bomb(4, 4),
    "[" * 60 + "]" * 60, "[" * 1000 + "]" * 1000, "{a: " * 200 + "1" + "}" * 200,
    "&r [*r]", "*undefined",
    "!!python/object/apply:os.system ['echo pwned']", "!!binary AAAA", "!!timestamp 2001-12-14",
    "!!set {a, b}", "!!omap [a: 1]", "!custom 1",
    "1" * 5000, "1e999", "-.inf", ".nan", "0x_1", "0o777", "'a' 'b'", "|\n  literal", "~",
]


def seed_job(out_dir: Path) -> dict:
    return {
        "name": "fuzz",
        "description": "every path exists",
        "ray": {"num_cpus": 2, "object_store_memory_mb": 200},
        "steps": [
            {"convert": {"out": str(out_dir / "converted"), "shard_rows": 1000, "sources": [
                {"format": "canonical", "inputs": [str(SAMPLES_JSONL), str(IF_JSONL)]},
                {"format": "xlam", "inputs": [str(SOURCES_DIR / "xlam.json")], "lang": "en"}]}},
            {"validate": {"paths": [str(out_dir / "converted")], "problems_out": str(out_dir / "problems.jsonl")}},
            {"stats": {"paths": [str(out_dir / "converted")], "out": str(out_dir / "stats.json")}},
            {"synth_negatives": {"inputs": [str(SAMPLES_JSONL)], "out": str(out_dir / "nf"),
                                 "tool_pool": str(TOOLS_JSON), "seed": 3}},
            {"synth_reasoning": {"inputs": [str(out_dir / "converted")], "out": str(out_dir / "reasoned"),
                                 "llm": {"base_url": "http://127.0.0.1:8000/v1", "model": "m",
                                         "api_key_env": "FUZZ_KEY", "concurrency": 4,
                                         "cache_dir": str(out_dir / "cache"),
                                         "extra_headers": {"api-version": "1"}}}},
        ],
    }


def _paths(value, prefix=()):
    out = []
    todo = [(prefix, value)]
    while todo:
        path, v = todo.pop()
        items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else []
        for k, child in items:
            out.append(path + (k,))
            todo.append((path + (k,), child))
    return out


def _set(root, path, value):
    for key in path[:-1]:
        root = root[key]
    root[path[-1]] = value


@st.composite
def damaged_jobs(draw, out_dir: Path) -> tuple[bytes, list[str]]:
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    job = seed_job(out_dir)
    raw: dict[str, str] = {}
    how = []
    for _ in range(rng.randint(0, 3)):
        paths = _paths(job)
        path = rng.choice(paths)
        op = rng.choice(["swap", "raw", "drop", "unknown"])
        if op == "swap":
            _set(job, path, rng.choice(SWAPS))
        elif op == "raw":
            key = RAW.format(len(raw))
            raw[key] = rng.choice(RAW_VALUES)
            _set(job, path, key)
        elif op == "drop":
            parent = job
            for k in path[:-1]:
                parent = parent[k]
            del parent[path[-1]]
        else:
            parent = job
            for k in path[:-1]:
                parent = parent[k]
            if isinstance(parent, dict):
                parent[rng.choice(["zz_unknown", "k" * 5000, 12, "a b: c"])] = 1
        how.append(f"{op} at {path}")
    text = yaml.safe_dump(job, allow_unicode=True, width=10_000, sort_keys=False)
    for key, value in raw.items():
        text = text.replace(key, value)
    lines = text.splitlines(keepends=True)
    if rng.random() < 0.2 and lines:  # a duplicated line: a duplicate key (or a second step)
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
        how.append(f"duplicate line {i + 1}")
    data = "".join(lines).encode("utf-8", errors="surrogatepass")
    if rng.random() < 0.3:
        data, more = damage_bytes(data, rng, rng.randint(1, 2))
        how += more
    return data, how


def test_run_check_survives_damaged_job_files(fuzz_settings):
    workdir = Path(tempfile.mkdtemp(prefix="raypipe-fuzz-jobs-"))
    out_dir = workdir / "runs"
    try:
        job_file = workdir / "job.yaml"
        job_file.write_text(yaml.safe_dump(seed_job(out_dir)), encoding="utf-8")
        run_cli(["run", "--check", job_file], allowed=(0,))  # the undamaged job checks clean

        @fuzz_settings
        @given(case=damaged_jobs(out_dir))
        def run(case):
            data, _how = case
            job_file.write_bytes(data)
            started = time.monotonic()
            run_cli(["run", "--check", job_file])
            assert time.monotonic() - started < 20, "a damaged job file took too long to check"

        run()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
