"""Translation of function-calling samples, after the seed's section 3.4 and Appendix B.

Only free text is sent to be translated and only free text may come back changed:

- function specs are never sent for rewriting; they are shown for reference and the
  sample keeps its original `functions` list, byte for byte;
- the teacher returns the turns as JSON; the validator checks the same turns with the same
  roles, the same calls in the same order with the same function names and argument keys,
  enum values, numbers, booleans, ids and identifier-like strings unchanged, function names
  and numbers mentioned in free text still present, and the text actually in the target
  language. Every violation is returned, so the re-ask can list them all;
- tool-call ids, tool-result names and call ids are copied from the original, never from
  the teacher's answer.

Long samples are cut into chunks of whole turns, each translated by its own request.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from raypipe.config import input_paths, output_path
from raypipe.llm.config import LLMConfig
from raypipe.llm.stage import RunOptions
from raypipe.schema import Message, Sample, ToolCall
from raypipe.synth.prompting import functions_json, name_mentioned, numbers_in, pretty_json, spec_names
from raypipe.validate import function_name, function_parameters

STAGE = "synth_translate"


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    script: str | None = None  # a regex character class the translated text must contain


LANGUAGES = {
    "zh-TW": Language("zh-TW", "Traditional Chinese (Taiwan)", r"[\u3400-\u4dbf\u4e00-\u9fff]"),
    "zh-CN": Language("zh-CN", "Simplified Chinese", r"[\u3400-\u4dbf\u4e00-\u9fff]"),
    "ja": Language("ja", "Japanese", r"[\u3040-\u30ff\u4e00-\u9fff]"),
    "ko": Language("ko", "Korean", r"[\uac00-\ud7af]"),
    "ru": Language("ru", "Russian", r"[\u0400-\u04ff]"),
    "ar": Language("ar", "Arabic", r"[\u0600-\u06ff]"),
    "th": Language("th", "Thai", r"[\u0e00-\u0e7f]"),
    "fr": Language("fr", "French"),
    "de": Language("de", "German"),
    "es": Language("es", "Spanish"),
}


def get_language(code: str, name: str | None = None) -> Language:
    if name:
        known = LANGUAGES.get(code)
        return Language(code, name, known.script if known else None)
    if code not in LANGUAGES:
        raise ValueError(
            f"unknown target language {code!r}: give its name too (known: {', '.join(LANGUAGES)})"
        )
    return LANGUAGES[code]


SYSTEM_PROMPT = (
    "You translate function-calling training data. You change natural-language text only; "
    "everything a program reads (function names, argument keys, enum values, numbers, ids, "
    "codes) stays exactly as it is. You always answer with one JSON object and nothing else."
)


def turn_payload(m: Message) -> dict[str, Any]:
    """What the teacher sees (and must give back) for one turn."""
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.name is not None:
        out["name"] = m.name
    if m.reasoning:
        out["reasoning"] = m.reasoning
    if m.tool_calls:
        out["tool_calls"] = [{"name": c.name, "arguments": c.arguments} for c in m.tool_calls]
    return out


def chunk_turns(messages: list[Message], max_chars: int) -> list[tuple[int, int]]:
    """Split into [start, end) ranges of whole turns whose JSON fits in `max_chars`.
    A single turn longer than that gets a chunk of its own."""
    chunks: list[tuple[int, int]] = []
    start, size = 0, 0
    for i, m in enumerate(messages):
        n = len(json.dumps(turn_payload(m), ensure_ascii=False))
        if i > start and size + n > max_chars:
            chunks.append((start, i))
            start, size = i, 0
        size += n
    if start < len(messages):
        chunks.append((start, len(messages)))
    return chunks


def build_translate_messages(
    sample: Sample, start: int, end: int, language: Language
) -> list[dict[str, str]]:
    """The chat request translating turns [start, end) of `sample` into `language`."""
    turns = [turn_payload(m) for m in sample.messages[start:end]]
    enums = sorted({json.dumps(v, ensure_ascii=False) for v in _enum_values(sample.functions)})
    lang = language.name
    rules = [
        f"Translate the conversation turns below into {lang}.",
        "",
        "The data is a JSON list of turns. Each turn has a `role` (system, user, assistant or "
        "tool) and a `content` (text, or null). A tool turn's `name` is the function whose "
        "result it carries. An assistant turn may have `reasoning` (text) and `tool_calls`, a "
        "list of calls, each with the function `name` and its `arguments` object.",
        "",
        "Rules:",
        f"1. Translate `content` and `reasoning` into natural, fluent {lang}.",
        "2. Return exactly the same turns in the same order with the same roles, and in each "
        "assistant turn exactly the same calls in the same order.",
        "3. Never change function names, argument keys, the `name` of tool turns, enum values, "
        "numbers, booleans, dates, times, ids, codes, URLs, e-mail addresses or file paths, "
        "wherever they appear. Keep function names and numbers written in text exactly as "
        "they are written.",
        "4. Translate an argument value only if it is free natural-language text (a message, a "
        "note, a description, a search phrase) and the translated value still works as the "
        "argument. Keep single words, names of people, places and products as they are.",
        "5. If a tool result is JSON, keep its structure and keys and translate only its "
        "free-text values.",
        "6. Function definitions are shown for reference only; do not output them.",
        "",
        "Answer with JSON: {\"messages\": [ ...the translated turns... ]}.",
        "",
        f"Function definitions (reference only):\n```json\n{functions_json(sample.functions)}\n```",
    ]
    if enums:
        rules.append(f"Enum values that must stay unchanged: {', '.join(enums)}")
    rules += ["", f"Turns to translate:\n```json\n{pretty_json(turns)}\n```"]
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "\n".join(rules)},
    ]


def _enum_values(schema: Any) -> list[Any]:
    found: list[Any] = []
    if isinstance(schema, dict):
        if isinstance(schema.get("enum"), list):
            found += schema["enum"]
        for v in schema.values():
            found += _enum_values(v)
    elif isinstance(schema, list):
        for v in schema:
            found += _enum_values(v)
    return found


# -- the validator ------------------------------------------------------------------------

_PATH_OR_URL = re.compile(r"^(https?://|www\.|/|~/|[A-Za-z]:\\)")
_FORMATS_KEPT = {"date", "date-time", "time", "email", "uri", "url", "uuid", "hostname", "ipv4", "ipv6"}


def is_free_text(value: str, schema: dict[str, Any] | None) -> bool:
    """May this string argument value be translated? Only multi-word natural text whose
    schema has no enum or format; everything identifier-like must stay byte-identical."""
    schema = schema if isinstance(schema, dict) else {}
    if isinstance(schema.get("enum"), list) or schema.get("format") in _FORMATS_KEPT:
        return False
    text = value.strip()
    if len(text.split()) < 2 or _PATH_OR_URL.search(text):
        return False
    return bool(re.search(r"[^\W\d_]{2,}", text))


def check_translation(
    sample: Sample, start: int, end: int, answer: Any, language: Language
) -> list[str]:
    """Every violation in a teacher's translation of turns [start, end); empty = accept."""
    if not isinstance(answer, dict) or not isinstance(answer.get("messages"), list):
        return ['the answer must be a JSON object {"messages": [...]}']
    original = sample.messages[start:end]
    got = answer["messages"]
    problems: list[str] = []
    if len(got) != len(original):
        problems.append(f"expected {len(original)} turns, got {len(got)}")
    specs = {function_name(f): f for f in sample.functions if isinstance(f, dict)}
    names = spec_names(sample.functions)
    for k, (orig, new) in enumerate(zip(original, got)):
        where = f"messages[{start + k}]"
        if not isinstance(new, dict):
            problems.append(f"{where}: a turn must be a JSON object")
            continue
        if new.get("role") != orig.role:
            problems.append(f"{where}.role: must stay {orig.role!r}, got {new.get('role')!r}")
        if orig.name is not None and new.get("name") != orig.name:
            problems.append(f"{where}.name: must stay {orig.name!r}, got {new.get('name')!r}")
        problems += _check_text(orig.content, new.get("content"), f"{where}.content", names, language,
                                data_ok=orig.role == "tool")
        problems += _check_text(orig.reasoning, new.get("reasoning"), f"{where}.reasoning", names, language)
        problems += _check_calls(orig.tool_calls, new.get("tool_calls"), f"{where}.tool_calls", specs)
    return problems


