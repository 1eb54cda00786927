"""`raypipe eval bfcl`: render BFCL items with raypipe's templates, generate, write result
files in the BFCL convention, score them with the same scorer as `raypipe score bfcl`.

Output directory:

    run.json            what was evaluated (model, adapter, format, lang, decoder)
    generations.jsonl   one line per generated item, appended as rows finish (the resume log)
    results/            gorilla_openfunctions_v1_test_<category>_result.json (id + result)
    REPORT.json         the scorer's report, plus a `run` block
    report.md           the Markdown table of this run

Resumable by id: a re-run with the same out directory skips every item that already has a
successful line in generations.jsonl and retries the failed ones.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from raypipe.config import input_paths, number, output_path
from raypipe.errors import RaypipeError
from raypipe.infer.config import GenerationConfig

AST_CATEGORIES = ["simple", "multiple_function", "parallel_function", "parallel_multiple_function"]
DEFAULT_CATEGORIES = [*AST_CATEGORIES, "relevance"]
GENERATIONS = "generations.jsonl"


@dataclass
class EvalBfclConfig:
    data: str = input_paths()  # directory holding en/, zhtw/, possible_answer/
    out: str = output_path()
    generation: GenerationConfig
    format: str = "tools-dt"  # a raypipe.templates preset name
    lang: Literal["en", "zhtw"] = "zhtw"
    categories: list[str] | None = None  # None: the five AST/relevance categories
    limit: int | None = number(ge=1, default=None)  # first N items of each category (smoke runs)
    decoder: Literal["decision-token", "pythonic", "openai", "json"] | None = None  # None: follows the format
    underscore_to_dot: bool = False

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")


def decoder_for_format(fmt: Any) -> str:
    """The scorer's decoder that reads what a model trained on `fmt` writes."""
    if getattr(fmt, "decision_token", False):
        return "decision-token"
    return "pythonic" if getattr(fmt, "call_style", "pythonic") == "pythonic" else "json"


def select_items(items: list[Any], limit: int | None) -> list[Any]:
    if limit is None:
        return list(items)
    seen: dict[str, int] = {}
    picked = []
    for item in items:
        if seen.get(item.category, 0) < limit:
            seen[item.category] = seen.get(item.category, 0) + 1
            picked.append(item)
    return picked


def read_generations(path: Path) -> dict[str, dict[str, Any]]:
    """Last line per id wins; a torn last line (the run was killed mid-write) is ignored."""
    done: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return done
    lines = path.read_text(encoding="utf-8").splitlines()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if lineno == len(lines):
                continue
            raise RaypipeError(f"{path}:{lineno}: not valid JSON; delete the line to re-generate it") from None
        done[row["id"]] = row
    return done


def check_run_meta(out: Path, meta: dict[str, Any]) -> None:
    """Refuse to mix generations of another model/format into a resumed run."""
    path = out / "run.json"
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        keys = ("model", "adapter", "format", "lang", "max_new_tokens", "temperature", "seed")
        diff = [k for k in keys if old.get(k) != meta.get(k)]
        if diff:
            shown = ", ".join(f"{k}: {old.get(k)!r} -> {meta.get(k)!r}" for k in diff)
            raise RaypipeError(f"{out} holds a run with other settings ({shown}); use another --out")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def render_items(items: list[Any], fmt: Any) -> list[dict[str, Any]]:
    from raypipe.templates import render_prompt

    return [
        {"id": it.id, "category": it.category, "prompt": render_prompt(it.question, it.functions, fmt)}
        for it in items
    ]


def run_eval_bfcl(cfg: EvalBfclConfig, log=print) -> dict[str, Any]:
    from raypipe.eval.bfcl_data import load_bfcl
    from raypipe.eval.scoring import score_results, write_result_files
    from raypipe.infer.run import generate
    from raypipe.templates import get_format

    out = Path(cfg.out)
    fmt = get_format(cfg.format)
    decoder = cfg.decoder or decoder_for_format(fmt)
    items = select_items(load_bfcl(cfg.data, cfg.lang, cfg.categories or DEFAULT_CATEGORIES), cfg.limit)
    meta = {
        "model": cfg.generation.model, "adapter": cfg.generation.adapter, "format": cfg.format,
        "lang": cfg.lang, "decoder": decoder, "underscore_to_dot": cfg.underscore_to_dot,
        "max_new_tokens": cfg.generation.max_new_tokens, "temperature": cfg.generation.temperature,
        "seed": cfg.generation.seed, "generation": dataclasses.asdict(cfg.generation),
    }
    check_run_meta(out, meta)

    log_path = out / GENERATIONS
    done = {k: r for k, r in read_generations(log_path).items() if not r.get("error")}
    pending = [it for it in items if it.id not in done]
    log(f"[eval bfcl] {len(items)} items, {len(items) - len(pending)} already generated, {len(pending)} to go")
    failed: dict[str, str] = {}
    with log_path.open("a", encoding="utf-8") as f:
        for row in generate(render_items(pending, fmt), cfg.generation):
            record = {k: row.get(k) for k in ("id", "category", "generated_text", "finish_reason",
                                              "num_input_tokens", "num_generated_tokens", "error")}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()  # each finished row survives a crash
            if record["error"]:
                failed[record["id"]] = record["error"]
            else:
                done[record["id"]] = record
    for it in pending:  # rows in = rows out: an item the engine never returned is a failure too
        if it.id not in done and it.id not in failed:
            failed[it.id] = "no output returned by the generation stage"
    if failed:
        first = next(iter(failed.items()))
        raise RaypipeError(
            f"{len(failed)} of {len(items)} items failed to generate (first: {first[0]}: {first[1]}); "
            f"see {log_path}. Re-run the same command to retry them; finished items are kept."
        )
    truncated = sum(1 for it in items if done[it.id].get("finish_reason") == "length")
    if truncated:
        log(f"[eval bfcl] {truncated} outputs hit max_new_tokens={cfg.generation.max_new_tokens} "
            "(cut off; raise it if they are calls)")

    results: dict[str, dict[str, str]] = {}
    for it in items:
        results.setdefault(it.category, {})[it.id] = done[it.id]["generated_text"]
    write_result_files(results, out / "results")
    flat = {i: r for by_id in results.values() for i, r in by_id.items()}
    report = score_results(items, flat, decoder, underscore_to_dot=cfg.underscore_to_dot)
    report["run"] = {k: meta[k] for k in ("model", "adapter", "format", "lang", "decoder")}
    (out / "REPORT.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    from raypipe.eval.report import collect_run, markdown_table

    (out / "report.md").write_text(markdown_table([collect_run(out)]) + "\n", encoding="utf-8")
    return {
        "items": len(items),
        "generated": len(pending),
        "truncated": truncated,
        "ast_summary": report.get("ast_summary"),
        "relevance_detection": report.get("relevance_detection"),
        "out": str(out),
    }
