"""Property: render(sample) then parse every assistant turn gives back its calls, in every format."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raypipe.schema import Message, Sample, ToolCall
from raypipe.templates import PRESETS, get_format, parse_completion, render

pytestmark = pytest.mark.unit

# Cheap strategies (sampled names, short texts) keep 1000 examples within seconds.
IDENT = st.sampled_from(["a", "x1", "_p", "City", "lower_limit", "città", "名前", "A_B_9", "q"])
FUNC_NAME = st.lists(IDENT, min_size=1, max_size=2).map(".".join)
# Any unicode except surrogates (not encodable) and the template's own special tokens.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=8).filter(
    lambda s: "<|" not in s and "<think>" not in s and "</think>" not in s
)
SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
    | st.sampled_from(['say "hi"', "it's", "back\\slash", "new\nline", "台北 🌧", "-5", "[f(a=1)]"])
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=5,
)
CALL = st.builds(ToolCall, name=FUNC_NAME, arguments=st.dictionaries(IDENT, VALUE, max_size=3))
PLAIN = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="<[`"), max_size=8)


@st.composite
def samples(draw):
    functions = [{"name": n, "parameters": {"type": "object", "properties": {}}} for n in draw(st.lists(FUNC_NAME, max_size=1))]
    messages = [Message("user", draw(PLAIN))]
    for _ in range(draw(st.integers(1, 2))):
        calls = draw(st.lists(CALL, min_size=1, max_size=2))
        reasoning = draw(st.none() | PLAIN.filter(lambda s: s.strip() == s))
        content = draw(st.none() | PLAIN.filter(lambda s: s.strip() == s))
        messages.append(Message("assistant", content, tool_calls=calls, reasoning=reasoning))
        messages.append(Message("tool", draw(PLAIN)))
    messages.append(Message("assistant", draw(PLAIN).strip()))
    return Sample(functions=functions, messages=messages)


def assistant_completions(text: str) -> list[str]:
    """What the model generated in each assistant turn of a rendered conversation."""
    parts = text.split("<|im_start|>assistant\n")[1:]
    return [p.split("<|im_end|>")[0] + "<|im_end|>" for p in parts]


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sample=samples(), name=st.sampled_from(sorted(PRESETS)))
def test_render_then_parse_gives_back_the_calls(sample, name):
    fmt = get_format(name)
    turns = [m for m in sample.messages if m.role == "assistant"]
    completions = assistant_completions(render(sample, fmt))
    assert len(completions) == len(turns)
    for message, completion in zip(turns, completions):
        parsed = parse_completion(completion, fmt)
        assert [(c.name, c.arguments) for c in parsed.calls] == [
            (c.name, c.arguments) for c in message.tool_calls
        ]
        if fmt.decision_token:
            assert parsed.decision == ("use_tool" if message.tool_calls else "answer")
        if fmt.reasoning and message.tool_calls:
            assert parsed.reasoning == (message.reasoning or None)  # "" renders no block
        assert parsed.content == (message.content if not message.tool_calls else message.content or None)


@pytest.fixture(scope="module")
def chat_tokenizer():
    from raypipe.tiny import make_tiny_tokenizer

    return make_tiny_tokenizer(["hello world"] * 3, vocab_size=280)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(sample=samples(), name=st.sampled_from(sorted(PRESETS)))
def test_jinja_twin_renders_generated_samples_identically(chat_tokenizer, sample, name):
    from raypipe.templates import chat_template, to_chat_messages

    messages, tools = to_chat_messages(sample)
    text = chat_tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=False, chat_template=chat_template(name)
    )
    assert text == render(sample, name)
