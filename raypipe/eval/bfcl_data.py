"""Load a BFCL test set (V1 / zh-TW layout or upstream V3/V4 layout) into one internal form.

V1 / zh-TW (``shared/benchmarks/bfcl-zhtw/data``)::

    DIR/en/gorilla_openfunctions_v1_test_<category>.json       question: a string
    DIR/zhtw/gorilla_openfunctions_v1_test_<category>.json     function: a spec or a list of specs
    DIR/possible_answer/gorilla_openfunctions_v1_test_<category>.json
        ground_truth: {key: {param: [acceptable values]}}  (keys of parallel calls carry a suffix)

V3/V4 (upstream gorilla ``bfcl_eval/data``; both versions may share one directory)::

    DIR/BFCL_v4_simple_python.json (v3: BFCL_v3_simple.json), BFCL_v4_live_multiple.json, ...
        question: [[{role, content}, ...], ...] (turns of messages), function: a list of specs
    DIR/possible_answer/BFCL_v4_<category>.json
        ground_truth: [{func_name: {param: [acceptable values]}}, ...]

The categories of each version are in `raypipe.eval.bfcl_categories`. Every item becomes a
`BfclItem`; its ground truth is always a list of single-key dicts ``[{key: {param: [values]}}]``
in the file's order (None for the irrelevance and relevance categories).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from raypipe.config import short_repr
from raypipe.errors import RaypipeError
from raypipe.eval.bfcl_categories import (
    DEFAULT_RULES,
    KINDS,
    RULES,
    V1_PREFIX,
    VERSIONS,
    is_ast_kind,
    question_file_name,
)
from raypipe.eval.bfcl_categories import result_file_name as _result_file_name

CATEGORIES = tuple(KINDS["v1"])  # the five V1 categories of the seed paper's tables
AST_CATEGORIES = CATEGORIES[:4]
LANGS = ("en", "zhtw")


@dataclass
class BfclItem:
    id: str
    category: str  # a category of `version` (bfcl_categories.KINDS)
    question: list[dict]  # chat messages, all turns flattened (single-turn categories)
    functions: list[dict]  # function specs (BFCL type names: dict, integer, float, ...)
    ground_truth: list[dict] | None  # [{key: {param: [values]}}], None for (ir)relevance
    # Which reference checker's rules apply: "v1" (the zh-TW / BFCL V1 checker and decoders) or
    # "upstream" (today's bfcl_eval, prompt mode, python). Defaults follow the data version.
    rules: str = "v1"
    source: str = ""  # file the question came from
    version: str = "v1"  # data version: v1, v3 or v4

    @property
    def kind(self) -> str:
        """simple, multiple, parallel, irrelevance or relevance: which check applies."""
        return KINDS[self.version][self.category]

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "category": self.category,
            "version": self.version,
            "question": self.question,
            "functions": self.functions,
            "ground_truth": self.ground_truth,
            "rules": self.rules,
            "source": self.source,
        }


def load_bfcl(data_dir, lang: str = "en", categories: Iterable[str] | None = None,
              version: str | None = None, rules: str | None = None) -> list[BfclItem]:
    """All items of `categories` (default: every category with a file) of one data version.

    `data_dir` holds ``en/``, ``zhtw/`` and ``possible_answer/`` (V1) or ``BFCL_v3_*.json`` /
    ``BFCL_v4_*.json`` files (V3/V4; `lang` then selects ``data_dir/lang`` when it exists).
    `version`: v1, v3 or v4 (default: V1 when its files exist, else V4, else V3). `rules`: v1 or
    upstream (default: v1 for V1 data, upstream for V3/V4). Raises RaypipeError naming the file
    and line of anything malformed.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise RaypipeError(f"BFCL data directory {root} does not exist")
    if rules is not None and rules not in RULES:
        raise RaypipeError(f"unknown rules {rules!r}: expected one of {', '.join(RULES)}")
    version, files = find_question_files(root, lang, version)
    wanted = _check_categories(categories, version)
    missing = [c for c in (wanted or []) if c not in files]
    if missing:
        raise RaypipeError(
            f"{root} ({version} layout, lang {lang}) has no question file for {', '.join(missing)} "
            f"(expected {', '.join(question_file_name(version, c) for c in missing)})"
        )
    items: list[BfclItem] = []
    for category in wanted or [c for c in KINDS[version] if c in files]:
        items += _load_file(root, files[category], version, category)
    for item in items:
        item.rules = rules or DEFAULT_RULES[version]
    return items


