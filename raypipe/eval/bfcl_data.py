"""Load a BFCL test set (V1 / zh-TW layout or V3/V4 layout) into one internal form.

V1 / zh-TW (``shared/benchmarks/bfcl-zhtw/data``)::

    DIR/en/gorilla_openfunctions_v1_test_<category>.json       question: a string
    DIR/zhtw/gorilla_openfunctions_v1_test_<category>.json     function: a spec or a list of specs
    DIR/possible_answer/gorilla_openfunctions_v1_test_<category>.json
        ground_truth: {key: {param: [acceptable values]}}  (keys of parallel calls carry a suffix)

V3/V4 (upstream gorilla ``bfcl_eval/data``)::

    DIR/BFCL_v4_simple_python.json (v3: BFCL_v3_simple.json), BFCL_v4_multiple.json,
    BFCL_v4_parallel.json, BFCL_v4_parallel_multiple.json, BFCL_v4_irrelevance.json
        question: [[{role, content}, ...], ...] (turns of messages), function: a list of specs
    DIR/possible_answer/BFCL_v4_<category>.json
        ground_truth: [{func_name: {param: [acceptable values]}}, ...]

Both become `BfclItem`s with the five categories of the paper's tables. The ground truth is
always a list of single-key dicts ``[{key: {param: [values]}}]`` in the file's order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from raypipe.errors import RaypipeError

CATEGORIES = (
    "simple",
    "multiple_function",
    "parallel_function",
    "parallel_multiple_function",
    "relevance",
)
AST_CATEGORIES = CATEGORIES[:4]
LANGS = ("en", "zhtw")

V1_PREFIX = "gorilla_openfunctions_v1_test_"
# Upstream V3/V4 file stems of each category, most recent name first.
V3_NAMES = {
    "simple": ("simple_python", "simple"),
    "multiple_function": ("multiple",),
    "parallel_function": ("parallel",),
    "parallel_multiple_function": ("parallel_multiple",),
    "relevance": ("irrelevance",),
}


@dataclass
class BfclItem:
    id: str
    category: str  # one of CATEGORIES
    question: list[dict]  # chat messages, all turns flattened (the five categories are single-turn)
    functions: list[dict]  # function specs (BFCL type names: dict, integer, float, ...)
    ground_truth: list[dict] | None  # [{key: {param: [values]}}], None for relevance
    # Which reference checker's rules apply: "v1" (the zh-TW / BFCL V1 checker: spec of a key =
    # first spec whose name is contained in it; dicts need as many keys as the answer) or "v3"
    # (upstream bfcl_eval, for V3/V4 data: exact names; dict keys may be omitted when optional).
    rules: str = "v1"
    source: str = ""  # file the question came from

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "category": self.category,
            "question": self.question,
            "functions": self.functions,
            "ground_truth": self.ground_truth,
            "rules": self.rules,
            "source": self.source,
        }


def load_bfcl(data_dir, lang: str = "en", categories: Iterable[str] | None = None) -> list[BfclItem]:
    """All items of `categories` (default: every category with a file) from `data_dir`.

    `data_dir` holds ``en/``, ``zhtw/`` and ``possible_answer/`` (V1) or the ``BFCL_v3_*.json`` /
    ``BFCL_v4_*.json`` files (V3/V4; `lang` then selects ``data_dir/lang`` when it exists).
    Raises RaypipeError naming the file and line of anything malformed.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise RaypipeError(f"BFCL data directory {root} does not exist")
    wanted = _check_categories(categories)
    layout, files = find_question_files(root, lang)
    missing = [c for c in (wanted or []) if c not in files]
    if missing:
        raise RaypipeError(
            f"{root} ({layout} layout, lang {lang}) has no question file for {', '.join(missing)}"
        )
    items: list[BfclItem] = []
    for category in wanted or [c for c in CATEGORIES if c in files]:
        question_file = files[category]
        if layout == "v1":
            items += _load_v1(root, question_file, category)
        else:
            items += _load_v3(question_file, category)
    return items


def find_question_files(root: Path, lang: str) -> tuple[str, dict[str, Path]]:
    """("v1" | "v3" | "v4", {category: question file}) for a data directory."""
    v1_dir = root / lang
    v1 = {c: v1_dir / f"{V1_PREFIX}{c}.json" for c in CATEGORIES}
    v1 = {c: p for c, p in v1.items() if p.is_file()}
    if v1:
        return "v1", v1
    if lang not in LANGS:
        raise RaypipeError(f"unknown language {lang!r}: expected one of {', '.join(LANGS)}")
    search = root / lang if (root / lang).is_dir() else root
    for version in ("v4", "v3"):
        found = {}
        for category, stems in V3_NAMES.items():
            for stem in stems:
                path = search / f"BFCL_{version}_{stem}.json"
                if path.is_file():
                    found[category] = path
                    break
        if found:
            return version, found
    raise RaypipeError(
        f"no BFCL question files under {root}: expected {lang}/{V1_PREFIX}<category>.json "
        f"(V1 / zh-TW layout) or BFCL_v3_*.json / BFCL_v4_*.json (V3/V4 layout)"
    )


