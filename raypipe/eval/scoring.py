"""Score BFCL result files: per-category accuracy, the seed paper's and upstream's summary
figures, every failing item with its error type, 95% intervals, and the files left out.

`score_results(items, results, decoder)` scores one data version (a *suite*) and gives the
REPORT.json structure::

    {"suites": {"v4": {"version", "rules", "categories": {...}, "ast_summary", ...,
                       "upstream": {"non_live_ast", "live_ast", "irrelevance", "relevance",
                                    "overall"}, "error_counts"}},
     "not_scored": [{"file", "reason"}],
     # with exactly one suite, its fields are also at the top level:
     "categories": {"simple_python": {"accuracy", "correct", "total", "ci95", "errors": [...]},
                    ..., "irrelevance": {..., "strict_accuracy", "strict_correct", "strict_ci95"}},
     "ast_summary", "relevance_detection", "upstream", ...}

`score_result_files` reads a folder that may hold V1, V3 and V4 result files side by side
(told apart by their file prefix) and scores each version as its own suite. Accuracies are
fractions in [0, 1].
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from raypipe.config import short_repr
from raypipe.errors import RaypipeError
from raypipe.eval.aggregates import mean_interval, upstream_summaries, v1_summaries, wilson_interval  # noqa: F401
from raypipe.eval.bfcl_categories import KINDS, parse_result_file_name
from raypipe.eval.bfcl_data import BfclItem, read_jsonl, result_file_name
from raypipe.eval.checker import check_ast, is_call_list, is_empty_output
from raypipe.eval.decoders import DECODERS, DecodeError, decode, is_direct_answer
from raypipe.eval.values import json_safe

class UnreadableResult:
    """A result line whose JSON Python cannot read (nested deeper than its recursion limit):
    the item is scored as an output that does not decode, and the report says why."""

    def __init__(self, reason: str):
        self.reason = reason

    def __repr__(self) -> str:
        return f"<unreadable result: {self.reason}>"


def check_ids(items: list[BfclItem], results: dict[str, Any]) -> None:
    """Raise naming every missing and extra id."""
    ids = {it.id for it in items}
    missing = [it.id for it in items if it.id not in results]
    extra = sorted(set(results) - ids)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} ids: {_show(missing)}")
        if extra:
            parts.append(f"{len(extra)} ids not in the benchmark: {_show(extra)}")
        raise RaypipeError("result ids do not match the benchmark: " + "; ".join(parts))


def _show(ids: list[str], limit: int = 20) -> str:
    more = f" ... (+{len(ids) - limit} more)" if len(ids) > limit else ""
    return ", ".join(i if len(i) <= 60 else short_repr(i) for i in ids[:limit]) + more  # ids are input


def score_item(item: BfclItem, raw: Any, decoder: str, underscore_to_dot: bool = False) -> dict:
    """{"valid": bool, "error_type", "errors", "decoded"} for one item (+ "strict" for irrelevance).

    The verdicts and error types are those of the reference of `item.rules`: an irrelevance
    item is right when decoding fails or yields no call (``[]``, or anything that is not a list
    of ``{name: {args}}``), a relevance item when it yields a call, an AST item when the check
    of its kind passes."""
    kind = item.kind
    try:
        decoded = decode(raw, decoder, item.rules)
    except DecodeError as err:
        if kind == "irrelevance":
            return {"valid": True, "strict": is_direct_answer(raw, decoder), "decoded": None}
        if kind == "relevance":
            return _wrong("relevance_error:decoder_failed",
                          f"Invalid syntax. Failed to decode AST when it should have. {err}", None)
        return _wrong("ast_decoder:decoder_failed", f"Invalid syntax. Failed to decode AST. {err}", None)
    if kind == "irrelevance":
        if is_empty_output(decoded):
            return {"valid": True, "strict": is_direct_answer(raw, decoder), "decoded": decoded}
        error_type = "relevance_error:decoder_success" if item.rules == "v1" else "irrelevance_error:decoder_success"
        return {**_wrong(error_type, "Valid syntax. Successfully decode AST when it should not.", decoded),
                "strict": False}
    if kind == "relevance":
        if is_empty_output(decoded):
            return _wrong("relevance_error:decoder_failed",
                          "Invalid syntax. Failed to decode AST when it should have. None", decoded)
        return {"valid": True, "decoded": decoded}
    if not is_call_list(decoded):
        return _wrong("ast_decoder:decoder_wrong_output_format", "Did not output in the specified format.", decoded)
    result = check_ast(item, decoded, underscore_to_dot)
    return {"valid": result.valid, "error_type": result.error_type, "errors": result.errors, "decoded": decoded}


def _wrong(error_type: str, message: str, decoded: Any) -> dict:
    return {"valid": False, "error_type": error_type, "errors": [message], "decoded": decoded}


def score_results(items: Iterable[BfclItem], results: dict[str, Any], decoder: str,
                  underscore_to_dot: bool = False) -> dict:
    """The report of `results` ({id: raw model output}) on `items` of one data version; ids
    must match exactly."""
    items = list(items)
    suite = score_suite(items, results, decoder, underscore_to_dot)
    return assemble_report({suite["version"]: suite} if items else {}, decoder, underscore_to_dot)


def score_suite(items: list[BfclItem], results: dict[str, Any], decoder: str,
                underscore_to_dot: bool = False) -> dict:
    """Categories, summary figures and error counts of the items of one data version."""
    if decoder not in DECODERS:
        raise RaypipeError(f"unknown decoder {decoder!r}: expected one of {', '.join(DECODERS)}")
    versions = sorted({it.version for it in items})
    if len(versions) > 1:
        raise RaypipeError(f"items of several BFCL versions ({', '.join(versions)}) in one suite; score each alone")
    version = versions[0] if versions else "v1"
    check_ids(items, results)
    started = time.perf_counter()
    by_category: dict[str, list[BfclItem]] = {}
    for item in items:
        by_category.setdefault(item.category, []).append(item)

    categories: dict[str, dict] = {}
    for category in KINDS[version]:
        if category not in by_category:
            continue
        correct = strict_correct = 0
        errors = []
        for item in by_category[category]:
            outcome = score_item(item, results[item.id], decoder, underscore_to_dot)
            correct += outcome["valid"]
            strict_correct += outcome.get("strict", False)
            if not outcome["valid"]:
                errors.append({
                    "id": item.id,
                    "error_type": outcome["error_type"],
                    "errors": json_safe(outcome["errors"]),
                    "raw": _shown_raw(results[item.id]),
                    "decoded": json_safe(outcome["decoded"]),  # tuples, bytes, huge ints: shown safely
                    "possible_answer": item.ground_truth,
                })
        total = len(by_category[category])
        entry = {"version": version, "category": category, "kind": KINDS[version][category],
                 "accuracy": correct / total, "correct": correct, "total": total,
                 "ci95": wilson_interval(correct, total), "errors": errors}
        if entry["kind"] == "irrelevance":
            entry.update(strict_accuracy=strict_correct / total, strict_correct=strict_correct,
                         strict_ci95=wilson_interval(strict_correct, total))
        categories[category] = entry

    rules = sorted({it.rules for it in items}) or ["v1"]
    suite: dict[str, Any] = {"version": version, "rules": rules[0] if len(rules) == 1 else rules,
                             "categories": categories}
    suite.update(v1_summaries(version, categories))
    suite["upstream"] = upstream_summaries(version, categories)
    suite["error_counts"] = {
        c: dict(Counter(e["error_type"] for e in entry["errors"]).most_common()) for c, entry in categories.items()
    }
    suite["scoring_seconds"] = round(time.perf_counter() - started, 4)
    return suite


def _shown_raw(raw: Any) -> Any:
    return json_safe(raw)  # long strings cut, huge ints and deep nesting shown as placeholders


def assemble_report(suites: dict[str, dict], decoder: str, underscore_to_dot: bool,
                    not_scored: list[dict] | None = None) -> dict:
    """REPORT.json: every suite, the files left out and, with one suite, its fields on top."""
    report: dict[str, Any] = {
        "benchmark": "bfcl",
        "decoder": decoder,
        "underscore_to_dot": underscore_to_dot,
        "suites": suites,
        "not_scored": not_scored or [],
    }
    if len(suites) == 1:
        (suite,) = suites.values()
        report.update({k: v for k, v in suite.items()})
    else:  # several versions: categories keyed "<version>/<category>" (ids may repeat across them)
        report["categories"] = {category_key(v, c, True): entry for v, s in suites.items()
                                for c, entry in s["categories"].items()}
        report["error_counts"] = {category_key(v, c, True): counts for v, s in suites.items()
                                  for c, counts in s["error_counts"].items()}
        for key in ("ast_summary", "relevance_detection", "relevance_detection_strict"):
            report[key] = None  # per suite: suites.<version>.<key>
    report["scoring_seconds"] = round(sum(s["scoring_seconds"] for s in suites.values()), 4)
    return report


def category_key(version: str, category: str, several_versions: bool) -> str:
    return f"{version}/{category}" if several_versions else category


# -- result files (BFCL convention: JSON lines with id + result) ------------------------------


def write_result_files(results_by_category: dict[str, Any], out_dir, extra_fields: dict | None = None,
                       version: str = "v1") -> list[Path]:
    """Write one result file per category, named as upstream names them for `version`
    (``BFCL_v4_<category>_result.json``; V1: ``gorilla_openfunctions_v1_test_<category>_result.json``).

    `results_by_category`: {category: {id: raw result}} or {category: [(id, raw result), ...]}.
    `extra_fields`: optional {id: {field: value}} merged into each line (e.g. latency, tokens).
    Returns the written paths. Other tools' readers take one JSON object per line.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for category, rows in results_by_category.items():
        pairs = rows.items() if isinstance(rows, dict) else rows
        path = out / result_file_name(category, version)
        tmp = path.with_suffix(".json.tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for item_id, raw in pairs:
                line = {"id": item_id, "result": raw, **((extra_fields or {}).get(item_id, {}))}
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
        tmp.replace(path)  # a reader never sees half a file
        paths.append(path)
    return paths


def read_result_files(results_dir) -> dict[str, dict[str, Any]]:
    """{category: {id: raw result}} from the result files in a directory; with files of several
    BFCL versions the keys are ``<version>/<category>``. Files raypipe does not score are
    left out here (`read_results_dir` lists them)."""
    found, _ = read_results_dir(Path(results_dir))
    several = len(found) > 1
    return {category_key(v, c, several): rows for v, files in found.items() for c, (_, rows) in files.items()}


def read_results_dir(root: Path) -> tuple[dict[str, dict[str, tuple[Path, dict]]], list[dict]]:
    """({version: {category: (path, {id: raw})}}, [{"file", "reason"}] for every other file).

    Raises RaypipeError for a missing directory, no scorable result file at all, bad JSON
    (file:line), a line without id/result or a duplicate id."""
    if not root.is_dir():
        raise RaypipeError(f"results directory {root} does not exist")
    found: dict[str, dict[str, tuple[Path, dict]]] = {}
    not_scored: list[dict] = []
    for path in sorted(root.iterdir()):
        parsed = parse_result_file_name(path.name)
        if parsed is None or not parsed.scored or not path.is_file():
            reason = ("a folder" if path.is_dir() else "not a BFCL result file name") if parsed is None else (
                parsed.reason if not parsed.scored else "not a regular file")
            not_scored.append({"file": path.name, "reason": reason})
            continue
        found.setdefault(parsed.version, {})[parsed.category] = (path, _read_result_file(path))
    if not found:
        listed = "; ".join(f"{n['file']} ({n['reason']})" for n in not_scored[:5]) or "the folder is empty"
        raise RaypipeError(
            f"no BFCL result files raypipe scores in {root}: expected BFCL_v4_<category>_result.json, "
            f"BFCL_v3_<category>_result.json or gorilla_openfunctions_v1_test_<category>_result.json for a "
            f"single-turn python category (found: {listed})"
        )
    return found, not_scored


_ID = re.compile(r'"id"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _read_result_file(path: Path) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for number, row in read_jsonl(path, on_too_deep=_too_deep_row):
        if "id" not in row or "result" not in row:
            raise RaypipeError(f"{path}:{number}: a result line needs 'id' and 'result'")
        item_id = row["id"]
        if not isinstance(item_id, str):
            raise RaypipeError(f"{path}:{number}: 'id' must be a string like 'simple_0', got {short_repr(item_id)}")
        if item_id in rows:
            raise RaypipeError(f"{path}:{number}: duplicate id {short_repr(item_id)}")
        rows[item_id] = row["result"]
    return rows


def _too_deep_row(path: Path, number: int, line: str) -> dict:
    """A line of valid-looking JSON nested beyond Python's reader: keep its id, mark its result."""
    match = _ID.search(line)
    if not match:
        raise RaypipeError(f"{path}:{number}: JSON nested too deeply to read, and no 'id' found in it")
    return {"id": json.loads(f'"{match.group(1)}"'),
            "result": UnreadableResult("nested deeper than Python's JSON reader allows")}


def score_result_files(data_dir, lang: str | None, results_dir, decoder: str, underscore_to_dot: bool = False,
                       subset: bool = False, rules: str | None = None) -> dict:
    """Score every result file of `results_dir` against the benchmark items in `data_dir`.

    Result files of V1, V3 and V4 may share the folder: each version is scored as its own suite
    with its own question files. Every id of a category must have a result, and no result may
    have an id outside the benchmark. `subset=True` scores only the items the files hold (a run
    on a slice); extra ids stay an error and the report counts the ids left out. `rules` (v1 or
    upstream) overrides the default of each version (v1 for V1 data, upstream for V3/V4). `lang`
    (en or zhtw) is required for V1 data; V3/V4 data is read in English unless given.
    """
    from raypipe.eval.bfcl_data import load_bfcl

    found, not_scored = read_results_dir(Path(results_dir))
    suites: dict[str, dict] = {}
    left_out = 0
    for version in ("v1", "v4", "v3"):
        if version not in found:
            continue
        files = found[version]
        if version == "v1" and lang is None:
            raise RaypipeError(f"{results_dir} holds V1 / zh-TW result files: give the question language "
                               "(--lang en or --lang zhtw)")
        items = load_bfcl(data_dir, lang or "en", categories=[c for c in KINDS[version] if c in files],
                          version=version, rules=rules)
        if subset:
            present = {item_id for _, rows in files.values() for item_id in rows}
            left_out += sum(item.id not in present for item in items)
            items = [item for item in items if item.id in present]
        by_category: dict[str, list[BfclItem]] = {}
        for item in items:
            by_category.setdefault(item.category, []).append(item)
        for category, (path, rows) in files.items():  # name the file whose ids are wrong
            try:
                check_ids(by_category.get(category, []), rows)
            except RaypipeError as err:
                raise RaypipeError(f"{path}: {err}") from None
        flat = {item_id: raw for _, rows in files.values() for item_id, raw in rows.items()}
        suites[version] = score_suite(items, flat, decoder, underscore_to_dot)
    report = assemble_report(suites, decoder, underscore_to_dot, not_scored)
    report["lang"] = lang
    report["results_dir"] = str(results_dir)
    if subset:
        report["subset"] = True
        report["items_left_out"] = left_out
    return report
