"""The vLLM path for real: ray.data.llm's processor on a GPU (skipped without vLLM and CUDA).

Not run where raypipe was built (no GPU with vLLM there); written for a GPU CI runner.
"""

import json

import pytest

pytestmark = pytest.mark.gpu

pytest.importorskip("vllm")
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from raypipe.tiny import save_tiny_model

    # head_dim 64: a size every vLLM attention backend supports
    return save_tiny_model(tmp_path_factory.mktemp("tiny"), ["<|im_start|>user\n計算面積<|im_end|>"] * 20,
                           hidden=128, heads=2)


def _cfg(bfcl_data, out, model, adapter=None):
    from raypipe.infer import GenerationConfig
    from raypipe.infer.bfcl import EvalBfclConfig

    return EvalBfclConfig(
        data=str(bfcl_data), out=str(out), lang="zhtw", limit=2, categories=["simple", "relevance"],
        generation=GenerationConfig(model=str(model), adapter=adapter, backend="vllm", max_new_tokens=8,
                                    engine_kwargs={"gpu_memory_utilization": 0.2, "enforce_eager": True,
                                                   "max_model_len": 4096}),
    )


def test_vllm_backend_with_a_per_row_lora_adapter(bfcl_data, local_ray, tiny_model, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from raypipe.infer.bfcl import run_eval_bfcl

    base = run_eval_bfcl(_cfg(bfcl_data, tmp_path / "base", tiny_model), log=lambda *_: None)
    assert base["generated"] == 4

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    lora = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False, task_type="CAUSAL_LM"))
    lora.save_pretrained(tmp_path / "adapter")
    tuned = run_eval_bfcl(_cfg(bfcl_data, tmp_path / "tuned", tiny_model, str(tmp_path / "adapter")),
                          log=lambda *_: None)
    assert tuned["generated"] == 4

    def texts(run):
        rows = [json.loads(x) for x in (tmp_path / run / "generations.jsonl").read_text().splitlines()]
        assert all(r["error"] == "" for r in rows)
        return {r["id"]: r["generated_text"] for r in rows}

    assert texts("base") != texts("tuned")  # the adapter named in each row's `model` column was applied
    assert (tmp_path / "tuned" / "REPORT.json").exists()
