"""The transformers generation stage, called directly (no Ray): what each Ray actor runs."""

import pytest

pytestmark = pytest.mark.integration

TEXTS = ["<|im_start|>user\nHello, what is the weather in Taipei today?<|im_end|>\n<|im_start|>assistant\n"
         "[get_weather(city=\"Taipei\")]<|im_end|> 計算三角形的面積"] * 20
PROMPTS = [
    "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nWhat is the weather in Taipei today, and tomorrow, and next week?<|im_end|>\n"
    "<|im_start|>assistant\n",
    "<|im_start|>user\n計算三角形的面積<|im_end|>\n<|im_start|>assistant\n",
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from raypipe.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny"), TEXTS)


def test_batched_left_padded_generation_equals_one_by_one(tiny_model):
    from raypipe.infer.hf_stage import TransformersGenerateStage

    stage = TransformersGenerateStage(str(tiny_model), max_new_tokens=6, stop=["<|im_end|>"])
    batch = stage({"id": ["a", "b", "c"], "prompt": PROMPTS})
    assert batch["id"] == ["a", "b", "c"]  # input columns are carried through
    singles = [stage.generate([p])[0] for p in PROMPTS]
    assert batch["generated_text"] == [s["generated_text"] for s in singles]
    assert batch["num_input_tokens"] == [s["num_input_tokens"] for s in singles]
    assert batch["num_input_tokens"][0] < batch["num_input_tokens"][1]  # the batch really was padded
    assert all(e == "" for e in batch["error"])
    assert all(r in ("stop", "length") for r in batch["finish_reason"])


def test_text_is_cut_at_stop_and_keeps_special_tokens(tiny_model):
    from transformers import AutoTokenizer

    from raypipe.infer.hf_stage import finish_text

    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    tok.add_special_tokens({"additional_special_tokens": ["<|use_tool|>"]})
    ids = tok.encode("<|use_tool|>[f(a=1)]<|im_end|>junk<|pad|>", add_special_tokens=False)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    out = finish_text(tok, ids, [im_end], ["<|im_end|>"])
    assert out == {"generated_text": "<|use_tool|>[f(a=1)]", "finish_reason": "stop",
                   "num_generated_tokens": ids.index(im_end)}
    # a stop string that is not one token is cut from the text
    out = finish_text(tok, tok.encode("abc STOP def", add_special_tokens=False), [], ["STOP"])
    assert out["generated_text"] == "abc " and out["finish_reason"] == "stop"
    out = finish_text(tok, tok.encode("abc", add_special_tokens=False), [im_end], ["<|im_end|>"])
    assert out["finish_reason"] == "length"


def test_adapter_with_added_tokens_loads_and_changes_the_output(tiny_model, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from raypipe.infer.hf_stage import TransformersGenerateStage

    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    tok.add_special_tokens({"additional_special_tokens": ["<|use_tool|>", "<|answer|>"]})
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    model.resize_token_embeddings(len(tok), pad_to_multiple_of=64, mean_resizing=False)
    new_ids = list(range(len(tok) - 2, len(tok)))
    peft_model = get_peft_model(model, LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
        trainable_token_indices={"embed_tokens": new_ids}, task_type="CAUSAL_LM"))
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    tok.save_pretrained(adapter)

    base = TransformersGenerateStage(str(tiny_model), max_new_tokens=8)
    tuned = TransformersGenerateStage(str(tiny_model), adapter=str(adapter), max_new_tokens=8)
    assert len(tuned.tokenizer) == len(tok)  # the adapter's tokenizer, which knows the added tokens
    assert tuned.tokenizer.encode("<|use_tool|>", add_special_tokens=False) == [new_ids[0]]
    a = base({"prompt": PROMPTS})["generated_text"]
    b = tuned({"prompt": PROMPTS})["generated_text"]
    assert a != b


def test_a_failing_batch_is_recorded_per_row_or_raised(tiny_model, monkeypatch):
    from raypipe.infer.hf_stage import TransformersGenerateStage

    stage = TransformersGenerateStage(str(tiny_model), max_new_tokens=2)

    def boom(prompts):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(stage, "generate", boom)
    out = stage({"id": ["a", "b"], "prompt": PROMPTS[:2]})
    assert out["error"] == ["RuntimeError: out of memory"] * 2
    assert out["finish_reason"] == ["error", "error"] and out["id"] == ["a", "b"]
    stage.continue_on_error = False
    with pytest.raises(RuntimeError):
        stage({"id": ["a"], "prompt": PROMPTS[:1]})


def test_sampling_is_seeded(tiny_model):
    from raypipe.infer.hf_stage import TransformersGenerateStage

    def sample(seed):
        stage = TransformersGenerateStage(str(tiny_model), max_new_tokens=12, temperature=1.0, seed=seed)
        return stage({"prompt": PROMPTS})["generated_text"]

    first = sample(1)
    assert sample(1) == first  # a trial repeats exactly
    assert sample(2) != first  # another seed is another trial
