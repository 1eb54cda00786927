"""BFCL's test categories by data version: file names, what each category checks, how upstream
groups them.

Three data versions share one scorer:

- ``v1``: the BFCL V1 / zh-TW leaderboard files, ``gorilla_openfunctions_v1_test_<category>.json``
  (``simple``, ``multiple_function``, ``parallel_function``, ``parallel_multiple_function``,
  ``relevance``);
- ``v3`` and ``v4``: upstream gorilla ``bfcl_eval/data`` files, ``BFCL_v3_<category>.json`` and
  ``BFCL_v4_<category>.json``. raypipe scores their single-turn python categories; V4 renamed
  V3's ``simple`` to ``simple_python``.

A category's *kind* says which check applies (upstream's ``ast_checker`` dispatches on the name
the same way): ``simple`` (exactly one call), ``multiple`` (one call among several functions),
``parallel`` (several calls, any order), ``irrelevance`` (right when no call is made; V1 calls
this category "relevance") and ``relevance`` (right when a call is made).
"""

from __future__ import annotations

import re
from typing import NamedTuple

V1_PREFIX = "gorilla_openfunctions_v1_test_"
VERSIONS = ("v1", "v3", "v4")

_LIVE = {
    "live_simple": "simple",
    "live_multiple": "multiple",
    "live_parallel": "parallel",
    "live_parallel_multiple": "parallel",
    "live_irrelevance": "irrelevance",
    "live_relevance": "relevance",
}
_NON_LIVE = {"multiple": "multiple", "parallel": "parallel", "parallel_multiple": "parallel",
             "irrelevance": "irrelevance"}

# {version: {category: kind}} of the categories raypipe scores, in report order.
KINDS: dict[str, dict[str, str]] = {
    "v1": {
        "simple": "simple",
        "multiple_function": "multiple",
        "parallel_function": "parallel",
        "parallel_multiple_function": "parallel",
        "relevance": "irrelevance",
    },
    "v3": {"simple": "simple", **_NON_LIVE, **_LIVE},
    "v4": {"simple_python": "simple", **_NON_LIVE, **_LIVE},
}

# Categories of each version that raypipe knows and does not score (multi-turn, agentic,
# executable, other languages): their result files are listed in the report as not scored.
NOT_SCORED: dict[str, dict[str, str]] = {
    "v1": {**{c: "executable category (needs live APIs)" for c in (
        "executable_simple", "executable_multiple_function", "executable_parallel_function",
        "executable_parallel_multiple_function", "rest")},
        "java": "Java category (not python)", "javascript": "JavaScript category (not python)",
        "sql": "SQL category (not scored upstream either)", "chatable": "chat category (not scored upstream either)"},
    "v3": {**{c: "executable category (needs live APIs)" for c in (
        "exec_simple", "exec_multiple", "exec_parallel", "exec_parallel_multiple", "rest")},
        "java": "Java category (not python)", "javascript": "JavaScript category (not python)",
        "sql": "SQL category (not scored upstream either)", "chatable": "chat category (not scored upstream either)",
        **{c: "multi-turn category (raypipe scores single-turn only)" for c in (
            "multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param",
            "multi_turn_long_context", "multi_turn_composite")}},
    "v4": {"simple_java": "Java category (not python)",
           "simple_javascript": "JavaScript category (not python)",
           **{c: "multi-turn category (raypipe scores single-turn only)" for c in (
               "multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param",
               "multi_turn_long_context", "multi_turn_composite")},
           **{c: "agentic category (raypipe scores single-turn only)" for c in (
               "memory_kv", "memory_vector", "memory_rec_sum", "web_search_base",
               "web_search_no_snippet")},
           "format_sensitivity": "format-sensitivity category (not part of upstream's score)"},
}

# Upstream's leaderboard groups (bfcl_eval/eval_checker/eval_runner_helper.py).
NON_LIVE_AST = {"v1": ("simple", "multiple_function", "parallel_function", "parallel_multiple_function"),
                "v3": ("simple", "multiple", "parallel", "parallel_multiple"),
                "v4": ("simple_python", "multiple", "parallel", "parallel_multiple")}
LIVE_AST = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")
IRRELEVANCE = {"v1": ("relevance",), "v3": ("irrelevance", "live_irrelevance"),
               "v4": ("irrelevance", "live_irrelevance")}
RELEVANCE = ("live_relevance",)

DEFAULT_RULES = {"v1": "v1", "v3": "upstream", "v4": "upstream"}
RULES = ("v1", "upstream")


class ResultFile(NamedTuple):
    version: str
    category: str
    scored: bool
    reason: str = ""  # why a known category is not scored


def kind_of(version: str, category: str) -> str:
    return KINDS[version][category]


def is_ast_kind(kind: str) -> bool:
    return kind in ("simple", "multiple", "parallel")


def question_file_name(version: str, category: str) -> str:
    if version == "v1":
        return f"{V1_PREFIX}{category}.json"
    return f"BFCL_{version}_{category}.json"


def result_file_name(version: str, category: str) -> str:
    """Upstream's naming: ``BFCL_v4_<category>_result.json`` (V1: ``gorilla_openfunctions_v1_test_...``)."""
    if category not in KINDS[version]:
        raise ValueError(f"unknown {version} category {category!r}")
    return question_file_name(version, category)[: -len(".json")] + "_result.json"


_RESULT = re.compile(r"^(?:(?P<v1>gorilla_openfunctions_v1_test_)|BFCL_(?P<v>v\d+)_)(?P<stem>\w+?)_result\.json$")


def parse_result_file_name(name: str) -> ResultFile | None:
    """What a result file holds, from its name alone; None for a name that is no BFCL result file
    (or one of a version raypipe does not know)."""
    match = _RESULT.match(name)
    if not match:
        return None
    version = "v1" if match.group("v1") else match.group("v")
    if version not in KINDS:
        return None
    stem = match.group("stem")
    if stem in KINDS[version]:
        return ResultFile(version, stem, True)
    reason = NOT_SCORED[version].get(stem, f"not a {version} category raypipe knows")
    return ResultFile(version, stem, False, reason)
