"""Dataset statistics: counts by source and language, calls, functions and turns per sample,
and token lengths when a tokenizer is given (rendered with raypipe's templates).

`row_stats(sample)` is per row (Ray Data maps it over shards); `StatsAccumulator` folds rows
into the report on the driver, so the same code serves the CLI and the job step.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from raypipe.schema import Sample


def row_stats(sample: Sample) -> dict[str, Any]:
    calls_per_turn = [len(m.tool_calls) for m in sample.messages if m.role == "assistant" and m.tool_calls]
    return {
        "id": sample.id,
        "source": sample.source,
        "lang": sample.lang,
        "functions": len(sample.functions),
        "calls": sum(calls_per_turn),
        "call_turns": len(calls_per_turn),
        "parallel": any(n > 1 for n in calls_per_turn),
        "user_turns": sum(1 for m in sample.messages if m.role == "user"),
        "messages": len(sample.messages),
        "tokens": None,
    }


def _summary(values: list[int]) -> dict[str, Any]:
    if not values:
        return {}
    ordered = sorted(values)

    def pct(p: float) -> int:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return {"mean": round(sum(values) / len(values), 3), "min": ordered[0], "p50": pct(0.5),
            "p95": pct(0.95), "max": ordered[-1], "total": sum(values)}


class StatsAccumulator:
    def __init__(self) -> None:
        self.n = 0
        self.by_source: Counter = Counter()
        self.by_lang: Counter = Counter()
        self.hist: dict[str, Counter] = {k: Counter() for k in ("functions", "calls", "user_turns")}
        self.values: dict[str, list[int]] = {k: [] for k in ("functions", "calls", "user_turns", "messages", "tokens")}
        self.with_calls = 0
        self.parallel = 0
        self._ids: set[str] = set()
        self.duplicates = 0  # same content id seen before (ids are content hashes)

    def add(self, row: dict[str, Any]) -> None:
        self.n += 1
        if row["id"] in self._ids:
            self.duplicates += 1
        self._ids.add(row["id"])
        self.by_source[row["source"] or "(none)"] += 1
        self.by_lang[row["lang"] or "(none)"] += 1
        for key in self.hist:
            self.hist[key][int(row[key])] += 1
        for key in self.values:
            if row.get(key) is not None:
                self.values[key].append(int(row[key]))
        self.with_calls += bool(row["calls"])
        self.parallel += bool(row["parallel"])

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "samples": self.n,
            "duplicates": self.duplicates,
            "by_source": dict(self.by_source.most_common()),
            "by_lang": dict(self.by_lang.most_common()),
            "with_calls": self.with_calls,
            "without_calls": self.n - self.with_calls,
            "with_parallel_calls": self.parallel,
        }
        for key, label in (("calls", "calls_per_sample"), ("functions", "functions_per_sample"),
                           ("user_turns", "user_turns_per_sample")):
            out[label] = {**_summary(self.values[key]), "histogram": dict(sorted(self.hist[key].items()))}
        out["messages_per_sample"] = _summary(self.values["messages"])
        if self.values["tokens"]:
            out["tokens_per_sample"] = _summary(self.values["tokens"])
        return out


class TokenCounter:
    """Counts the tokens of each sample as rendered by a raypipe template (e.g. "tools-dt")."""

    def __init__(self, tokenizer_path: str, template: str = "tools-dt"):
        from transformers import AutoTokenizer

        from raypipe.templates import add_special_tokens, get_format

        self.fmt = get_format(template)
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
        add_special_tokens(self.tokenizer, self.fmt)

    def __call__(self, sample: Sample) -> int:
        from raypipe.templates import render

        return len(self.tokenizer(render(sample, self.fmt), add_special_tokens=False)["input_ids"])


def format_report(report: dict[str, Any]) -> str:
    lines = [f"samples: {report['samples']} ({report['duplicates']} duplicates by content id)"]
    for key in ("by_source", "by_lang"):
        lines.append(f"{key}: " + ", ".join(f"{k}={v}" for k, v in report[key].items()))
    lines.append(f"with calls: {report['with_calls']}, without: {report['without_calls']}, "
                 f"parallel: {report['with_parallel_calls']}")
    for key in ("calls_per_sample", "functions_per_sample", "user_turns_per_sample",
                "messages_per_sample", "tokens_per_sample"):
        s = report.get(key)
        if not s or "mean" not in s:
            continue
        text = f"{key}: mean {s['mean']}, p50 {s['p50']}, p95 {s['p95']}, max {s['max']}"
        if "histogram" in s:
            text += "  [" + " ".join(f"{k}:{v}" for k, v in s["histogram"].items()) + "]"
        if key == "tokens_per_sample":
            text += f", total {s['total']}"
        lines.append(text)
    return "\n".join(lines)
