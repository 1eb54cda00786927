import copy
import json

import pytest

from raypipe.stages.translate import TranslateStage

from raypipe.schema import Message, Sample, ToolCall
from raypipe.synth import translate
from raypipe.synth.translate import check_translation, get_language

pytestmark = pytest.mark.unit

ZH = get_language("zh-TW")
FUNCS = [
    {"name": "send_email", "description": "Send an e-mail.",
     "parameters": {"type": "object", "properties": {
         "to": {"type": "string", "format": "email"},
         "subject": {"type": "string"},
         "body": {"type": "string"},
         "priority": {"type": "string", "enum": ["low", "high"]},
         "attachments": {"type": "array", "items": {"type": "string"}},
         "retries": {"type": "integer"},
         "options": {"type": "object", "properties": {"tone": {"type": "string"}, "urgent": {"type": "boolean"}}},
     }, "required": ["to", "body"]}},
]


def sample() -> Sample:
    return Sample(
        functions=FUNCS,
        messages=[
            Message("system", "You are a helpful assistant."),
            Message("user", "Email bob@example.com that the meeting moved to 3 pm on March 14, high priority."),
            Message("assistant", None, [ToolCall("send_email", {
                "to": "bob@example.com", "subject": "Meeting", "body": "The meeting moved to 3 pm on March 14.",
                "priority": "high", "attachments": ["agenda.pdf"], "retries": 2,
                "options": {"tone": "friendly and short", "urgent": True}}, id="call_1")],
                reasoning="The user wants send_email with priority high."),
            Message("tool", '{"status": "sent", "note": "Delivered to the inbox", "id": "m-42"}', name="send_email",
                    tool_call_id="call_1"),
            Message("assistant", "Done, the email to Bob was sent."),
        ],
    )


def good_answer(s: Sample) -> dict:
    """What a well-behaved teacher returns: free text translated, everything else as is."""
    turns = copy.deepcopy([translate.turn_payload(m) for m in s.messages])
    turns[0]["content"] = "你是一個樂於助人的助理。"
    turns[1]["content"] = "寄信給 bob@example.com，說會議改到 March 14 下午 3 點，高優先。"
    turns[2]["reasoning"] = "使用者要用 send_email，priority 設為 high。"
    args = turns[2]["tool_calls"][0]["arguments"]
    args["body"] = "會議改到 March 14 下午 3 點。"
    args["options"]["tone"] = "友善且簡短"
    turns[3]["content"] = '{"status": "sent", "note": "已送達收件匣", "id": "m-42"}'
    turns[4]["content"] = "完成，給 Bob 的信已寄出。"
    return {"messages": turns}


def test_good_translation_passes_and_applies_text_only():
    s = sample()
    ans = good_answer(s)
    assert check_translation(s, 0, 5, ans, ZH) == []
    out = translate.apply_translation(s, ans["messages"], ZH)
    assert out.functions == s.functions and out.lang == "zh-TW"
    assert out.meta["translated_from"] == "en"
    assert out.lineage[-1].stage == "synth_translate" and out.lineage[-1].parent_id == s.id
    call = out.messages[2].tool_calls[0]
    assert call.id == "call_1" and call.name == "send_email"
    assert call.arguments["body"] == "會議改到 March 14 下午 3 點。" and call.arguments["priority"] == "high"
    assert out.messages[3].tool_call_id == "call_1" and out.messages[3].name == "send_email"
    assert out.messages[2].reasoning.startswith("使用者")


def mutate(fn):
    s = sample()
    ans = good_answer(s)
    fn(ans["messages"])
    return check_translation(s, 0, 5, ans, ZH)


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda t: t.pop(), "expected 5 turns, got 4"),
        (lambda t: t[1].update(role="assistant"), "messages[1].role: must stay 'user'"),
        (lambda t: t[2]["tool_calls"][0].update(name="寄送郵件"), "function names are never translated"),
        (lambda t: t[2]["tool_calls"].append(copy.deepcopy(t[2]["tool_calls"][0])), "expected 1 call(s), got 2"),
        (lambda t: t[2]["tool_calls"][0]["arguments"].update(priority="高"), "arguments.priority: must stay exactly \"high\""),
        (lambda t: t[2]["tool_calls"][0]["arguments"].update(retries=3), "arguments.retries: must stay exactly 2"),
        (lambda t: t[2]["tool_calls"][0]["arguments"].update(retries="2"), "arguments.retries: must stay exactly 2"),
        (lambda t: t[2]["tool_calls"][0]["arguments"].update(to="鮑伯"), "arguments.to: must stay exactly"),
        (lambda t: t[2]["tool_calls"][0]["arguments"].update(subject="會議"), "arguments.subject: must stay exactly"),
        (lambda t: t[2]["tool_calls"][0]["arguments"].update(attachments=["議程.pdf"]), "attachments[0]: must stay exactly"),
        (lambda t: t[2]["tool_calls"][0]["arguments"]["options"].update(urgent="true"), "options.urgent: must stay exactly true"),
        (lambda t: t[2]["tool_calls"][0]["arguments"].update(正文="x"), "keys must stay exactly"),
        (lambda t: t[2]["tool_calls"][0]["arguments"].update(body="會議改期了"), "arguments.body: numbers 3, 14 must stay"),
        (lambda t: t[1].update(content="寄信給 bob@example.com，會議改到三月十四日下午三點。"), "messages[1].content: numbers 3, 14"),
        (lambda t: t[2].update(reasoning="使用者要寄信，優先權高。"), "function name 'send_email' must stay"),
        (lambda t: t[4].update(content="Done, the email to Bob was sent."), "not translated into Traditional Chinese"),
        (lambda t: t[4].update(content=""), "messages[4].content: missing translation"),
        (lambda t: t[2].update(content="好的"), "messages[2].content: must stay empty"),
        (lambda t: t[3].update(content="已送出"), "tool result was JSON and must stay valid JSON"),
        (lambda t: t[3].update(content='{"status": "已送出", "note": "x", "id": "m-42"}'), "content.status: must stay exactly"),
        (lambda t: t[3].update(name="寄信"), "messages[3].name: must stay 'send_email'"),
        (lambda t: t[4].update(tool_calls=[{"name": "send_email", "arguments": {}}]), "has no calls and must get none"),
    ],
)
def test_each_violation_is_reported(change, expected):
    problems = mutate(change)
    assert any(expected in p for p in problems), problems


