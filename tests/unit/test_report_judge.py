import json

import pytest

from raypipe.errors import RaypipeError
from raypipe.eval.judge import (
    build_judge_messages,
    extract_rating,
    judge_rows,
    load_answers,
    load_questions,
    parse_judgment,
    summarize_judgments,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text,expected", [
    ("Clear and correct.\nRating: [[8]]", 8.0),
    ("Rating: [[ 7.5 ]]", 7.5),
    ("Rating: [[10]]", 10.0),
    ("first [[6]] ... restated: Rating: [[6]]", 6.0),  # the same value twice is one rating
])
def test_valid_ratings(text, expected):
    assert extract_rating(text) == (expected, None)


@pytest.mark.parametrize("text,reason", [
    ("A good answer, I would say 8/10.", "no [[rating]]"),
    ("Rating: [8]", "no [[rating]]"),  # single brackets are not guessed at
    ("", "no [[rating]]"),
    ("Rating: [[7]] or maybe [[8]]", "several different ratings: [[7]], [[8]]"),
    ("Rating: [[11]]", "rating 11 outside 1-10"),
    ("Rating: [[0]]", "rating 0 outside 1-10"),
    ("Rating: [[-3]]", "rating -3 outside 1-10"),
])
def test_unusable_ratings_are_recorded_not_guessed(text, reason):
    rating, why = extract_rating(text)
    assert rating is None
    assert reason in why


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_rows_per_turn_carry_the_dialog_so_far(tmp_path):
    q = _write(tmp_path / "q.jsonl", [
        {"question_id": 81, "category": "writing", "turns": ["Write a poem.", "Now make it rhyme."]},
        {"question_id": 111, "category": "math", "turns": ["2+2?"], "reference": ["4"]},
    ])
    a = _write(tmp_path / "a.jsonl", [
        {"question_id": 81, "choices": [{"index": 0, "turns": ["Roses...", "Roses red..."]}]},
        {"question_id": 111, "turns": ["5"]},
    ])
    rows = judge_rows(load_questions(q), load_answers(a))
    assert [r["id"] for r in rows] == ["81/turn1", "81/turn2", "111/turn1"]
    second = rows[1]
    assert second["questions"] == ["Write a poem.", "Now make it rhyme."]
    assert second["answers"] == ["Roses...", "Roses red..."]
    user = build_judge_messages(second)[1]["content"]
    assert "ONLY the assistant's reply in turn 2" in user
    assert "Roses..." in user and "Roses red..." in user
    assert "Reference" not in user
    math_user = build_judge_messages(rows[2])[1]["content"]
    assert "Reference answer for turn 1 ===\n4" in math_user
    assert "[[" in math_user  # the output rule asks for the [[rating]] form


def test_missing_answer_turn_is_an_error(tmp_path):
    q = _write(tmp_path / "q.jsonl", [{"question_id": 1, "category": "x", "turns": ["a", "b"]}])
    a = _write(tmp_path / "a.jsonl", [{"question_id": 1, "turns": ["only one"]}])
    with pytest.raises(RaypipeError, match="question_id '1'"):
        judge_rows(load_questions(q), load_answers(a))


def test_bad_question_file_names_every_line(tmp_path):
    q = _write(tmp_path / "q.jsonl", [
        {"question_id": 1, "turns": []},
        {"category": "x", "turns": ["a"]},
        {"question_id": 3, "turns": ["ok"], "reference": "not a list"},
    ])
    with pytest.raises(RaypipeError) as err:
        load_questions(q)
    msg = str(err.value)
    assert "q.jsonl:1: turns" in msg and "q.jsonl:2: question_id" in msg and "q.jsonl:3: reference" in msg


def test_summary_averages_rated_turns_and_lists_the_rest():
    row = {"id": "", "question_id": "", "category": "", "turn": 1}
    judged = [
        parse_judgment({**row, "id": "1/turn1", "question_id": "1", "category": "writing"}, "ok [[8]]"),
        parse_judgment({**row, "id": "1/turn2", "question_id": "1", "category": "writing", "turn": 2}, "[[6]]"),
        parse_judgment({**row, "id": "2/turn1", "question_id": "2", "category": "math"}, "no score"),
    ]
    rejected = [{"id": "3/turn1", "reason": "HTTP 500"}, {"id": "1/turn1", "reason": "old failure, retried"}]
    s = summarize_judgments(judged, rejected, expected=4)
    assert s["score"] == pytest.approx(7.0)
    assert s["rated"] == 2 and s["judgments"] == 4
    assert s["unrated"] == [{"id": "2/turn1", "reason": "no [[rating]] in the judgment"}]
    assert s["rejected"] == [{"id": "3/turn1", "reason": "HTTP 500"}]
    assert s["categories"]["writing"] == {"score": 7.0, "rated": 2}
    assert s["turns"]["2"]["score"] == 6.0
