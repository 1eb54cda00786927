"""`raypipe eval bfcl`: answer BFCL items with a model, write result files in the BFCL
convention, score them with the same scorer as `raypipe score bfcl`.

Backends: a local model rendered with raypipe's templates (vLLM on GPUs, transformers on CPU,
`raypipe.infer.run.generate`) or a hosted model behind an OpenAI-compatible endpoint
(`raypipe.infer.hosted`, function-calling or prompt mode, through raypipe's LLM engine).
Data: V1 / zh-TW, or upstream V3/V4 (all single-turn python categories).

Output directory:

    run.json            what was evaluated (model, adapter, format or mode, lang, version, decoder)
    generations.jsonl   local backends: one line per generated item, appended as rows finish
    hosted/             hosted backend: the LLM engine's output (resume markers, rejects, summary)
    results/            BFCL_v4_<category>_result.json (V1: gorilla_openfunctions_v1_test_...)
    REPORT.json         the scorer's report, plus a `run` block
    report.md           the Markdown table of this run
    manifest.json       what produced the numbers (data hashes, scorer, model, sampling, versions)

Resumable by id: a re-run with the same out directory skips every item already answered.
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
from raypipe.infer.hosted import HostedConfig

AST_CATEGORIES = ["simple", "multiple_function", "parallel_function", "parallel_multiple_function"]
DEFAULT_CATEGORIES = [*AST_CATEGORIES, "relevance"]  # V1; V3/V4: every single-turn category found
GENERATIONS = "generations.jsonl"


@dataclass
class EvalBfclConfig:
    data: str = input_paths()  # V1 (en/, zhtw/, possible_answer/) or V3/V4 (BFCL_v4_*.json, possible_answer/)
    out: str = output_path()
    generation: GenerationConfig | None = None  # a local model (vLLM / transformers) ...
    hosted: HostedConfig | None = None  # ... or a hosted one (OpenAI-compatible endpoint)
    format: str = "tools-dt"  # local backends: a raypipe.templates preset name
    lang: Literal["en", "zhtw"] = "zhtw"  # V1 data; V3/V4 data is English
    version: Literal["v1", "v3", "v4"] | None = None  # None: V1 if present, else V4, else V3
    categories: list[str] | None = None  # None: every category of the version with a file
    limit: int | None = number(ge=1, default=None)  # first N items of each category (smoke runs)
    decoder: Literal["decision-token", "pythonic", "openai", "json"] | None = None  # None: follows format/mode
    underscore_to_dot: bool | None = None  # None: true for hosted FC mode, else false
    rules: Literal["v1", "upstream"] | None = None  # None: v1 for V1 data, upstream for V3/V4

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if (self.generation is None) == (self.hosted is None):
            raise ValueError("give exactly one of generation (a local model) or hosted (an endpoint)")


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
        keys = ("model", "adapter", "format", "lang", "version", "max_new_tokens", "temperature", "seed", "endpoint")
        # a key an older raypipe did not record (version, endpoint) cannot conflict
        diff = [k for k in keys if (k in old or k in ("model", "format")) and old.get(k) != meta.get(k)]
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


def load_items(cfg: EvalBfclConfig) -> list[Any]:
    from raypipe.eval.bfcl_data import find_question_files, load_bfcl

    if not Path(cfg.data).is_dir():
        raise RaypipeError(f"BFCL data directory {cfg.data} does not exist")
    version = cfg.version or find_question_files(Path(cfg.data), cfg.lang)[0]
    categories = cfg.categories or (DEFAULT_CATEGORIES if version == "v1" else None)
    # V3/V4 data is read from DIR/<lang>/ when that folder exists, else from DIR (English)
    return select_items(load_bfcl(cfg.data, cfg.lang, categories, version=version, rules=cfg.rules), cfg.limit)


def run_eval_bfcl(cfg: EvalBfclConfig, log=print) -> dict[str, Any]:
    from raypipe.eval.scoring import score_results, write_result_files

    out = Path(cfg.out)
    items = load_items(cfg)
    if not items:
        raise RaypipeError(f"no BFCL items selected from {cfg.data}")
    version = items[0].version
    meta = run_meta(cfg, version)
    check_run_meta(out, meta)

    if cfg.hosted is not None:
        from raypipe.infer.hosted import generate_hosted

        log(f"[eval bfcl] {len(items)} items ({version}) -> {cfg.hosted.llm.get('model')} ({cfg.hosted.mode} mode)")
        answers, summary = generate_hosted(items, cfg.hosted, out / "hosted", log=log)
        truncated, generated = 0, summary.get("this_run", {}).get("completed", 0)
    else:
        answers, truncated, generated = _generate_local(items, cfg, out, log)

    results: dict[str, dict[str, Any]] = {}
    for it in items:
        results.setdefault(it.category, {})[it.id] = answers[it.id]
    write_result_files(results, out / "results", version=version)
    flat = {i: r for by_id in results.values() for i, r in by_id.items()}
    report = score_results(items, flat, meta["decoder"], underscore_to_dot=meta["underscore_to_dot"])
    report["run"] = {k: meta[k] for k in ("model", "adapter", "format", "lang", "version", "decoder")}
    (out / "REPORT.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    _write_manifest(cfg, items, out, meta, report)

    from raypipe.eval.report import collect_run, markdown_table

    (out / "report.md").write_text(markdown_table([collect_run(out)]) + "\n", encoding="utf-8")
    overall = (report.get("upstream") or {}).get("overall")
    return {
        "items": len(items),
        "generated": generated,
        "truncated": truncated,
        "version": version,
        "ast_summary": report.get("ast_summary"),
        "relevance_detection": report.get("relevance_detection"),
        "overall": overall["accuracy"] if overall else None,
        "out": str(out),
    }


def run_meta(cfg: EvalBfclConfig, version: str) -> dict[str, Any]:
    """run.json: what this run evaluates; a resumed run must match it."""
    if cfg.hosted is not None:
        from raypipe.eval.manifest import public_endpoint

        llm = cfg.hosted.llm_config()
        fc = cfg.hosted.mode == "fc"
        return {
            "backend": "openai", "model": llm.model, "adapter": None, "format": f"hosted-{cfg.hosted.mode}",
            "lang": cfg.lang, "version": version, "endpoint": public_endpoint(llm.base_url),
            "decoder": cfg.decoder or ("openai" if fc else "pythonic"),
            "underscore_to_dot": fc if cfg.underscore_to_dot is None else cfg.underscore_to_dot,
            "max_new_tokens": llm.max_tokens, "temperature": llm.temperature, "seed": None,
        }
    from raypipe.templates import get_format

    gen = cfg.generation
    return {
        "backend": gen.backend, "model": gen.model, "adapter": gen.adapter, "format": cfg.format, "lang": cfg.lang,
        "version": version, "endpoint": None, "decoder": cfg.decoder or decoder_for_format(get_format(cfg.format)),
        "underscore_to_dot": bool(cfg.underscore_to_dot), "max_new_tokens": gen.max_new_tokens,
        "temperature": gen.temperature, "seed": gen.seed, "generation": dataclasses.asdict(gen),
    }


def _generate_local(items: list[Any], cfg: EvalBfclConfig, out: Path, log) -> tuple[dict[str, str], int, int]:
    """({id: generated text}, outputs cut at max_new_tokens, items generated by this run)."""
    from raypipe.infer.run import generate
    from raypipe.templates import get_format

    fmt = get_format(cfg.format)
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
    return {it.id: done[it.id]["generated_text"] for it in items}, truncated, len(pending)


def _write_manifest(cfg: EvalBfclConfig, items: list[Any], out: Path, meta: dict, report: dict) -> None:
    from raypipe.commands.score import scorer_info
    from raypipe.eval.manifest import run_manifest, write_manifest

    data_files = sorted({it.source for it in items})
    results = sorted(str(p) for p in (out / "results").glob("*.json"))
    if cfg.hosted is not None:
        from raypipe.infer.hosted import system_prompt_of

        llm = cfg.hosted.llm_config()
        manifest = run_manifest(
            kind="eval_bfcl", datasets=data_files + results, scorer=scorer_info(report),
            template={"backend": "openai", "mode": cfg.hosted.mode, "python_hint": cfg.hosted.python_hint,
                      "system_prompt_file": cfg.hosted.system_prompt_file},
            system_prompt=system_prompt_of(cfg.hosted) if cfg.hosted.mode == "prompt" else None,
            model=llm.model, endpoint=llm.base_url,
            sampling={"temperature": llm.temperature, "max_tokens": llm.max_tokens},
            extra={"api_key_env": llm.api_key_env, "version": meta["version"], "lang": meta["lang"],
                   "items": len(items)})
    else:
        gen = cfg.generation
        manifest = run_manifest(
            kind="eval_bfcl", datasets=data_files + results, scorer=scorer_info(report),
            template={"format": cfg.format, "backend": gen.backend}, model=gen.model, adapter=gen.adapter,
            sampling={"temperature": gen.temperature, "top_p": gen.top_p, "max_new_tokens": gen.max_new_tokens,
                      "stop": list(gen.stop)},
            seeds=gen.seed, extra={"version": meta["version"], "lang": meta["lang"], "items": len(items)})
    write_manifest(str(out), manifest)