def find_question_files(root: Path, lang: str, version: str | None = None) -> tuple[str, dict[str, Path]]:
    """(version, {category: question file}) of a data directory."""
    if lang not in LANGS:
        raise RaypipeError(f"unknown language {lang!r}: expected one of {', '.join(LANGS)}")
    if version is not None and version not in VERSIONS:
        raise RaypipeError(f"unknown BFCL version {version!r}: expected one of {', '.join(VERSIONS)}")
    found = {v: question_files(root, lang, v) for v in VERSIONS if version in (None, v)}
    for candidate in ("v1", "v4", "v3"):
        if found.get(candidate):
            return candidate, found[candidate]
    if version is not None:
        raise RaypipeError(f"no BFCL {version} question files under {root} (lang {lang}): expected "
                           f"{question_file_name(version, next(iter(KINDS[version])))} and the like")
    raise RaypipeError(
        f"no BFCL question files under {root}: expected {lang}/{V1_PREFIX}<category>.json "
        f"(V1 / zh-TW layout) or BFCL_v3_<category>.json / BFCL_v4_<category>.json (V3/V4 layout)"
    )


def question_files(root: Path, lang: str, version: str) -> dict[str, Path]:
    """{category: question file} of one version (empty when it has none)."""
    search = root / lang if version == "v1" or (root / lang).is_dir() else root
    paths = {c: search / question_file_name(version, c) for c in KINDS[version]}
    return {c: p for c, p in paths.items() if p.is_file()}


def _check_categories(categories: Iterable[str] | None, version: str) -> list[str] | None:
    if categories is None:
        return None
    wanted = list(categories)
    unknown = [c for c in wanted if c not in KINDS[version]]
    if unknown:
        raise RaypipeError(
            f"unknown BFCL {version} categories {unknown}: expected some of {', '.join(KINDS[version])}"
        )
    return wanted


