"""mDPO after SFT, alone in one process (no Ray): the reference is the merged SFT model, and the
policy's log-prob margin of positive over negative trajectories grows with training. The
exports load with plain PEFT (and the mDPO export is base + SFT + mDPO, as its
raypipe_export.json says); the vllm/ exports are plain LoRA adapters on one resized base."""

import json
from pathlib import Path

import pytest

from raypipe.testing.samples import first_call_samples
from raypipe.testing.samples import wrong_values_negative as corrupt

pytestmark = pytest.mark.integration


def logp_margins(model, tokenizer, pairs, fmt):
    import torch

    from raypipe.templates import tokenize_sample
    from raypipe.train.losses import sequence_logps

    out = []
    for chosen, rejected in pairs:
        seqs = []
        for s in (chosen, rejected):
            t = tokenize_sample(s, tokenizer, fmt)
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([t["input_ids"]])).logits
            seqs.append(float(sequence_logps(logits, torch.tensor([t["labels"]]))[0]))
        out.append(seqs[0] - seqs[1])
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An SFT run, then mDPO on top of it, both in this process."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raypipe.schema import dpo_pair_schema
    from raypipe.train.config import DataSource, MDPOConfig, SFTConfig, TinyModelSettings
    from raypipe.train.launch import run_training
    from raypipe.train.mdpo import mdpo_loop
    from raypipe.train.sft import sft_loop

    tmp_path = tmp_path_factory.mktemp("mdpo")
    samples = first_call_samples(4)
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(s.to_dict()) + "\n" for s in samples), encoding="utf-8")
    sft = run_training(SFTConfig(
        model="tiny", tiny_model=TinyModelSettings(), data=[DataSource(path=str(data), kind="samples", ratio=2)],
        out=str(tmp_path / "sft"), global_batch_size=4, micro_batch_size=2, num_workers=0,
        epochs=4, lr=1e-2, warmup_steps=2, pack=False,  # padded rows: 4 samples per step, as written
    ), sft_loop)

    pairs = [(s, corrupt(s)) for s in samples]
    rows = [{"id": f"p{i}", "chosen": c.to_row(), "rejected": r.to_row(), "turn": len(c.messages) - 1,
             "corruption": "wrong_argument_values", "source": "test", "meta": "{}"} for i, (c, r) in enumerate(pairs)]
    pq.write_table(pa.Table.from_pylist(rows, schema=dpo_pair_schema()), tmp_path / "pairs.parquet")
    cfg = MDPOConfig(
        model=sft["base_model"], sft_adapter=sft["adapter"],
        data=[DataSource(path=str(tmp_path / "pairs.parquet"), kind="pairs", ratio=3)],
        out=str(tmp_path / "mdpo"), global_batch_size=4, micro_batch_size=2, num_workers=0,
        epochs=4, lr=5e-3, warmup_steps=2, eta=0.5, merge=True,
    )
    summary = run_training(cfg, mdpo_loop, pairs=True)
    return samples, pairs, sft, cfg, summary


