"""CPU generation with transformers: a Ray Data actor stage, batched greedy (or sampled) decoding.

The model (and the optional PEFT adapter) load once per actor, in the constructor, which
runs on the worker. `__call__` takes a batch with a `prompt` column and returns it with the
generated columns added; the stage also runs without Ray (tests call it directly).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from raypipe.templates.tokens import PAD_TO_MULTIPLE

OUTPUT_COLUMNS = ("generated_text", "finish_reason", "num_input_tokens", "num_generated_tokens", "error")


class TransformersGenerateStage:
    def __init__(
        self,
        model: str,
        adapter: str | None = None,
        max_new_tokens: int = 512,
        stop: list[str] | None = None,
        dtype: str = "auto",
        continue_on_error: bool = True,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        # A fine-tune that added tokens (Decision Token...) saves its tokenizer next to the
        # adapter; the base model's tokenizer would split those tokens into pieces.
        tok_dir = adapter if adapter and (Path(adapter) / "tokenizer_config.json").exists() else model
        self.tokenizer = AutoTokenizer.from_pretrained(tok_dir)
        self.tokenizer.padding_side = "left"  # generation appends on the right
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        torch_dtype = torch.float32 if dtype == "auto" else getattr(torch, dtype)
        lm = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype)
        rows = lm.get_input_embeddings().weight.shape[0]
        if adapter:
            from peft import PeftModel

            # Training's rule (raypipe.train): vocab padded to a multiple of 64; the adapter
            # then restores the trained rows of the added tokens exactly.
            if len(self.tokenizer) > rows or rows % PAD_TO_MULTIPLE:
                lm.resize_token_embeddings(max(len(self.tokenizer), rows), pad_to_multiple_of=PAD_TO_MULTIPLE,
                                           mean_resizing=False)
            lm = PeftModel.from_pretrained(lm, adapter)
        elif len(self.tokenizer) > rows:
            lm.resize_token_embeddings(len(self.tokenizer), pad_to_multiple_of=PAD_TO_MULTIPLE)
        self.model = lm.eval()
        self.max_new_tokens = max_new_tokens
        self.stop = list(stop or [])
        self.stop_ids = self._single_token_ids(self.stop)
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in self.stop_ids:
            self.stop_ids.append(self.tokenizer.eos_token_id)
        self.continue_on_error = continue_on_error
        self.sampling = {"do_sample": False}
        if temperature > 0:
            self.sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p}
            if seed is not None:
                torch.manual_seed(seed)  # per actor: a re-run with the same batches repeats exactly

    def _single_token_ids(self, strings: list[str]) -> list[int]:
        """Stop strings that are one token stop generation early; the others are cut from text."""
        ids = []
        for s in strings:
            encoded = self.tokenizer.encode(s, add_special_tokens=False)
            if len(encoded) == 1:
                ids.append(encoded[0])
        return ids

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        prompts = [str(p) for p in batch["prompt"]]
        try:
            rows = self.generate(prompts)
        except Exception as exc:  # noqa: BLE001 - recorded per row, the job goes on
            if not self.continue_on_error:
                raise
            reason = f"{type(exc).__name__}: {exc}"
            rows = [
                {"generated_text": "", "finish_reason": "error", "num_input_tokens": 0,
                 "num_generated_tokens": 0, "error": reason}
                for _ in prompts
            ]
        out = {k: list(v) for k, v in batch.items()}
        for col in OUTPUT_COLUMNS:
            out[col] = [r[col] for r in rows]
        return out

    def generate(self, prompts: list[str]) -> list[dict[str, Any]]:
        import torch

        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = self.model.generate(
                **enc,
                max_new_tokens=self.max_new_tokens,
                **self.sampling,
                eos_token_id=self.stop_ids or None,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        prompt_len = enc["input_ids"].shape[1]
        rows = []
        for i, seq in enumerate(out[:, prompt_len:].tolist()):
            n_input = int(enc["attention_mask"][i].sum())
            rows.append({**finish_text(self.tokenizer, seq, self.stop_ids, self.stop), "num_input_tokens": n_input, "error": ""})
        return rows


def finish_text(tokenizer, new_ids: list[int], stop_ids: list[int], stop: list[str]) -> dict[str, Any]:
    """Generated ids -> text cut at the first stop token or stop string, and why it ended."""
    finish = "length"
    for j, tid in enumerate(new_ids):
        if tid in stop_ids:
            new_ids, finish = new_ids[:j], "stop"
            break
    # Keep special tokens: the Decision Token (<|use_tool|>...) is what the decoder reads.
    text = tokenizer.decode(new_ids, skip_special_tokens=False)
    for s in stop:
        if s in text:
            text, finish = text[: text.index(s)], "stop"
    if tokenizer.pad_token:
        text = text.replace(tokenizer.pad_token, "")
    return {"generated_text": text, "finish_reason": finish, "num_generated_tokens": len(new_ids)}
