"""Training configs: paper defaults, exact batch arithmetic, DeepSpeed config, data mixing."""

import pytest

from raypipe.config import ConfigError, load_config
from raypipe.errors import RaypipeError
from raypipe.train.config import SFTConfig, grad_accum_steps
from raypipe.train.data import mix, steps_per_epoch
from raypipe.train.deepspeed_config import build_deepspeed_config

pytestmark = pytest.mark.unit

BASE = {"model": "m", "data": [{"path": "d.parquet"}], "out": "runs/x"}


def test_defaults_are_the_seed_papers():
    cfg = load_config(SFTConfig, BASE)
    assert (cfg.lr, cfg.global_batch_size, cfg.epochs, cfg.warmup_steps) == (1e-4, 48, 3, 100)
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.target_modules) == (16, 32, "all-linear")
    assert cfg.zero_stage == 2 and cfg.precision == "auto"
    assert cfg.micro_batch_size * cfg.accum_steps * cfg.world_size == 48


def test_accumulation_is_derived_exactly():
    assert grad_accum_steps(48, 4, 4) == 3
    assert grad_accum_steps(48, 6, 8) == 1
    assert grad_accum_steps(48, 4, 0) == 12  # in process: one worker


def test_batch_that_does_not_divide_is_a_clear_config_error():
    with pytest.raises(ConfigError) as err:
        load_config(SFTConfig, {**BASE, "num_workers": 5, "micro_batch_size": 4}, where="jobs/sft.yaml: steps[0].train_sft")
    msg = str(err.value)
    assert "jobs/sft.yaml: steps[0].train_sft" in msg
    assert "48" in msg and "5 worker(s)" in msg and "2.4" in msg


def test_unknown_keys_are_rejected():
    with pytest.raises(ConfigError, match="learning_rate: unknown key"):
        load_config(SFTConfig, {**BASE, "learning_rate": 1e-4})


def test_deepspeed_config_zero2_default_and_zero3_opt_in():
    ds = build_deepspeed_config(micro_batch_size=4, accum_steps=3, world_size=4)
    assert ds["train_batch_size"] == 48 and ds["gradient_accumulation_steps"] == 3
    assert ds["zero_optimization"]["stage"] == 2
    assert ds["bf16"]["enabled"] is False and ds["zero_allow_untested_optimizer"] is True
    ds3 = build_deepspeed_config(micro_batch_size=2, accum_steps=3, world_size=8, zero_stage=3, bf16=True)
    assert ds3["zero_optimization"]["stage"] == 3 and ds3["bf16"]["enabled"] is True
    with pytest.raises(ValueError):
        build_deepspeed_config(micro_batch_size=1, accum_steps=1, world_size=1, zero_stage=1)


def test_mixing_ratio_subsamples_and_repeats_deterministically():
    rows = [{"id": i} for i in range(10)]
    half = mix(rows, 0.5, seed=1)
    assert len(half) == 5 and len({r["id"] for r in half}) == 5
    assert half == mix(rows, 0.5, seed=1)
    assert half != mix(rows, 0.5, seed=2)
    twice = mix(rows, 2.0, seed=1)
    assert sorted(r["id"] for r in twice) == sorted(list(range(10)) * 2)
    assert len(mix(rows, 1.5, seed=0)) == 15
    with pytest.raises(ConfigError, match="ratio"):
        load_config(SFTConfig, {**BASE, "data": [{"path": "x", "ratio": 0}]})


def test_steps_per_epoch_counts_equal_worker_shares():
    cfg = load_config(SFTConfig, {**BASE, "num_workers": 2, "micro_batch_size": 4, "global_batch_size": 24})
    assert cfg.accum_steps == 3
    assert steps_per_epoch(101, cfg) == 4  # 50 rows per worker // (4 x 3) per step
    with pytest.raises(RaypipeError, match="fewer than one global batch"):
        steps_per_epoch(23, cfg)