def load_as_export_json_says(adapter_dir):
    """What `raypipe_export.json` tells a user: base_model, resized to embedding_rows, + this adapter."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    info = json.loads((Path(adapter_dir) / "raypipe_export.json").read_text())
    base = AutoModelForCausalLM.from_pretrained(info["base_model"])
    if base.get_input_embeddings().weight.shape[0] < info["embedding_rows"]:
        base.resize_token_embeddings(info["embedding_rows"])
    return PeftModel.from_pretrained(base, str(adapter_dir)).eval()


def final_checkpoint_adapter(run_dir) -> str:
    return str(sorted(Path(run_dir, "checkpoints").glob("step_*"))[-1] / "adapter")


def test_mdpo_raises_the_margin_and_starts_from_the_sft_reference(runs):
    from transformers import AutoTokenizer

    from raypipe.train.model import load_causal_lm, merge_into_base

    samples, pairs, sft, cfg, summary = runs
    history = json.loads(Path(summary["metrics"]).read_text())["steps"]
    assert summary["steps"] == len(history) == 12

    # step 1: the fresh adapter is zero, so policy == reference iff the reference is the SFT model
    assert abs(history[0]["reward_chosen"]) < 1e-4 and abs(history[0]["reward_rejected"]) < 1e-4
    assert history[-1]["reward_margin"] > 0 and history[-1]["reward_accuracy"] == 1.0

    tokenizer = AutoTokenizer.from_pretrained(summary["adapter"])
    sft_model = merge_into_base(load_causal_lm(sft["base_model"], None), sft["adapter"], len(tokenizer)).eval()
    before = logp_margins(sft_model, tokenizer, pairs, cfg.format)
    policy = load_as_export_json_says(summary["adapter"])  # base + the exported adapter, nothing by hand
    after = logp_margins(policy, tokenizer, pairs, cfg.format)
    assert sum(after) > sum(before) and all(a > b for a, b in zip(after, before)), (before, after)


def test_mdpo_export_is_base_plus_sft_plus_mdpo(runs):
    """The exported mDPO adapter, loaded as its raypipe_export.json says (and with
    AutoPeftModelForCausalLM, and the merged model), gives the logits of base + SFT + mDPO."""
    import torch
    from peft import AutoPeftModelForCausalLM, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from raypipe.templates import tokenize_sample
    from raypipe.train.model import load_causal_lm, merge_into_base

    samples, _, sft, cfg, summary = runs
    tokenizer = AutoTokenizer.from_pretrained(summary["adapter"])
    ids = torch.tensor([tokenize_sample(samples[0], tokenizer, cfg.format)["input_ids"]])
    # the reference, built the way the workers trained: SFT merged into the base, mDPO on top
    sft_model = merge_into_base(load_causal_lm(sft["base_model"], None), sft["adapter"], len(tokenizer))
    reference = PeftModel.from_pretrained(sft_model, final_checkpoint_adapter(cfg.out)).eval()
    info = json.loads(Path(summary["adapter"], "raypipe_export.json").read_text())
    assert info["contains"] == "base + SFT adapter + mDPO adapter (one adapter)"
    assert info["base_model"] == str(Path(sft["base_model"]).resolve()) and info["lora_rank"] == 32
    with torch.no_grad():
        want = reference(input_ids=ids).logits
        for model in (load_as_export_json_says(summary["adapter"]),
                      AutoPeftModelForCausalLM.from_pretrained(summary["adapter"]).eval(),
                      AutoModelForCausalLM.from_pretrained(summary["merged"]).eval()):
            got = model(input_ids=ids).logits
            assert got.shape == want.shape and torch.allclose(got, want, atol=1e-4), float((got - want).abs().max())
        sft_only = PeftModel.from_pretrained(
            _resized(sft["base_model"], len(tokenizer)), sft["adapter"]).eval()(input_ids=ids).logits
        assert not torch.allclose(sft_only, want, atol=1e-3), "the mDPO delta is in the export"


def _resized(base_path, rows):
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_path)
    base.resize_token_embeddings(rows)
    return base


def test_sft_adapter_loads_with_the_two_plain_peft_calls(runs):
    """AutoPeftModelForCausalLM.from_pretrained(adapter), and PeftModel.from_pretrained(base,
    adapter) after base.resize_token_embeddings(len(tokenizer)), rebuild the trained model."""
    import torch
    from peft import AutoPeftModelForCausalLM, PeftModel
    from transformers import AutoTokenizer

    from raypipe.templates import tokenize_sample

    samples, _, sft, cfg, _ = runs
    adapter = sft["adapter"]
    tok = AutoTokenizer.from_pretrained(adapter)
    assert len(tok) % 64 == 0, "the tokenizer is padded to the embedding size"
    ids = torch.tensor([tokenize_sample(samples[1], tok, cfg.format)["input_ids"]])
    # the adapter as training saved it (checkpoint), on the base resized as training resized it
    trained = PeftModel.from_pretrained(_resized(sft["base_model"], len(tok)),
                                        final_checkpoint_adapter(Path(adapter).parent)).eval()
    with torch.no_grad():
        want = trained(input_ids=ids).logits
        auto = AutoPeftModelForCausalLM.from_pretrained(adapter).eval()
        plain = PeftModel.from_pretrained(_resized(sft["base_model"], len(tok)), adapter).eval()
        for model in (auto, plain):
            assert torch.allclose(model(input_ids=ids).logits, want, atol=1e-5)


# vLLM's LoRA loader, as its source states the rules (vllm/lora/utils.py parse_fine_tuned_lora_name,
# vllm/lora/lora_model.py LoRAModel.from_local_checkpoint, vllm/lora/peft_helper.py PEFTHelper):
# every tensor is `[base_model.model.]<module>.lora_A.weight|lora_B.weight` or
# `<module>.lora_embedding_A|B` (base embedding weights `.embed_tokens.base_layer.weight` /
# `.lm_head.base_layer.weight` are skipped), anything else is "unsupported LoRA weight"; the
# module's last name must be one of the model's LoRA-capable modules (for Llama the linear
# projections and the packed qkv_proj / gate_up_proj); adapter_config.json needs r, lora_alpha
# and target_modules, with modules_to_save empty, no DoRA and bias "none".
VLLM_LLAMA_LORA_MODULES = {"q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "gate_proj", "up_proj",
                           "down_proj", "gate_up_proj", "embed_tokens", "lm_head"}


def vllm_lora_problems(adapter_dir) -> list[str]:
    from safetensors import safe_open

    config = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    problems = [f"missing {k}" for k in ("r", "lora_alpha", "target_modules") if k not in config]
    if config.get("modules_to_save"):
        problems.append("vLLM only supports modules_to_save being None")
    if config.get("use_dora"):
        problems.append("vLLM does not yet support DoRA")
    if config.get("bias", "none") != "none":
        problems.append("adapter bias")
    with safe_open(str(Path(adapter_dir) / "adapter_model.safetensors"), "pt") as f:
        names = list(f.keys())
    for name in names:
        if name.endswith((".embed_tokens.base_layer.weight", ".lm_head.base_layer.weight")):
            continue
        parts = name.split(".")
        start = 2 if name.startswith("base_model.model.") else 0
        if parts[-1] == "weight" and parts[-2] in ("lora_A", "lora_B"):
            module = parts[start:-2]
        elif parts[-1] in ("lora_embedding_A", "lora_embedding_B"):
            module = parts[start:-1]
        else:
            problems.append(f"{name} is unsupported LoRA weight")
            continue
        if module[-1] not in VLLM_LLAMA_LORA_MODULES:
            problems.append(f"unexpected module {'.'.join(module)}")
    return problems


def test_vllm_exports_load_with_peft_and_pass_vllms_lora_rules(runs):
    """`vllm/`: a resized base with the trained token rows (written once, by the SFT run; the
    mDPO run reuses it) and plain LoRA adapters; base + each adapter equals the fine-tune."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from raypipe.templates import tokenize_sample

    samples, _, sft, cfg, summary = runs
    sft_vllm, mdpo_vllm = sft["vllm"], summary["vllm"]
    assert sft_vllm["base"] == mdpo_vllm["base"] == str(Path(sft["adapter"]).parent / "vllm" / "base")
    assert not Path(cfg.out, "vllm", "base").exists(), "the mDPO run writes no second base"
    assert vllm_lora_problems(sft["adapter"]), "adapter/ holds token tensors vLLM rejects"
    for export in (sft_vllm, mdpo_vllm):
        assert vllm_lora_problems(export["adapter"]) == []
        config = json.loads(Path(export["adapter"], "adapter_config.json").read_text())
        assert "trainable_token_indices" not in config and config["base_model_name_or_path"] == export["base"]
    tok = AutoTokenizer.from_pretrained(sft_vllm["base"])
    ids = torch.tensor([tokenize_sample(samples[2], tok, cfg.format)["input_ids"]])
    with torch.no_grad():
        for export, adapter in ((sft_vllm, sft["adapter"]), (mdpo_vllm, summary["adapter"])):
            want = load_as_export_json_says(adapter)(input_ids=ids).logits
            base = AutoModelForCausalLM.from_pretrained(export["base"])
            got = PeftModel.from_pretrained(base, export["adapter"]).eval()(input_ids=ids).logits
            assert torch.allclose(got, want, atol=1e-5)
