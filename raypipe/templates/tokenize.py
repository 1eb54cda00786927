"""Token ids and loss labels for one sample.

Each span of `render_spans` (a whole non-assistant turn; for an assistant turn its header,
its body with the closing ``<|im_end|>``, and the newline after it) is tokenized on its own
and the ids are concatenated, so the label mask follows span borders exactly. Every span
border sits next to a special token or a newline, which is why the concatenation equals the
tokenization of the whole text; that is checked for every sample, and a tokenizer for which
it does not hold (e.g. one that adds a prefix space to every call) is reported, not
silently mis-masked.
"""

from __future__ import annotations

import inspect
from typing import Any

from raypipe.errors import RaypipeError
from raypipe.schema import Sample
from raypipe.templates.errors import NothingToTrain
from raypipe.templates.formats import FormatConfig, format_name, get_format, special_tokens
from raypipe.templates.render import render_spans
from raypipe.templates.tokens import IGNORE_INDEX



class TokenizationDrift(ValueError):
    """Per-span tokens differ from the tokens of the full render (a row-level error)."""


def add_special_tokens(tokenizer: Any, fmt: FormatConfig | str) -> list[int]:
    """Add the format's special tokens that `tokenizer` does not already keep whole.

    Returns the ids newly added; the model's embeddings must then be resized (and the new
    rows trained, see docs/templates.md).
    """
    from tokenizers import AddedToken

    missing = [t for t in special_tokens(get_format(fmt)) if not _is_single_token(tokenizer, t)]
    if not missing:
        return []
    tokens = [AddedToken(t, special=True, normalized=False, single_word=False) for t in missing]
    # Registered as (extra) special tokens, not just added tokens, so they are saved as such and
    # decoders with skip_special_tokens=True (vLLM's default) drop them.
    if "replace_extra_special_tokens" in inspect.signature(tokenizer.add_special_tokens).parameters:
        tokenizer.add_special_tokens(
            {"extra_special_tokens": tokens}, replace_extra_special_tokens=False
        )
    else:  # transformers 4.x
        tokenizer.add_special_tokens(
            {"additional_special_tokens": tokens}, replace_additional_special_tokens=False
        )
    ids = [tokenizer.convert_tokens_to_ids(t) for t in missing]
    for token in missing:
        if not _is_single_token(tokenizer, token):
            raise RaypipeError(f"could not add {token!r} as a single token to the tokenizer")
    return ids