def read_jsonl(path: str | Path, on_too_deep=None) -> list[tuple[int, dict]]:
    """(line number, object) for each non-empty line; a bad line raises naming file:line.

    A leading UTF-8 byte-order mark is ignored. A line nested deeper than Python's JSON reader
    allows is an error, unless `on_too_deep(path, number, line) -> dict` stands in for it."""
    rows = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RaypipeError(f"{path}: file not found") from None
    except UnicodeDecodeError as err:
        raise RaypipeError(f"{path}: not UTF-8 text ({err})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise RaypipeError(f"{path}:{number}: invalid JSON: {err.msg}") from None
        except ValueError as err:  # e.g. a number of more than 4,300 digits
            raise RaypipeError(f"{path}:{number}: invalid JSON: {str(err)[:120]}") from None
        except RecursionError:
            if on_too_deep is None:
                raise RaypipeError(f"{path}:{number}: JSON nested too deeply to read") from None
            row = on_too_deep(Path(path), number, line)
        if not isinstance(row, dict):
            raise RaypipeError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        rows.append((number, row))
    return rows


def _field(path: Path, number: int, row: dict, name: str) -> Any:
    if name not in row:
        raise RaypipeError(f"{path}:{number}: missing field {name!r}")
    return row[name]


def _ids(path: Path, number: int, row: dict) -> str:
    item_id = _field(path, number, row, "id")
    if not isinstance(item_id, str) or not item_id:
        raise RaypipeError(f"{path}:{number}: field 'id' must be a non-empty string")
    return item_id


def _functions(path: Path, number: int, row: dict) -> list[dict]:
    value = _field(path, number, row, "function")
    specs = value if isinstance(value, list) else [value]
    for i, spec in enumerate(specs):
        ok = (
            isinstance(spec, dict)
            and isinstance(spec.get("name"), str)
            and isinstance(spec.get("parameters"), dict)
            and isinstance(spec["parameters"].get("properties", {}), dict)
        )
        if not ok:
            raise RaypipeError(
                f"{path}:{number}: function[{i}] must be an object with 'name' and "
                f"'parameters.properties'"
            )
    return specs


def _load_answers(path: Path, ids: list[str]) -> dict[str, tuple[int, Any]]:
    if not path.is_file():
        raise RaypipeError(f"possible answers file {path} is missing")
    answers: dict[str, tuple[int, Any]] = {}
    for number, row in read_jsonl(path):
        item_id = _ids(path, number, row)
        if item_id in answers:
            raise RaypipeError(f"{path}:{number}: duplicate id {short_repr(item_id)}")
        answers[item_id] = (number, _field(path, number, row, "ground_truth"))
    missing = [i for i in ids if i not in answers]
    extra = sorted(set(answers) - set(ids))
    if missing or extra:
        raise RaypipeError(
            f"{path}: ids do not match the questions: missing {_show(missing)}, extra {_show(extra)}"
        )
    return answers


def _show(ids: list[str], limit: int = 10) -> str:
    if not ids:
        return "none"
    more = f" (+{len(ids) - limit} more)" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more


def _check_calls(path: Path, number: int, calls: Any) -> list[dict]:
    """Validate ``[{key: {param: [values]}}]``."""
    if not isinstance(calls, list):
        raise RaypipeError(f"{path}:{number}: ground_truth must be a list of calls")
    for i, call in enumerate(calls):
        if not (isinstance(call, dict) and len(call) == 1):
            raise RaypipeError(f"{path}:{number}: ground_truth[{i}] must be {{name: {{param: [values]}}}}")
        (key, params), = call.items()
        if not isinstance(params, dict):
            # Kept as the reference keeps it: an expected call no output can match (the zh-TW
            # data has one, `"deck": [[], ""]` in parallel_multiple_function_179).
            continue
        for param, values in params.items():
            if not isinstance(values, list):
                raise RaypipeError(
                    f"{path}:{number}: ground_truth[{i}].{key}.{param} must be a list of acceptable values"
                )
    return calls


def _load_file(root: Path, question_file: Path, version: str, category: str) -> list[BfclItem]:
    rows = read_jsonl(question_file)
    items = []
    for number, row in rows:
        items.append(BfclItem(
            id=_ids(question_file, number, row),
            category=category,
            question=_question(question_file, number, row, version),
            functions=_functions(question_file, number, row),
            ground_truth=None,
            source=str(question_file),
            version=version,
        ))
    _no_duplicates(question_file, rows)
    if not is_ast_kind(KINDS[version][category]):
        return items  # (ir)relevance: the verdict needs no possible answer
    answer_file = _answer_file(root, question_file)
    answers = _load_answers(answer_file, [it.id for it in items])
    for item in items:
        number, truth = answers[item.id]
        if version == "v1":
            if not isinstance(truth, dict) or not truth:
                raise RaypipeError(f"{answer_file}:{number}: V1 ground_truth must be a non-empty object")
            # {key: params} in file order -> [{key: params}]: the order is what the checker walks.
            truth = [{k: v} for k, v in truth.items()]
        item.ground_truth = _check_calls(answer_file, number, truth)
    return items


def _question(path: Path, number: int, row: dict, version: str) -> list[dict]:
    question = _field(path, number, row, "question")
    if version == "v1":
        if not isinstance(question, str):
            raise RaypipeError(f"{path}:{number}: V1 'question' must be a string")
        return [{"role": "user", "content": question}]
    if not (isinstance(question, list) and all(isinstance(t, list) for t in question)):
        raise RaypipeError(f"{path}:{number}: 'question' must be a list of turns (lists of messages)")
    messages = [m for turn in question for m in turn]
    for i, message in enumerate(messages):
        if not (isinstance(message, dict) and "role" in message and "content" in message):
            raise RaypipeError(f"{path}:{number}: question message {i} needs 'role' and 'content'")
    return messages


def _answer_file(root: Path, question_file: Path) -> Path:
    """``possible_answer/<name>`` beside the question file, or under the data root (V1 keeps one
    folder for both languages)."""
    for folder in (question_file.parent, root):
        candidate = folder / "possible_answer" / question_file.name
        if candidate.is_file():
            return candidate
    return root / "possible_answer" / question_file.name


def _no_duplicates(path: Path, rows: list[tuple[int, dict]]) -> None:
    seen: dict[str, int] = {}
    for number, row in rows:
        if row["id"] in seen:
            raise RaypipeError(f"{path}:{number}: duplicate id {short_repr(row['id'])} (first on line {seen[row['id']]})")
        seen[row["id"]] = number


def reference_calls(item: BfclItem) -> list[tuple[str, dict]]:
    """One correct answer of an AST item: ``[(function name, arguments)]``.

    Takes the first acceptable value of each parameter and omits a parameter whose only
    acceptable value is ``""`` or that is optional and absent from the spec. Used as an oracle
    (a model that scores 100% wherever the possible answers allow it) and in tests.
    """
    if item.ground_truth is None:
        return []
    calls = []
    for answer in item.ground_truth:
        ((key, params),) = answer.items()
        if item.kind == "simple":
            spec = item.functions[0]
        else:
            spec = _spec_for(item, key)
        if spec is None or not isinstance(params, dict):
            continue  # a malformed possible answer: no call can match it
        properties = spec.get("parameters", {}).get("properties", {})
        arguments = {}
        for param, values in params.items():
            if "" in values and param not in properties:
                continue
            chosen = [v for v in values if v != ""]
            if chosen:
                arguments[param] = _one_value(chosen[0])
        calls.append((spec["name"], arguments))
    return calls


def _spec_for(item: BfclItem, key: str) -> dict | None:
    from raypipe.eval.checker import find_spec

    return find_spec(item.functions, key, exact=item.version != "v1")


def _one_value(value: Any) -> Any:
    """A concrete value from an acceptable one: nested dicts hold lists of acceptable values."""
    if isinstance(value, dict):
        return {k: _one_value(v[0]) if isinstance(v, list) and v else _one_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_one_value(v) for v in value]
    return value


def result_file_name(category: str, version: str = "v1") -> str:
    """Upstream's result file name: ``BFCL_v4_<category>_result.json``, or for V1 data
    ``gorilla_openfunctions_v1_test_<category>_result.json``."""
    try:
        return _result_file_name(version, category)
    except (KeyError, ValueError):
        raise RaypipeError(f"unknown BFCL {version} category {category!r}") from None