def _check_text(
    orig: str | None, new: Any, path: str, names: list[str], language: Language, data_ok: bool = False
) -> list[str]:
    if not (orig or "").strip():
        return [] if new in (None, "") else [f"{path}: must stay empty"]
    if not isinstance(new, str) or not new.strip():
        return [f"{path}: missing translation"]
    if data_ok:  # a tool result may be JSON: keep its structure, translate only free text in it
        try:
            orig_data = json.loads(orig)
        except ValueError:
            orig_data = None
        if isinstance(orig_data, (dict, list)):
            try:
                new_data = json.loads(new)
            except ValueError:
                return [f"{path}: the tool result was JSON and must stay valid JSON"]
            return _check_value(orig_data, new_data, None, path)
    problems = []
    for name in names:
        if name_mentioned(orig, name) and not name_mentioned(new, name):
            problems.append(f"{path}: function name {name!r} must stay written as is")
    missing = _missing_numbers(orig, new)
    if missing:
        problems.append(f"{path}: numbers {', '.join(missing)} must stay written as is")
    if language.script and len(re.findall(r"[A-Za-z]{2,}", orig)) >= 2 and not re.search(language.script, new):
        problems.append(f"{path}: not translated into {language.name}")
    return problems


def _missing_numbers(orig: str, new: str) -> list[str]:
    remaining = numbers_in(new)
    missing = []
    for n in numbers_in(orig):
        if n in remaining:
            remaining.remove(n)
        else:
            missing.append(n)
    return missing


