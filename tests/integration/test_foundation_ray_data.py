"""Ray Data paths: read_samples / write_samples and the validate and stats job steps, on the
session's local Ray. Bad rows pass through as problems; nothing is dropped."""

import copy
import json

import pytest

from raypipe.data import IF_JSONL, SAMPLES_JSONL
from raypipe.errors import RaypipeError
from raypipe.io import iter_samples, read_samples, write_samples
from raypipe.io.stats import StatsAccumulator, row_stats
from raypipe.registry import JobContext
from raypipe.schema import ToolCall

pytestmark = pytest.mark.integration


def test_read_write_validate_and_stats_on_ray(local_ray, tmp_path):
    from raypipe.commands.stats import StatsConfig, _step as stats_step
    from raypipe.commands.validate import ValidateConfig, _step as validate_step

    samples = list(iter_samples([str(SAMPLES_JSONL), str(IF_JSONL)]))
    # one broken sample among good ones, stored as Parquet next to the JSONL inputs
    messages = copy.deepcopy(samples[0].messages)  # edit a copy, then derive: the id follows the content
    messages[2].tool_calls = [ToolCall("get_current_weather", {"unit": "kelvin"})]
    broken = samples[0].derive("test", messages=messages)
    write_samples([broken, *samples[40:45]], str(tmp_path / "mixed"))

    ds = read_samples([str(SAMPLES_JSONL), f"file://{IF_JSONL}", str(tmp_path / "mixed")])
    summary = write_samples(ds, str(tmp_path / "all"), shard_rows=25)
    assert summary["counts"] == {"in": 61, "out": 61, "rejected": 0}
    back = list(iter_samples(str(tmp_path / "all")))
    assert sorted(s.id for s in back) == sorted(s.id for s in samples + [broken] + samples[40:45])
    assert {s.id: s for s in back}[samples[3].id] == samples[3]

    ctx = JobContext(name="t", job_file="t.yaml")
    problems_out = tmp_path / "problems.jsonl"
    with pytest.raises(RaypipeError, match="1 of 61 samples have problems"):
        validate_step(ValidateConfig(paths=[str(tmp_path / "all")], problems_out=str(problems_out)), ctx)
    listed = [json.loads(l) for l in problems_out.read_text().splitlines()]
    assert {p["id"] for p in listed} == {broken.id}
    assert {p["problem"] for p in listed} == {
        "messages[2].tool_calls[0].arguments.location: required argument missing",
        "messages[2].tool_calls[0].arguments.unit: 'kelvin' is not one of ['celsius', 'fahrenheit']",
    }
    result = validate_step(ValidateConfig(paths=[str(tmp_path / "all")], fail_on_problems=False), ctx)
    assert result == {"rows": 61, "valid": 60, "invalid": 1, "problems": 2}

    result = stats_step(StatsConfig(paths=[str(tmp_path / "all")], out=str(tmp_path / "stats.json")), ctx)
    expected = StatsAccumulator()
    for s in back:
        expected.add(row_stats(s))
    assert json.loads((tmp_path / "stats.json").read_text()) == json.loads(json.dumps(expected.report()))
    assert result["samples"] == 61


def test_convert_on_ray_tasks_equals_convert_in_process(local_ray, tmp_path):
    from pathlib import Path

    from raypipe.data import SOURCES_DIR
    from raypipe.io import convert_sources

    broken = Path(__file__).resolve().parents[1] / "data" / "broken"
    sources = [("openai", [str(SOURCES_DIR / "openai_chat.jsonl"), str(broken / "openai_chat.jsonl")], None, None),
               ("xlam", [str(SOURCES_DIR / "xlam.json")], None, None),
               ("bfcl", [str(SOURCES_DIR / "bfcl_v3")], None, None)]
    local = convert_sources(sources, str(tmp_path / "local"), log=lambda m: None)
    remote = convert_sources(sources, str(tmp_path / "ray"), log=lambda m: None, use_ray=True)
    assert remote.summary["counts"] == local.summary["counts"] == {"in": 30, "out": 26, "rejected": 4}
    assert [f["sha256"] for f in remote.summary["sources"]] == [f["sha256"] for f in local.summary["sources"]]
    assert list(iter_samples(str(tmp_path / "ray"))) == list(iter_samples(str(tmp_path / "local")))
    assert [r["line"] for r in remote.rejects_preview] == [2, 3, 4, 5]
