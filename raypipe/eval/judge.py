"""MT-Bench-style single-answer grading with an LLM judge (the paper's instruction-following score).

Inputs are user-provided (no question file ships with raypipe):

- questions: JSONL in MT-Bench's layout, `{"question_id", "category", "turns": [str, ...]}`,
  optionally `"reference": [str, ...]` (one reference answer per turn; math/reasoning/coding
  questions are then graded against it);
- answers: JSONL, FastChat's model-answer layout `{"question_id", "choices": [{"turns": [...]}]}`
  or the flat `{"question_id", "turns": [...]}`.

Each turn of each question is one judge call (a row of the LLM engine's stage, so caching,
rate limits, retries and resume come from there). Turn t shows the judge the whole dialog up
to turn t and asks for a grade of the t-th reply only. The judge must end with
`Rating: [[x]]`; a judgment without exactly one rating value in 1..10 is recorded with the
reason and left out of the mean, never guessed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from raypipe.errors import RaypipeError
from raypipe.eval.bfcl_data import read_jsonl

RATING_RE = re.compile(r"\[\[\s*([+-]?\d+(?:\.\d+)?)\s*\]\]")
MIN_RATING, MAX_RATING = 1.0, 10.0

JUDGE_SYSTEM = (
    "You evaluate replies written by AI assistants. You are impartial and strict: the length "
    "of a reply, its tone and the order of presentation never earn points by themselves."
)

CRITERIA = (
    "Weigh how well the reply follows the user's instructions, and its helpfulness, relevance, "
    "accuracy, depth, creativity and level of detail."
)
REFERENCE_CRITERIA = (
    "A reference answer is given. Check the reply's correctness against it first: a reply "
    "whose result contradicts the reference is wrong however well it is written."
)
OUTPUT_RULE = (
    "Write a short justification first. Then, on the last line, give your score from 1 to 10 "
    "in exactly this form: Rating: [[7]]"
)


def extract_rating(text: str) -> tuple[float | None, str | None]:
    """(rating, None) when the judgment holds one rating value in 1..10, else (None, reason)."""
    values = [float(m) for m in RATING_RE.findall(text or "")]
    if not values:
        return None, "no [[rating]] in the judgment"
    if len(set(values)) > 1:
        shown = ", ".join(f"[[{v:g}]]" for v in values)
        return None, f"several different ratings: {shown}"
    value = values[0]
    if not MIN_RATING <= value <= MAX_RATING:
        return None, f"rating {value:g} outside {MIN_RATING:g}-{MAX_RATING:g}"
    return value, None


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(t, str) and t.strip() for t in value)


def load_questions(path: str | Path) -> list[dict[str, Any]]:
    questions, problems, seen = [], [], set()
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        if "question_id" not in row:
            problems.append(f"{where}: question_id: missing")
            continue
        qid = str(row["question_id"])
        if qid in seen:
            problems.append(f"{where}: question_id: {qid!r} appears twice")
        seen.add(qid)
        if not _str_list(row.get("turns")):
            problems.append(f"{where}: turns: expected a non-empty list of non-empty strings")
            continue
        ref = row.get("reference")
        if ref is not None and not (isinstance(ref, list) and all(isinstance(r, str) for r in ref)):
            problems.append(f"{where}: reference: expected a list of strings")
            continue
        questions.append({"question_id": qid, "category": str(row.get("category") or "general"),
                          "turns": row["turns"], "reference": ref or []})
    if problems:
        raise RaypipeError("\n".join(problems))
    if not questions:
        raise RaypipeError(f"{path}: no questions")
    return questions


def load_answers(path: str | Path) -> dict[str, list[str]]:
    answers: dict[str, list[str]] = {}
    for lineno, row in read_jsonl(path):
        turns = row.get("turns")
        if turns is None and isinstance(row.get("choices"), list) and row["choices"]:
            turns = row["choices"][0].get("turns")
        if "question_id" not in row or not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
            raise RaypipeError(f"{path}:{lineno}: needs question_id and turns (or choices[0].turns) as strings")
        answers[str(row["question_id"])] = turns
    return answers


def judge_rows(questions: list[dict], answers: dict[str, list[str]]) -> list[dict[str, Any]]:
    """One row per (question, turn). Every question needs an answer for each of its turns."""
    missing = [q["question_id"] for q in questions if len(answers.get(q["question_id"], [])) < len(q["turns"])]
    if missing:
        raise RaypipeError(
            f"{len(missing)} question(s) lack an answer for every turn (e.g. question_id {missing[0]!r})"
        )
    rows = []
    for q in questions:
        for t in range(len(q["turns"])):
            rows.append({
                "id": f"{q['question_id']}/turn{t + 1}",
                "question_id": q["question_id"],
                "category": q["category"],
                "turn": t + 1,
                "questions": q["turns"][: t + 1],
                "answers": answers[q["question_id"]][: t + 1],
                "reference": q["reference"][t] if t < len(q["reference"]) else "",
            })
    return rows


def build_judge_messages(row: dict[str, Any]) -> list[dict[str, str]]:
    questions, answers, turn = list(row["questions"]), list(row["answers"]), int(row["turn"])
    parts = []
    if turn == 1:
        parts.append("Grade the assistant's reply to the user's question below.")
    else:
        parts.append(f"Below is a conversation of {turn} turns. Grade ONLY the assistant's reply in "
                     f"turn {turn}; the earlier turns are context.")
    parts.append(CRITERIA)
    if row.get("reference"):
        parts.append(REFERENCE_CRITERIA)
    parts.append(OUTPUT_RULE)
    dialog = []
    for i, (q, a) in enumerate(zip(questions, answers), 1):
        dialog.append(f"### Turn {i}\n[User]\n{q}\n\n[Assistant]\n{a}")
    body = "\n\n".join(parts) + "\n\n=== Conversation ===\n" + "\n\n".join(dialog) + "\n=== End ==="
    if row.get("reference"):
        body += f"\n\n=== Reference answer for turn {turn} ===\n{row['reference']}\n=== End ==="
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": body}]


def parse_judgment(row: dict[str, Any], text: str) -> dict[str, Any]:
    rating, reason = extract_rating(text)
    return {
        "id": row["id"], "question_id": row["question_id"], "category": row["category"],
        "turn": int(row["turn"]), "rating": rating, "rating_error": reason or "", "judgment": text,
    }


def judgment_schema():
    import pyarrow as pa

    return pa.schema([
        ("id", pa.string()), ("question_id", pa.string()), ("category", pa.string()),
        ("turn", pa.int32()), ("rating", pa.float64()), ("rating_error", pa.string()),
        ("judgment", pa.string()),
    ])


def summarize_judgments(judged: list[dict[str, Any]], rejected: list[dict[str, Any]], expected: int) -> dict:
    """MT-Bench score = mean of every rated turn (FastChat's single-grading average)."""
    judged = list({j["id"]: j for j in judged}.values())  # a resumed run may re-judge a row
    done = {j["id"] for j in judged}
    rejected = [r for r in rejected if r.get("id") not in done]  # retried and succeeded since
    rated = [j for j in judged if j.get("rating") is not None]
    unrated = [{"id": j["id"], "reason": j["rating_error"]} for j in judged if j.get("rating") is None]

    def mean(rows: list[dict]) -> float | None:
        return sum(r["rating"] for r in rows) / len(rows) if rows else None

    by_cat: dict[str, list[dict]] = {}
    by_turn: dict[str, list[dict]] = {}
    for j in rated:
        by_cat.setdefault(j["category"], []).append(j)
        by_turn.setdefault(str(j["turn"]), []).append(j)
    return {
        "score": mean(rated),
        "judgments": expected,
        "rated": len(rated),
        "unrated": unrated,
        "rejected": [{"id": r.get("id"), "reason": r.get("reason")} for r in rejected],
        "categories": {c: {"score": mean(rows), "rated": len(rows)} for c, rows in sorted(by_cat.items())},
        "turns": {t: {"score": mean(rows), "rated": len(rows)} for t, rows in sorted(by_turn.items())},
    }


def run_judge(questions_path: str | Path, answers_path: str | Path, llm: Any, out_dir: str | Path,
              model_name: str = "") -> dict[str, Any]:
    """Judge every turn through the LLM engine; writes `out_dir/MTBENCH.json` and returns it."""
    import pyarrow.parquet as pq

    from raypipe.llm import run_llm_stage

    out = Path(out_dir)
    rows = judge_rows(load_questions(questions_path), load_answers(answers_path))
    stage_summary = run_llm_stage(
        rows, llm=llm, build_messages=build_judge_messages, parse=parse_judgment,
        out_dir=str(out / "judgments"), stage="mtbench_judge", output_schema=judgment_schema(),
    )
    judged = _read_parquet_rows(out / "judgments" / "data", pq)
    rejected = _read_parquet_rows(out / "judgments" / "rejects", pq)
    summary = summarize_judgments(judged, rejected, expected=len(rows))
    summary["judge_model"] = getattr(llm, "model", "")
    summary["model"] = model_name
    summary["engine"] = {k: v for k, v in (stage_summary or {}).items() if isinstance(v, (int, float, str))}
    out.mkdir(parents=True, exist_ok=True)
    (out / "MTBENCH.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary


def _read_parquet_rows(folder: Path, pq) -> list[dict[str, Any]]:
    if not folder.exists():
        return []
    rows = []
    for f in sorted(folder.glob("*.parquet")):
        rows.extend(pq.read_table(f).to_pylist())
    return rows
