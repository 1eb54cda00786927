import json
from types import SimpleNamespace

import pytest

from raypipe.config import ConfigError, load_config
from raypipe.errors import MissingExtraError, RaypipeError
from raypipe.infer import GenerationConfig, choose_backend
from raypipe.infer.bfcl import (
    EvalBfclConfig,
    check_run_meta,
    decoder_for_format,
    read_generations,
    select_items,
)
from raypipe.infer.vllm_stage import check_adapter_vocab, processor_config_kwargs, sampling_params, to_output_row

pytestmark = pytest.mark.unit


def test_vllm_processor_config_for_replicas_tp_and_lora(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 16, "lora_alpha": 32}))
    cfg = GenerationConfig(model="/models/breeze", adapter=str(adapter), replicas=4, tensor_parallel_size=2,
                           batch_size=64, max_model_len=4096, engine_kwargs={"gpu_memory_utilization": 0.85})
    kw = processor_config_kwargs(cfg)
    assert kw["model_source"] == "/models/breeze"
    assert kw["concurrency"] == 4 and kw["batch_size"] == 64
    assert kw["should_continue_on_error"] is True
    # prompts come rendered; ray's detokenizer would drop the Decision Token (skip_special_tokens)
    assert kw["chat_template_stage"] is False and kw["detokenize_stage"] is False and kw["tokenize_stage"] is False
    assert kw["engine_kwargs"] == {"tensor_parallel_size": 2, "max_model_len": 4096, "enable_lora": True,
                                   "max_loras": 1, "max_lora_rank": 16, "gpu_memory_utilization": 0.85}


def test_vllm_config_without_adapter_and_user_overrides():
    cfg = GenerationConfig(model="m", engine_kwargs={"tensor_parallel_size": 8}, continue_on_error=False)
    kw = processor_config_kwargs(cfg)
    assert kw["engine_kwargs"] == {"tensor_parallel_size": 8}  # the user's explicit value wins
    assert "enable_lora" not in kw["engine_kwargs"]
    assert kw["should_continue_on_error"] is False
    explicit = processor_config_kwargs(GenerationConfig(model="m", adapter="org/remote", max_lora_rank=8))
    assert explicit["engine_kwargs"]["max_lora_rank"] == 8


def test_sampling_is_greedy_and_keeps_special_tokens():
    p = sampling_params(GenerationConfig(model="m", max_new_tokens=77))
    assert p == {"temperature": 0.0, "top_p": 1.0, "max_tokens": 77, "stop": ["<|im_end|>"],
                 "skip_special_tokens": False, "spaces_between_special_tokens": False}
    sampled = sampling_params(GenerationConfig(model="m", temperature=0.7, top_p=0.9, seed=3))
    assert (sampled["temperature"], sampled["top_p"], sampled["seed"]) == (0.7, 0.9, 3)
    with pytest.raises(ValueError, match="top_p"):
        GenerationConfig(model="m", top_p=0)


def test_vllm_rows_become_raypipe_rows_errors_included():
    ok = to_output_row({"id": "simple_0", "category": "simple", "prompt": "p", "generated_text": "<|answer|>hi",
                        "num_input_tokens": 12, "num_generated_tokens": 3, "sampling_params": {"max_tokens": 3},
                        "model": "/adapter"})
    assert ok == {"id": "simple_0", "category": "simple", "prompt": "p", "generated_text": "<|answer|>hi",
                  "num_input_tokens": 12, "num_generated_tokens": 3, "finish_reason": "length", "error": ""}
    bad = to_output_row({"id": "x", "prompt": "p", "__inference_error__": "prompt too long"})
    assert bad["error"] == "prompt too long" and bad["finish_reason"] == "error" and bad["generated_text"] == ""


def test_backend_choice():
    assert choose_backend("auto", vllm_installed=True, cluster_gpus=8) == "vllm"
    assert choose_backend("auto", vllm_installed=True, cluster_gpus=0) == "transformers"
    assert choose_backend("auto", vllm_installed=False, cluster_gpus=8) == "transformers"
    assert choose_backend("transformers", vllm_installed=True, cluster_gpus=8) == "transformers"
    with pytest.raises(MissingExtraError, match=r"pip install 'raypipe\[vllm\]'"):
        choose_backend("vllm", vllm_installed=False, cluster_gpus=8)
    with pytest.raises(RaypipeError, match="needs GPUs"):
        choose_backend("vllm", vllm_installed=True, cluster_gpus=0)


