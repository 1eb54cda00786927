import json

import pytest

from raypipe.data import SAMPLES_JSONL, TOOLS_JSON
from raypipe.schema import Message, Sample, ToolCall
from raypipe.synth import negatives
from raypipe.synth.negatives import NegativeError, make_negative
from raypipe.validate import validate_sample

pytestmark = pytest.mark.unit


def spec(name):
    return {"name": name, "description": name, "parameters": {"type": "object", "properties": {}}}


POOL = [spec(n) for n in ["get_stock_price", "send_email", "find_doctor", "get_weather_alerts",
                          "calculate_bmi", "convert_units", "search_news"]]


def fc_sample(functions=("get_current_weather", "book_hotel", "get_airport_code"), called=("get_current_weather",)):
    return Sample(
        functions=[spec(f) for f in functions],
        messages=[
            Message("system", "Be helpful."),
            Message("user", "Weather in Taipei?"),
            Message("assistant", None, [ToolCall(c, {}) for c in called]),
            Message("tool", "{}", name=called[0]),
            Message("assistant", "Sunny."),
            Message("user", "Thanks, now book a hotel."),
            Message("assistant", None, [ToolCall("book_hotel", {})]),
        ],
        source="fc",
        meta={"kind": "x"},
    )


def names(s):
    return [f["name"] for f in s.functions]


def test_removes_called_functions_keeps_others_and_targets_decision_token_only():
    s = fc_sample()
    neg = make_negative(s, POOL, min_functions=2)
    assert names(neg) == ["book_hotel", "get_airport_code"]
    assert [m.role for m in neg.messages] == ["system", "user", "assistant"]
    target = neg.messages[-1]
    assert target.content == "" and target.tool_calls == [] and target.reasoning is None
    assert neg.meta["target"] == negatives.DECISION_ONLY and neg.meta["kind"] == "x"
    assert neg.meta["negative"] == {"removed": ["get_current_weather"], "lookalikes_removed": [], "distractors": []}
    assert neg.lineage[-1].stage == "synth_negatives" and neg.lineage[-1].parent_id == s.id
    assert neg.source == "fc" and validate_sample(neg) == []


def test_adds_seeded_distractors_when_too_few_remain_never_lookalikes():
    s = fc_sample(functions=("get_current_weather",))
    neg = make_negative(s, POOL, seed=3, min_functions=3)
    added = neg.meta["negative"]["distractors"]
    assert len(added) == 3 and names(neg) and set(names(neg)) == set(added)
    assert "get_weather_alerts" not in added  # shares most of its name with the removed function
    assert make_negative(s, POOL, seed=3, min_functions=3).functions == neg.functions  # deterministic
    others = {tuple(names(make_negative(s, POOL, seed=k, min_functions=3))) for k in range(8)}
    assert len(others) > 1  # and the seed matters


def test_distractors_limited_by_pool_and_never_duplicate_present_functions():
    s = fc_sample(functions=("get_current_weather", "send_email"))
    neg = make_negative(s, [spec("send_email"), spec("find_doctor")], min_functions=5)
    assert sorted(names(neg)) == ["find_doctor", "send_email"]


def test_lookalike_kept_functions_removed_by_default_but_can_be_kept():
    s = fc_sample(functions=("get_current_weather", "get_weather_forecast", "book_hotel"))
    neg = make_negative(s, POOL, min_functions=1)
    assert names(neg) == ["book_hotel"]
    assert neg.meta["negative"]["lookalikes_removed"] == ["get_weather_forecast"]
    kept = make_negative(s, POOL, min_functions=1, drop_lookalikes=False)
    assert names(kept) == ["get_weather_forecast", "book_hotel"]


def test_parallel_calls_all_removed_and_only_first_call_turn_used():
    s = fc_sample(functions=("get_current_weather", "get_airport_code", "book_hotel", "send_email"),
                  called=("get_current_weather", "get_airport_code"))
    neg = make_negative(s, POOL, min_functions=1)
    assert names(neg) == ["book_hotel", "send_email"]  # book_hotel is called later, after the cut
    assert neg.meta["negative"]["removed"] == ["get_current_weather", "get_airport_code"]


def test_rejects_samples_without_calls_with_reason():
    s = Sample(functions=[spec("a")], messages=[Message("user", "hi"), Message("assistant", "hello")])
    with pytest.raises(NegativeError, match="no assistant turn with tool calls"):
        make_negative(s, POOL)
    s2 = Sample(functions=[spec("a")], messages=[Message("system", "x"), Message("assistant", None, [ToolCall("a", {})])])
    with pytest.raises(NegativeError, match="no user turn"):
        make_negative(s2, POOL)


def test_looks_like():
    assert negatives.looks_like("weather_api.get_current_weather", "get_current_weather")
    assert negatives.looks_like("getWeatherForecast", "get_weather_forecast")
    assert not negatives.looks_like("get_stock_price", "get_current_weather")


def test_selected_is_seeded_and_close_to_fraction():
    ids = [f"id{i}" for i in range(2000)]
    chosen = [i for i in ids if negatives.selected(i, 7, 0.25)]
    assert 400 < len(chosen) < 600
    assert chosen == [i for i in ids if negatives.selected(i, 7, 0.25)]
    assert chosen != [i for i in ids if negatives.selected(i, 8, 0.25)]
    assert all(negatives.selected(i, 0, 1.0) for i in ids[:10])


def test_every_shipped_sample_with_a_call_gives_a_valid_negative():
    pool = json.loads(TOOLS_JSON.read_text())
    made = 0
    for line in SAMPLES_JSONL.read_text().splitlines():
        s = Sample.from_dict(json.loads(line))
        if negatives.first_call_turn(s) is None:
            continue
        neg = make_negative(s, pool, min_functions=2)
        assert validate_sample(neg) == [], s.id
        assert len(neg.functions) >= 2
        assert not set(neg.meta["negative"]["removed"]) & set(names(neg))
        made += 1
    assert made >= 30


def test_direct_answer_prompt_and_check():
    neg = make_negative(fc_sample(), POOL)
    msgs = negatives.build_answer_messages(neg)
    assert msgs[0]["role"] == "system" and "must not call any function" in msgs[0]["content"]
    assert "Your instructions for this conversation: Be helpful." in msgs[0]["content"]
    assert '"name": "book_hotel"' in msgs[0]["content"]
    assert msgs[1:] == [{"role": "user", "content": "Weather in Taipei?"}]
    removed = neg.meta["negative"]["removed"]
    assert negatives.check_direct_answer("I can't check live weather, but Taipei is usually warm.", neg, removed) == []
    assert negatives.check_direct_answer("  ", neg, removed) == ["the answer is empty"]
    assert any("calls 'get_current_weather'" in p for p in
               negatives.check_direct_answer("get_current_weather(location='Taipei')", neg, removed))
    assert negatives.check_direct_answer('{"name": "book_hotel", "arguments": {}}', neg, removed)
    assert negatives.check_direct_answer("<|use_tool|>[x()]", neg, removed)
    out = negatives.with_direct_answer(neg, " It is usually warm. ")
    assert out.messages[-1].content == "It is usually warm." and out.meta["target"] == negatives.DIRECT_ANSWER
    assert out.lineage == neg.lineage and out.id != neg.id and validate_sample(out) == []
