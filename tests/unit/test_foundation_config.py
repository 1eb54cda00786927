from dataclasses import dataclass, field
from typing import Literal

import pytest

from raypipe.config import ConfigError, load_config
from raypipe.jobs import load_job

pytestmark = pytest.mark.unit


@dataclass
class Inner:
    path: str
    retries: int = 3


@dataclass
class Outer:
    name: str
    inner: Inner
    items: list[Inner] = field(default_factory=list)
    rate: float = 1.0
    mode: Literal["fast", "slow"] = "fast"
    limit: int | None = None
    tags: dict[str, int] = field(default_factory=dict)


def test_a_good_config_is_typed_and_defaults_filled():
    cfg = load_config(Outer, {"name": "x", "inner": {"path": "p"}, "items": [{"path": "q", "retries": 1}],
                              "rate": 2, "tags": {"a": 1}})
    assert cfg == Outer(name="x", inner=Inner("p"), items=[Inner("q", 1)], rate=2.0, tags={"a": 1})
    assert isinstance(cfg.rate, float)


def test_all_errors_are_reported_at_once_with_their_paths():
    with pytest.raises(ConfigError) as info:
        load_config(Outer, {
            "inner": {"retries": "3", "colour": "red"},  # missing path, wrong type, unknown key
            "items": [{"path": 1}, "nope"],
            "rate": "fast",
            "mode": "medium",
            "limit": 1.5,
            "tags": {"a": "b"},
            "speed": 3,
        }, where="job.yaml: steps[0].x")
    found = set(info.value.problems)
    w = "job.yaml: steps[0].x"
    expected_prefixes = [
        f"{w}.name: required key missing",
        f"{w}.inner.path: required key missing",
        f"{w}.inner.retries: expected int",
        f"{w}.inner.colour: unknown key",
        f"{w}.items[0].path: expected str",
        f"{w}.items[1]: expected a mapping",
        f"{w}.rate: expected float",
        f"{w}.mode: 'medium' is not one of",
        f"{w}.limit: expected int",
        f"{w}.tags.a: expected int",
        f"{w}.speed: unknown key",
    ]
    for prefix in expected_prefixes:
        assert any(p.startswith(prefix) for p in found), (prefix, found)
    assert len(found) == len(expected_prefixes)


def test_booleans_are_not_numbers():
    with pytest.raises(ConfigError, match="rate: expected float"):
        load_config(Outer, {"name": "x", "inner": {"path": "p"}, "rate": True})


def test_cross_field_checks_of_step_configs_are_reported():
    from raypipe.commands.convert import ConvertConfig

    with pytest.raises(ConfigError) as info:
        load_config(ConvertConfig, {"out": "o", "sources": [{"format": "csv", "inputs": ["a"]}]}, where="w")
    assert any("format 'csv' is not one of" in p for p in info.value.problems)


def test_job_file_errors_are_collected_across_steps(tmp_path):
    job = tmp_path / "bad.yaml"
    job.write_text(
        "name: bad\n"
        "colour: red\n"
        "steps:\n"
        "  - convert: {out: o, sources: [{format: xlam, inputs: [a]}], shard_rows: many}\n"
        "  - validate: {}\n"
        "  - nosuchstep: {}\n"
        "  - {validate: {paths: [a]}, stats: {paths: [a]}}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_job(job)
    problems = info.value.problems  # the top-level problem and every step's, together
    assert any("colour: unknown key" in p for p in problems)
    assert any("steps[0].convert.shard_rows: expected int" in p for p in problems)
    assert any("steps[1].validate.paths: required key missing" in p for p in problems)
    assert any("steps[2]: unknown step kind 'nosuchstep'" in p for p in problems)
    assert any("steps[3]: a step is a one-key mapping" in p for p in problems)
    assert len(problems) == 5