def _check_calls(orig: list[ToolCall], new: Any, path: str, specs: dict[str, dict]) -> list[str]:
    if not orig:
        return [] if not new else [f"{path}: this turn has no calls and must get none"]
    if not isinstance(new, list):
        return [f"{path}: missing; the turn makes {len(orig)} call(s)"]
    problems = []
    if len(new) != len(orig):
        problems.append(f"{path}: expected {len(orig)} call(s), got {len(new)}")
    for j, (call, got) in enumerate(zip(orig, new)):
        cpath = f"{path}[{j}]"
        if not isinstance(got, dict):
            problems.append(f"{cpath}: a call must be a JSON object")
            continue
        if got.get("name") != call.name:
            problems.append(f"{cpath}.name: function names are never translated: must stay "
                            f"{call.name!r}, got {got.get('name')!r}")
        params = function_parameters(specs.get(call.name, {}))
        problems += _check_value(call.arguments, got.get("arguments"), params, f"{cpath}.arguments")
    return problems


def _check_value(orig: Any, new: Any, schema: dict[str, Any] | None, path: str) -> list[str]:
    schema = schema if isinstance(schema, dict) else {}
    if isinstance(orig, dict):
        if not isinstance(new, dict):
            return [f"{path}: must stay an object"]
        problems = []
        missing, extra = [k for k in orig if k not in new], [k for k in new if k not in orig]
        if missing or extra:
            problems.append(f"{path}: keys must stay exactly {list(orig)} (missing {missing}, "
                            f"unexpected {extra})")
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        for key in orig:
            if key in new:
                problems += _check_value(orig[key], new[key], props.get(key), f"{path}.{key}")
        return problems
    if isinstance(orig, list):
        if not isinstance(new, list) or len(new) != len(orig):
            return [f"{path}: must stay a list of {len(orig)} item(s)"]
        items = schema.get("items")
        return [p for i, (a, b) in enumerate(zip(orig, new)) for p in _check_value(a, b, items, f"{path}[{i}]")]
    if isinstance(orig, str) and is_free_text(orig, schema):
        if not isinstance(new, str) or not new.strip():
            return [f"{path}: must stay a non-empty string"]
        missing = _missing_numbers(orig, new)
        return [f"{path}: numbers {', '.join(missing)} must stay written as is"] if missing else []
    if type(new) is not type(orig) or new != orig:
        return [f"{path}: must stay exactly {json.dumps(orig, ensure_ascii=False)}, got "
                f"{json.dumps(new, ensure_ascii=False)}"]
    return []


def apply_translation(sample: Sample, translated: list[dict[str, Any]], language: Language) -> Sample:
    """The translated sample: text from the teacher, everything structural from the original."""
    messages = []
    for orig, new in zip(sample.messages, translated, strict=True):
        calls = [
            replace(c, arguments=got["arguments"])
            for c, got in zip(orig.tool_calls, new.get("tool_calls") or [], strict=True)
        ]
        messages.append(
            replace(
                orig,
                content=new.get("content") if (orig.content or "").strip() else orig.content,
                reasoning=new.get("reasoning") if orig.reasoning else orig.reasoning,
                tool_calls=calls,
            )
        )
    meta = {**sample.meta, "translated_from": sample.lang}
    return sample.derive(STAGE, messages=messages, lang=language.code, meta=meta)


# -- the stage ------------------------------------------------------------------------------


@dataclass
class TranslateConfig(RunOptions):
    inputs: list[str] = input_paths()
    out: str = output_path()
    llm: LLMConfig = field(default_factory=LLMConfig)
    target_lang: str = field(default="zh-TW", metadata={
        "flag": "--lang", "help": "target language code (written to the samples' lang)"})
    language_name: str | None = field(default=None, metadata={
        "flag": "--lang-name", "help": "target language name (needed for codes raypipe does not know)"})
    max_chunk_chars: int = field(default=6000, metadata={"help": "turns per request are cut at this JSON size"})

    def __post_init__(self) -> None:
        get_language(self.target_lang, self.language_name)  # unknown code: ValueError now
        if self.max_chunk_chars < 1:
            raise ValueError("max_chunk_chars must be >= 1")

    def language(self) -> Language:
        return get_language(self.target_lang, self.language_name)
