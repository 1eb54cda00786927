"""The API key never survives in text raypipe writes: whole, or as any 8+ character piece."""

import pytest

from raypipe.llm.redact import redact, redact_obj

pytestmark = pytest.mark.unit

KEY = "sk-proj-A1b2C3d4E5f6G7h8"


@pytest.mark.parametrize("text", [
    f"401: invalid key {KEY}",
    f"key ending ...{KEY[-12:]} refused",
    f"prefix {KEY[:9]} and suffix {KEY[-8:]}",
    f"Bearer {KEY}{KEY}",
])
def test_the_key_and_its_pieces_are_masked(text):
    out = redact(text, KEY)
    assert all(KEY[i:i + 8] not in out for i in range(len(KEY) - 7))
    assert "***" in out


def test_text_without_the_key_is_unchanged_and_short_pieces_stay():
    assert redact("nothing secret here, sk-proj", KEY) == "nothing secret here, sk-proj"
    assert redact("A1b2C3d", KEY) == "A1b2C3d"  # 7 characters: too short to identify the key
    assert redact("anything", None) == "anything"


def test_nested_values_are_redacted():
    assert redact_obj({"a": [f"x{KEY}"], "n": 3}, KEY) == {"a": ["x***"], "n": 3}