def test_generation_config_rejects_bad_values_all_at_once():
    with pytest.raises(ValueError, match="batch_size"):
        GenerationConfig(model="m", batch_size=0)
    with pytest.raises(ConfigError) as err:
        load_config(EvalBfclConfig, {"data": "d", "out": "o", "lang": "fr", "generation": {"model": "m", "beam": 4}})
    text = str(err.value)
    assert "lang" in text and "generation.beam: unknown key" in text


def test_eval_config_from_yaml_dict():
    cfg = load_config(EvalBfclConfig, {"data": "d", "out": "o", "limit": 3, "categories": ["simple"],
                                       "generation": {"model": "m", "backend": "transformers", "max_new_tokens": 8}})
    assert cfg.generation.backend == "transformers" and cfg.limit == 3


def test_decoder_follows_the_format():
    assert decoder_for_format(SimpleNamespace(decision_token=True, call_style="pythonic")) == "decision-token"
    assert decoder_for_format(SimpleNamespace(decision_token=True, call_style="json")) == "decision-token"
    assert decoder_for_format(SimpleNamespace(decision_token=False, call_style="pythonic")) == "pythonic"
    assert decoder_for_format(SimpleNamespace(decision_token=False, call_style="json")) == "json"


def test_every_format_preset_maps_to_a_scorer_decoder():
    from raypipe.eval.decoders import DECODERS
    from raypipe.templates import PRESETS

    assert all(decoder_for_format(fmt) in DECODERS for fmt in PRESETS.values())


def test_limit_takes_the_first_items_of_each_category():
    items = [SimpleNamespace(id=f"{c}_{i}", category=c) for c in ("simple", "relevance") for i in range(5)]
    assert [i.id for i in select_items(items, 2)] == ["simple_0", "simple_1", "relevance_0", "relevance_1"]
    assert len(select_items(items, None)) == 10


def test_generation_log_last_line_wins_and_torn_tail_is_ignored(tmp_path):
    log = tmp_path / "generations.jsonl"
    log.write_text(
        json.dumps({"id": "a", "generated_text": "", "error": "oom"}) + "\n"
        + json.dumps({"id": "a", "generated_text": "x", "error": ""}) + "\n"
        + '{"id": "b", "generated_te'
    )
    done = read_generations(log)
    assert list(done) == ["a"] and done["a"]["generated_text"] == "x"
    log.write_text('{"id": broken\n' + json.dumps({"id": "a", "error": ""}) + "\n")
    with pytest.raises(RaypipeError, match="generations.jsonl:1"):
        read_generations(log)


def test_resuming_with_other_settings_is_refused(tmp_path):
    meta = {"model": "m1", "adapter": None, "format": "tools-dt", "lang": "zhtw", "max_new_tokens": 64}
    check_run_meta(tmp_path, meta)
    check_run_meta(tmp_path, dict(meta))  # same settings: fine
    with pytest.raises(RaypipeError, match="model: 'm1' -> 'm2'"):
        check_run_meta(tmp_path, {**meta, "model": "m2"})
    # a run.json of an older raypipe without `version`/`endpoint` resumes; a recorded one must match
    check_run_meta(tmp_path, {**meta, "version": "v1", "endpoint": None})
    with pytest.raises(RaypipeError, match="version: 'v1' -> 'v4'"):
        check_run_meta(tmp_path, {**meta, "version": "v4"})


def test_vllm_refuses_an_adapter_that_added_tokens(tmp_path):
    base, adapter = tmp_path / "base", tmp_path / "adapter"
    base.mkdir()
    adapter.mkdir()
    (base / "config.json").write_text(json.dumps({"vocab_size": 32000}))
    (adapter / "raypipe_export.json").write_text(json.dumps({"vocab_size": 32004}))
    with pytest.raises(RaypipeError, match="adds 4 token"):
        check_adapter_vocab(GenerationConfig(model=str(base), adapter=str(adapter)))
    (adapter / "raypipe_export.json").write_text(json.dumps({"vocab_size": 32000}))
    check_adapter_vocab(GenerationConfig(model=str(base), adapter=str(adapter)))
    check_adapter_vocab(GenerationConfig(model="org/remote-model", adapter=str(adapter)))
