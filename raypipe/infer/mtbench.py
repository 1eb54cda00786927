"""Answer MT-Bench-style multi-turn questions with the model under test.

Turn t is generated for all questions at once (one Ray Data pass per turn), with the
model's own earlier replies in the prompt, as MT-Bench prescribes. Prompts use raypipe's
template for the chosen format with no functions; the reply's text is what the judge sees
(a Decision Token or reasoning block is removed by the template's parser when it parses).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from raypipe.errors import RaypipeError
from raypipe.infer.config import GenerationConfig


def reply_text(text: str, fmt: Any) -> str:
    from raypipe.templates import ParseError, parse_completion

    try:
        parsed = parse_completion(text, fmt)
    except ParseError:
        return text.strip()
    if parsed.calls or parsed.content is None:
        return text.strip()  # a tool call where an answer was due: the judge sees it as is
    return parsed.content.strip()


def answers_complete(questions: list[dict[str, Any]], path: str | Path) -> bool:
    """True when `path` already answers every turn of every question (written by a past run)."""
    from raypipe.eval.judge import load_answers

    if not Path(path).exists():
        return False
    answers = load_answers(path)
    return all(len(answers.get(q["question_id"], [])) >= len(q["turns"]) for q in questions)


def generate_answers(questions: list[dict[str, Any]], cfg: GenerationConfig, format_name: str,
                     out_path: str | Path) -> dict[str, list[str]]:
    from raypipe.infer.run import generate
    from raypipe.templates import get_format, render_prompt

    fmt = get_format(format_name)
    answers: dict[str, list[str]] = {q["question_id"]: [] for q in questions}
    for t in range(max(len(q["turns"]) for q in questions)):
        rows = []
        for q in questions:
            if t >= len(q["turns"]):
                continue
            messages = []
            for i in range(t):
                messages += [{"role": "user", "content": q["turns"][i]},
                             {"role": "assistant", "content": answers[q["question_id"]][i]}]
            messages.append({"role": "user", "content": q["turns"][t]})
            rows.append({"id": q["question_id"], "prompt": render_prompt(messages, [], fmt)})
        failed = []
        for row in generate(rows, cfg):
            if row["error"]:
                failed.append(f"{row['id']}: {row['error']}")
                continue
            answers[row["id"]].append(reply_text(row["generated_text"], fmt))
        if failed:
            raise RaypipeError(f"turn {t + 1}: {len(failed)} answer(s) failed to generate (first: {failed[0]})")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for qid, turns in answers.items():
            f.write(json.dumps({"question_id": qid, "model_id": cfg.model, "choices": [{"index": 0, "turns": turns}]},
                               ensure_ascii=False) + "\n")
    tmp.replace(out_path)  # a half-written file never passes for a finished one
    return answers