def _check_categories(categories: Iterable[str] | None) -> list[str] | None:
    if categories is None:
        return None
    wanted = list(categories)
    unknown = [c for c in wanted if c not in CATEGORIES]
    if unknown:
        raise RaypipeError(
            f"unknown BFCL categories {unknown}: expected some of {', '.join(CATEGORIES)}"
        )
    return wanted


def read_jsonl(path: str | Path) -> list[tuple[int, dict]]:
    """(line number, object) for each non-empty line; a bad line raises naming file:line."""
    rows = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RaypipeError(f"{path}: file not found") from None
    except UnicodeDecodeError as err:
        raise RaypipeError(f"{path}: not UTF-8 text ({err})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise RaypipeError(f"{path}:{number}: invalid JSON: {err.msg}") from None
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
            raise RaypipeError(f"{path}:{number}: duplicate id {item_id!r}")
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


def _load_v1(root: Path, question_file: Path, category: str) -> list[BfclItem]:
    rows = read_jsonl(question_file)
    items = []
    for number, row in rows:
        item_id = _ids(question_file, number, row)
        question = _field(question_file, number, row, "question")
        if not isinstance(question, str):
            raise RaypipeError(f"{question_file}:{number}: V1 'question' must be a string")
        items.append(
            BfclItem(
                id=item_id,
                category=category,
                question=[{"role": "user", "content": question}],
                functions=_functions(question_file, number, row),
                ground_truth=None,
                rules="v1",
                source=str(question_file),
            )
        )
    _no_duplicates(question_file, rows)
    if category == "relevance":
        return items
    answer_file = root / "possible_answer" / question_file.name
    answers = _load_answers(answer_file, [it.id for it in items])
    for item in items:
        number, truth = answers[item.id]
        if not isinstance(truth, dict) or not truth:
            raise RaypipeError(f"{answer_file}:{number}: V1 ground_truth must be a non-empty object")
        # {key: params} in file order -> [{key: params}]: the order is what the checker walks.
        item.ground_truth = _check_calls(answer_file, number, [{k: v} for k, v in truth.items()])
    return items


def _load_v3(question_file: Path, category: str) -> list[BfclItem]:
    rows = read_jsonl(question_file)
    items = []
    for number, row in rows:
        item_id = _ids(question_file, number, row)
        turns = _field(question_file, number, row, "question")
        if not (isinstance(turns, list) and all(isinstance(t, list) for t in turns)):
            raise RaypipeError(f"{question_file}:{number}: 'question' must be a list of turns (lists of messages)")
        messages = [m for turn in turns for m in turn]
        for i, message in enumerate(messages):
            if not (isinstance(message, dict) and "role" in message and "content" in message):
                raise RaypipeError(f"{question_file}:{number}: question message {i} needs 'role' and 'content'")
        items.append(
            BfclItem(
                id=item_id,
                category=category,
                question=messages,
                functions=_functions(question_file, number, row),
                ground_truth=None,
                rules="v3",
                source=str(question_file),
            )
        )
    _no_duplicates(question_file, rows)
    if category == "relevance":
        return items
    answer_file = question_file.parent / "possible_answer" / question_file.name
    if not answer_file.is_file() and question_file.parent.parent.joinpath("possible_answer").is_dir():
        answer_file = question_file.parent.parent / "possible_answer" / question_file.name
    answers = _load_answers(answer_file, [it.id for it in items])
    for item in items:
        number, truth = answers[item.id]
        item.ground_truth = _check_calls(answer_file, number, truth)
    return items


def _no_duplicates(path: Path, rows: list[tuple[int, dict]]) -> None:
    seen: dict[str, int] = {}
    for number, row in rows:
        if row["id"] in seen:
            raise RaypipeError(f"{path}:{number}: duplicate id {row['id']!r} (first on line {seen[row['id']]})")
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
        if item.category == "simple":
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

    return find_spec(item.functions, key, item.rules)


def _one_value(value: Any) -> Any:
    """A concrete value from an acceptable one: nested dicts hold lists of acceptable values."""
    if isinstance(value, dict):
        return {k: _one_value(v[0]) if isinstance(v, list) and v else _one_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_one_value(v) for v in value]
    return value


_RESULT_FILE = re.compile(
    r"^(?:gorilla_openfunctions_v1_test_|BFCL_v[34]_)(?P<stem>[a-z_]+)_result\.json$"
)


def category_of_result_file(name: str) -> str | None:
    """The category of a result file name (V1 or V3/V4 naming), None for other files."""
    match = _RESULT_FILE.match(name)
    if not match:
        return None
    stem = match.group("stem")
    if stem in CATEGORIES:
        return stem
    for category, stems in V3_NAMES.items():
        if stem in stems:
            return category
    return None


def result_file_name(category: str) -> str:
    """The BFCL V1 convention: ``gorilla_openfunctions_v1_test_<category>_result.json``."""
    if category not in CATEGORIES:
        raise RaypipeError(f"unknown BFCL category {category!r}")
    return f"{V1_PREFIX}{category}_result.json"
