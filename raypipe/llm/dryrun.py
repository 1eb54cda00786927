"""`dry_run`: render every request of a stage and project its size and cost; call nothing."""

from __future__ import annotations

import json
import sys

from raypipe.llm.config import LLMConfig


def dry_run_report(inputs, *, llm: LLMConfig, build_messages, stage: str, tokenizer=None,
                   log=None) -> dict:
    """Prompt tokens are counted with `tokenizer` (anything with `.encode`) when given, else
    estimated as characters / 4. Completion tokens are projected at `llm.max_tokens` per
    request, an upper bound. Rows whose messages cannot be built are counted, not hidden."""
    rows = inputs.iter_rows() if hasattr(inputs, "iter_rows") else inputs
    requests = prompt_tokens = build_errors = 0
    example = None
    for row in rows:
        try:
            messages = build_messages(row)
        except (KeyError, ValueError, TypeError):
            build_errors += 1
            continue
        requests += 1
        example = example or messages
        text = "\n".join(str(m.get("content") or "") for m in messages)
        prompt_tokens += len(tokenizer.encode(text)) if tokenizer is not None else max(1, len(text) // 4)
    completion_tokens = requests * llm.max_tokens
    report = {
        "stage": stage, "dry_run": True, "model": llm.model, "requests": requests,
        "build_errors": build_errors, "estimated_prompt_tokens": prompt_tokens,
        "max_completion_tokens": completion_tokens,
        "token_estimate": "tokenizer" if tokenizer is not None else "chars/4",
        "projected_cost_usd": round(llm.cost_usd(prompt_tokens, completion_tokens), 6),
    }
    out = log or (lambda m: print(m, file=sys.stderr, flush=True))
    out(f"[{stage}] dry run: {requests} requests, ~{prompt_tokens} prompt tokens, "
        f"<= {completion_tokens} completion tokens, projected <= ${report['projected_cost_usd']:.4f} "
        f"({llm.model}); nothing was sent")
    if example is not None:
        out(f"[{stage}] first request: {json.dumps(example, ensure_ascii=False)[:2000]}")
    return report