def test_every_violation_is_returned_not_just_the_first():
    def many(t):
        t[2]["tool_calls"][0]["name"] = "x"
        t[2]["tool_calls"][0]["arguments"]["priority"] = "高"
        t[1]["role"] = "system"
    assert len(mutate(many)) == 3


def test_answer_shape_errors():
    s = sample()
    assert check_translation(s, 0, 5, ["a"], ZH) == ['the answer must be a JSON object {"messages": [...]}']
    assert check_translation(s, 0, 5, {"messages": ["x"] * 5}, ZH)[0] == "messages[0]: a turn must be a JSON object"


@pytest.mark.parametrize(
    "value, schema, free",
    [
        ("The meeting moved to Friday.", {"type": "string"}, True),
        ("Paris", {"type": "string"}, False),  # single words (names, codes) stay
        ("New York", {"type": "string", "enum": ["New York"]}, False),
        ("2024-05-01 10:00", {"type": "string"}, False),
        ("tomorrow morning", {"type": "string", "format": "date-time"}, False),
        ("https://example.com/a page", {"type": "string"}, False),
        ("/home/user/my file.txt", None, False),
    ],
)
def test_free_text_rule(value, schema, free):
    assert translate.is_free_text(value, schema) is free


def test_chunking_keeps_whole_turns_in_order_and_covers_everything():
    s = sample()
    sizes = [len(json.dumps(translate.turn_payload(m), ensure_ascii=False)) for m in s.messages]
    assert translate.chunk_turns(s.messages, 10**6) == [(0, 5)]
    chunks = translate.chunk_turns(s.messages, max(sizes))
    assert chunks[0][0] == 0 and chunks[-1][1] == 5 and len(chunks) > 1
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))
    for a, b in chunks:
        assert b - a == 1 or sum(sizes[a:b]) <= max(sizes)
    assert translate.chunk_turns(s.messages, 1) == [(i, i + 1) for i in range(5)]


def test_chunk_check_uses_absolute_turn_indices():
    s = sample()
    ans = good_answer(s)
    sub = {"messages": ans["messages"][3:5]}
    assert check_translation(s, 3, 5, sub, ZH) == []
    sub["messages"][1]["content"] = "Done, it was sent."
    assert check_translation(s, 3, 5, sub, ZH) == ["messages[4].content: not translated into Traditional Chinese (Taiwan)"]


def test_prompt_states_rules_shows_specs_for_reference_and_only_the_chunk():
    s = sample()
    msgs = translate.build_translate_messages(s, 3, 5, ZH)
    text = msgs[1]["content"]
    assert "Traditional Chinese (Taiwan)" in text and '{"messages":' in text
    assert "Never change function names, argument keys" in text
    assert '"high"' in text.split("Enum values that must stay unchanged:")[1].split("\n")[0]
    turns = json.loads(text.split("Turns to translate:\n```json\n")[1].split("```")[0])
    assert [t["role"] for t in turns] == ["tool", "assistant"]
    assert '"name": "send_email"' in text.split("Function definitions (reference only)")[1]


def test_languages():
    assert get_language("ja").script and get_language("fr").script is None
    assert get_language("vi", "Vietnamese").name == "Vietnamese"
    with pytest.raises(ValueError, match="unknown target language 'vi'"):
        get_language("vi")


def test_dry_run_requests_one_per_chunk_and_none_for_samples_already_translated():
    cfg = translate.TranslateConfig(inputs=["x"], out="o", max_chunk_chars=10**6)
    requests_of = (lambda s: TranslateStage(cfg).requests(s.to_row()))
    s = sample()
    assert len(requests_of(s)) == 1
    small = translate.TranslateConfig(inputs=["x"], out="o", max_chunk_chars=1)
    assert len((lambda s: TranslateStage(small).requests(s.to_row()))(s)) == len(s.messages)
    s.lang = "zh-TW"
    assert requests_of(s) == []
