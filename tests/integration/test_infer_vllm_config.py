"""The GPU path's configuration, built with the real ray.data.llm classes (no vLLM, no GPU)."""

import pytest

from raypipe.errors import MissingExtraError
from raypipe.infer import GenerationConfig
from raypipe.infer.vllm_stage import build_vllm_processor, processor_config_kwargs, vllm_available

pytestmark = pytest.mark.integration


def test_ray_data_llm_accepts_the_processor_config(tmp_path):
    llm = pytest.importorskip("ray.data.llm")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 32}')
    cfg = GenerationConfig(model="/models/base", adapter=str(adapter), replicas=2, tensor_parallel_size=4,
                           batch_size=128)
    config = llm.vLLMEngineProcessorConfig(**processor_config_kwargs(cfg))
    assert config.concurrency == 2 and config.batch_size == 128
    assert config.should_continue_on_error is True
    assert config.engine_kwargs["tensor_parallel_size"] == 4
    assert config.engine_kwargs["enable_lora"] is True and config.engine_kwargs["max_lora_rank"] == 32


@pytest.mark.skipif(vllm_available(), reason="vllm is installed here; the install hint is for machines without it")
def test_without_vllm_one_install_hint():
    with pytest.raises(MissingExtraError, match=r"pip install 'raypipe\[vllm\]'"):
        build_vllm_processor(GenerationConfig(model="m"))