def _is_single_token(tokenizer: Any, token: str) -> bool:
    ids = _encode(tokenizer, token)
    return len(ids) == 1 and tokenizer.convert_tokens_to_ids(token) == ids[0]


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _encode_batch(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def check_tokenizer(tokenizer: Any, fmt: FormatConfig) -> None:
    """Fail early, naming the tokens, when the format's special tokens are not single tokens."""
    tokens = special_tokens(fmt)
    encoded = _encode_batch(tokenizer, tokens)
    missing = [
        t for t, ids in zip(tokens, encoded)
        if len(ids) != 1 or tokenizer.convert_tokens_to_ids(t) != ids[0]
    ]
    if missing:
        raise RaypipeError(
            f"tokenizer lacks the special tokens {missing}: call "
            "raypipe.templates.add_special_tokens(tokenizer, fmt) (and resize the embeddings)"
        )


def tokenize_sample(
    sample: Sample,
    tokenizer: Any,
    fmt: FormatConfig | str,
    train_on: str = "all",
    *,
    check: bool = True,
    first_turns: int | None = None,
) -> dict[str, list[int]]:
    """``{"input_ids": [...], "labels": [...]}`` with -100 on every untrained token.

    `train_on="all"` trains every assistant turn, `"last"` only the last one; `first_turns=k`
    further limits training to the first k assistant turns (the DPO term of a pair). Raises
    NothingToTrain (with a reason) when no token would be trained, TokenizationDrift when
    span-wise tokenization differs from the full render.
    """
    fmt = get_format(fmt)
    if train_on not in ("all", "last"):
        raise RaypipeError(f"train_on must be 'all' or 'last', got {train_on!r}")
    if check:
        check_tokenizer(tokenizer, fmt)
    spans = render_spans(sample.messages, sample.functions, fmt)
    num_turns = sum(1 for s in spans if s.trained)
    if num_turns == 0:
        raise NothingToTrain("no assistant turn to train on")
    # One batched call: the spans, then the whole text to check against.
    texts = [s.text for s in spans]
    *span_ids, full = _encode_batch(tokenizer, [*texts, "".join(texts)])
    input_ids: list[int] = []
    labels: list[int] = []
    for span, ids in zip(spans, span_ids):
        trained = span.trained and (train_on == "all" or span.turn == num_turns - 1)
        trained = trained and (first_turns is None or span.turn < first_turns)
        input_ids += ids
        labels += ids if trained else [IGNORE_INDEX] * len(ids)
    if full != input_ids:
        at = next((i for i, (a, b) in enumerate(zip(full, input_ids)) if a != b), min(len(full), len(input_ids)))
        raise TokenizationDrift(
            f"per-turn tokens differ from the full render at token {at} "
            f"({len(input_ids)} vs {len(full)} tokens); this tokenizer merges across turn borders"
        )
    if all(label == IGNORE_INDEX for label in labels):
        raise NothingToTrain("assistant turns render to no tokens")
    return {"input_ids": input_ids, "labels": labels}


def empty_target(sample: Sample, fmt: FormatConfig | str, train_on: str = "all") -> str | None:
    """Why a trained assistant turn of `sample` would teach the model to say nothing, or None.

    Without a Decision Token, an assistant turn with no content, calls or (rendered) reasoning
    renders as a bare ``<|im_end|>``: training on it teaches "answer with nothing". That is what
    the decision-only negatives (`meta.target == "decision_only"`, raypipe synth negatives) become
    under such a format; with the Decision Token the same turn trains ``<|answer|>``.
    """
    fmt = get_format(fmt)
    if fmt.decision_token:
        return None
    turns = [i for i, m in enumerate(sample.messages) if m.role == "assistant"]
    for i in turns if train_on == "all" else turns[-1:]:
        m = sample.messages[i]
        if m.content or m.tool_calls or (fmt.reasoning and m.reasoning):
            continue
        what = ("a decision-only negative (meta.target=decision_only)"
                if sample.meta.get("target") == "decision_only" else "an empty assistant turn")
        return (f"empty target: messages[{i}] is {what}; format {format_name(fmt)!r} has no Decision "
                "Token, so it would train the model to answer with nothing (use a Decision Token "
                "format such as tools-dt)")
    return None


class PairMismatch(ValueError):
    """The two trajectories of a DPO pair cannot be compared turn for turn (a row-level error)."""


def tokenize_pair(
    chosen: Sample, rejected: Sample, turn: int | None, tokenizer: Any, fmt: FormatConfig | str,
    *, check: bool = True,
) -> dict[str, list[int]]:
    """A multi-turn DPO pair as token ids and three label masks.

    `chosen_labels` trains every assistant turn of the positive trajectory (the SFT term);
    `chosen_dpo_labels` and `rejected_labels` cover the same assistant turns of both sides (the
    DPO term): those within the first min(len) messages, so a positive trajectory that goes on
    after the corrupted turn does not add its later turns to one side of the margin only. The
    two sides must share their functions and every message before `turn` (the first differing
    message).
    """
    fmt = get_format(fmt)
    n = min(len(chosen.messages), len(rejected.messages))
    same_until = turn if turn is not None and 0 <= turn <= n else n
    if chosen.functions != rejected.functions:
        raise PairMismatch("chosen and rejected offer different functions")
    for i in range(same_until):
        if chosen.messages[i].to_dict() != rejected.messages[i].to_dict():
            raise PairMismatch(f"chosen and rejected differ at messages[{i}], before turn {turn}")
    k_chosen = sum(1 for m in chosen.messages[:n] if m.role == "assistant")
    k_rejected = sum(1 for m in rejected.messages[:n] if m.role == "assistant")
    if k_chosen != k_rejected or k_chosen == 0:
        raise PairMismatch(
            f"the first {n} messages hold {k_chosen} assistant turn(s) in chosen and {k_rejected} in "
            "rejected; a DPO pair compares the same turns")
    full = tokenize_sample(chosen, tokenizer, fmt, "all", check=check)
    dpo = tokenize_sample(chosen, tokenizer, fmt, "all", check=False, first_turns=k_chosen)
    neg = tokenize_sample(rejected, tokenizer, fmt, "all", check=False, first_turns=k_chosen)
    return {
        "chosen_input_ids": full["input_ids"], "chosen_labels": full["labels"],
        "chosen_dpo_labels": dpo["labels"],
        "rejected_input_ids": neg["input_ids"], "rejected_labels": neg["labels"],
    }
