"""Score BFCL result files: per-category accuracy, AST Summary, Relevance Detection, errors, CIs.

`score_results(items, results, decoder)` gives the REPORT.json structure::

    {"categories": {"simple": {"accuracy", "correct", "total", "ci95", "errors": [...]}, ...,
                    "relevance": {..., "strict_accuracy", "strict_correct", "strict_ci95"}},
     "ast_summary", "ast_summary_ci95", "relevance_detection", "relevance_detection_ci95",
     "relevance_detection_strict", "relevance_detection_strict_ci95", "error_counts", ...}

Accuracies are fractions in [0, 1]. AST Summary is the unweighted mean of the four AST
categories (null unless all four were scored). Each failing item is listed with the reference
checker's error type.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from raypipe.errors import RaypipeError
from raypipe.eval.bfcl_data import (
    AST_CATEGORIES,
    CATEGORIES,
    BfclItem,
    category_of_result_file,
    read_jsonl,
    result_file_name,
)
from raypipe.eval.checker import check_ast, is_call_list, is_empty_output
from raypipe.eval.decoders import DECODERS, DecodeError, decode, is_direct_answer, json_safe

Z95 = 1.959963984540054


def wilson_interval(correct: int, total: int, z: float = Z95) -> list[float] | None:
    """95% Wilson score interval of a proportion (well-behaved at 0 and 1, unlike the normal one)."""
    if total == 0:
        return None
    p = correct / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == total else min(1.0, centre + half)
    return [low, high]


def mean_interval(parts: list[tuple[int, int]], z: float = Z95) -> list[float] | None:
    """CI of an unweighted mean of independent proportions: the mean plus/minus z times
    sqrt(sum of per-category variances) / k, each variance taken from its Wilson interval so
    that a category at 0% or 100% still contributes its uncertainty."""
    if not parts or any(total == 0 for _, total in parts):
        return None
    k = len(parts)
    mean = sum(correct / total for correct, total in parts) / k
    variance = 0.0
    for correct, total in parts:
        low, high = wilson_interval(correct, total, z)
        variance += ((high - low) / (2 * z)) ** 2
    half = z * math.sqrt(variance) / k
    return [max(0.0, mean - half), min(1.0, mean + half)]


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
    return ", ".join(ids[:limit]) + more


def score_item(item: BfclItem, raw: Any, decoder: str, underscore_to_dot: bool = False) -> dict:
    """{"valid": bool, "error_type", "errors", "decoded"} for one item (+ "strict" for relevance)."""
    try:
        decoded = decode(raw, decoder)
    except DecodeError as err:
        if item.category == "relevance":
            return {"valid": True, "strict": is_direct_answer(raw, decoder), "decoded": None}
        return {"valid": False, "error_type": "ast_decoder:decoder_failed",
                "errors": [f"Invalid syntax. Failed to decode AST. {err}"], "decoded": None}
    if item.category == "relevance":
        if is_empty_output(decoded):
            return {"valid": True, "strict": is_direct_answer(raw, decoder), "decoded": decoded}
        return {"valid": False, "strict": False, "error_type": "relevance_error:decoder_success",
                "errors": ["Valid syntax. Successfully decode AST when it should not."], "decoded": decoded}
    if not is_call_list(decoded):
        return {"valid": False, "error_type": "ast_decoder:decoder_wrong_output_format",
                "errors": ["Did not output in the specified format."], "decoded": decoded}
    result = check_ast(item, decoded, underscore_to_dot)
    return {"valid": result.valid, "error_type": result.error_type, "errors": result.errors, "decoded": decoded}


def score_results(
    items: Iterable[BfclItem],
    results: dict[str, Any],
    decoder: str,
    underscore_to_dot: bool = False,
) -> dict:
    """The report of `results` ({id: raw model output}) on `items`; ids must match exactly."""
    if decoder not in DECODERS:
        raise RaypipeError(f"unknown decoder {decoder!r}: expected one of {', '.join(DECODERS)}")
    items = list(items)
    check_ids(items, results)
    started = time.perf_counter()
    by_category: dict[str, list[BfclItem]] = {}
    for item in items:
        by_category.setdefault(item.category, []).append(item)

    categories: dict[str, dict] = {}
    for category in CATEGORIES:
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
                    "errors": outcome["errors"],
                    "raw": results[item.id],
                    "decoded": json_safe(outcome["decoded"]),  # tuple dict keys are not JSON
                    "possible_answer": item.ground_truth,
                })
        total = len(by_category[category])
        entry = {"accuracy": correct / total, "correct": correct, "total": total,
                 "ci95": wilson_interval(correct, total), "errors": errors}
        if category == "relevance":
            entry.update(strict_accuracy=strict_correct / total, strict_correct=strict_correct,
                         strict_ci95=wilson_interval(strict_correct, total))
        categories[category] = entry

    report: dict[str, Any] = {
        "benchmark": "bfcl",
        "decoder": decoder,
        "underscore_to_dot": underscore_to_dot,
        "categories": categories,
    }
    report.update(_summaries(categories))
    report["error_counts"] = {
        c: dict(Counter(e["error_type"] for e in entry["errors"]).most_common()) for c, entry in categories.items()
    }
    report["scoring_seconds"] = round(time.perf_counter() - started, 4)
    return report


def _summaries(categories: dict[str, dict]) -> dict:
    ast_parts = [(categories[c]["correct"], categories[c]["total"]) for c in AST_CATEGORIES if c in categories]
    complete = len(ast_parts) == len(AST_CATEGORIES)
    out: dict[str, Any] = {
        "ast_summary": (sum(categories[c]["accuracy"] for c in AST_CATEGORIES) / len(AST_CATEGORIES)
                        if complete else None),
        "ast_summary_ci95": mean_interval(ast_parts) if complete else None,
        "ast_summary_missing": [c for c in AST_CATEGORIES if c not in categories],
    }
    relevance = categories.get("relevance")
    out["relevance_detection"] = relevance["accuracy"] if relevance else None
    out["relevance_detection_ci95"] = relevance["ci95"] if relevance else None
    out["relevance_detection_strict"] = relevance["strict_accuracy"] if relevance else None
    out["relevance_detection_strict_ci95"] = relevance["strict_ci95"] if relevance else None
    return out


# -- result files (BFCL convention: JSON lines with id + result) ------------------------------


def write_result_files(results_by_category: dict[str, Any], out_dir, extra_fields: dict | None = None) -> list[Path]:
    """Write ``gorilla_openfunctions_v1_test_<category>_result.json`` per category.

    `results_by_category`: {category: {id: raw result}} or {category: [(id, raw result), ...]}.
    `extra_fields`: optional {id: {field: value}} merged into each line (e.g. latency, tokens).
    Returns the written paths. Other tools' readers take one JSON object per line.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for category, rows in results_by_category.items():
        pairs = rows.items() if isinstance(rows, dict) else rows
        path = out / result_file_name(category)
        tmp = path.with_suffix(".json.tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for item_id, raw in pairs:
                line = {"id": item_id, "result": raw, **((extra_fields or {}).get(item_id, {}))}
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
        tmp.replace(path)  # a reader never sees half a file
        paths.append(path)
    return paths


def read_result_files(results_dir) -> dict[str, dict[str, Any]]:
    """{category: {id: raw result}} from the result files in a directory (V1 or V3/V4 names).

    Files of other categories (executable_*, java, ...) are ignored. Raises RaypipeError for a
    missing directory, no result file at all, bad JSON (file:line), a line without id/result
    or a duplicate id.
    """
    return {category: rows for category, (_, rows) in _read_results(Path(results_dir)).items()}


def _read_results(root: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    if not root.is_dir():
        raise RaypipeError(f"results directory {root} does not exist")
    found: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path in sorted(root.iterdir()):
        category = category_of_result_file(path.name)
        if category is None or not path.is_file():
            continue
        if category in found:
            raise RaypipeError(f"two result files for {category}: {found[category][0].name} and {path.name}")
        rows: dict[str, Any] = {}
        for number, row in read_jsonl(path):
            if "id" not in row or "result" not in row:
                raise RaypipeError(f"{path}:{number}: a result line needs 'id' and 'result'")
            item_id = row["id"]
            if not isinstance(item_id, str):
                raise RaypipeError(f"{path}:{number}: 'id' must be a string like 'simple_0', got {item_id!r}")
            if item_id in rows:
                raise RaypipeError(f"{path}:{number}: duplicate id {item_id!r}")
            rows[item_id] = row["result"]
        found[category] = (path, rows)
    if not found:
        raise RaypipeError(
            f"no BFCL result files in {root}: expected gorilla_openfunctions_v1_test_<category>_result.json "
            f"for some of {', '.join(CATEGORIES)}"
        )
    return found


def score_result_files(
    data_dir, lang: str, results_dir, decoder: str, underscore_to_dot: bool = False, subset: bool = False
) -> dict:
    """Load the benchmark items of the categories that have result files, and score them.

    Every id of a category must have a result, and no result may have an id outside the
    benchmark. `subset=True` scores only the items the files hold (a run on a slice); extra ids
    stay an error and the report says ``"subset": true`` with the ids left out counted.
    """
    from raypipe.eval.bfcl_data import load_bfcl

    files = _read_results(Path(results_dir))
    items = load_bfcl(data_dir, lang, categories=[c for c in CATEGORIES if c in files])
    left_out = 0
    if subset:
        present = {item_id for _, rows in files.values() for item_id in rows}
        left_out = sum(item.id not in present for item in items)
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
    report = score_results(items, flat, decoder, underscore_to_dot)
    report["lang"] = lang
    report["results_dir"] = str(results_dir)
    if subset:
        report["subset"] = True
        report["items_left_out"] = left_out
    return report
