"""Keep the API key out of everything raypipe writes: logs, rejects, caches, outputs, errors.

An endpoint may echo the key (an error body quoting the Authorization header, a misbehaving
proxy inside an answer), and a message may be cut so that only part of the key is left. So not
only the whole key is replaced but any run of 8 or more characters that also occurs in the key.
"""

from __future__ import annotations

FRAGMENT = 8  # shortest piece of the key that is redacted on its own
MASK = "***"


def redact(text: str, secret: str | None) -> str:
    """`text` with every run of >= FRAGMENT characters that is a substring of `secret` masked."""
    if not text or not secret or len(secret) < 4:
        return text
    if len(secret) < FRAGMENT:  # a short key: only whole occurrences
        return text.replace(secret, MASK)
    grams = {secret[i:i + FRAGMENT] for i in range(len(secret) - FRAGMENT + 1)}
    hits = [i for i in range(len(text) - FRAGMENT + 1) if text[i:i + FRAGMENT] in grams]
    if not hits:
        return text
    # Merge the windows into maximal masked spans.
    spans: list[list[int]] = []
    for i in hits:
        if spans and i <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], i + FRAGMENT)
        else:
            spans.append([i, i + FRAGMENT])
    pieces, pos = [], 0
    for start, end in spans:
        pieces.append(text[pos:start])
        pieces.append(MASK)
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)


def redact_obj(value, secret: str | None):
    """`redact` applied to every string inside a JSON-like value."""
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, list):
        return [redact_obj(v, secret) for v in value]
    if isinstance(value, dict):
        return {k: redact_obj(v, secret) for k, v in value.items()}
    return value
