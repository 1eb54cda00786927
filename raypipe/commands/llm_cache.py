"""`raypipe llm cache-stats DIR`: entries, bytes and segments of a request cache (one listing).
`raypipe bench cache`: the cache's write/lookup rates and filesystem calls per request, side by
side with the one-file-per-entry layout it replaced."""

from __future__ import annotations

from raypipe.registry import Command


def _add_stats(p) -> None:
    p.add_argument("cache_dir", help="the llm.cache_dir of a job (local dir or URI)")


def _run_stats(args) -> int:
    import json

    from raypipe.errors import RaypipeError
    from raypipe.llm.cache import RequestCache

    cache = RequestCache(args.cache_dir)
    if not cache.exists():
        raise RaypipeError(f"cache-stats: {args.cache_dir}: no such cache directory")
    print(json.dumps(cache.stats()))
    return 0


def _add_bench(p) -> None:
    p.add_argument("--entries", type=int, default=200_000, help="entries written to the segmented cache")
    p.add_argument("--baseline-entries", type=int, default=20_000,
                   help="entries written to the one-file-per-entry baseline (one file each)")
    p.add_argument("--lookups", type=int, default=20_000, help="hits and misses looked up in each")
    p.add_argument("--answer-bytes", type=int, default=400, help="answer text length per entry")
    p.add_argument("--work-dir", default=None, help="where the temporary caches go (default: $TMPDIR)")
    p.add_argument("--out", default=None, help="also write the JSON to this file")


def _run_bench(args) -> int:
    from raypipe.errors import RaypipeError
    from raypipe.llm.cache_bench import main_json

    if min(args.entries, args.baseline_entries, args.lookups) < 1:
        raise RaypipeError("--entries, --baseline-entries and --lookups must be >= 1")
    text = main_json(entries=args.entries, baseline_entries=args.baseline_entries,
                     lookups=args.lookups, answer_bytes=args.answer_bytes, work_dir=args.work_dir)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    print(text)
    return 0


COMMANDS = [
    Command(path=("llm", "cache-stats"), help="entries, bytes and segments of a request cache",
            add_arguments=_add_stats, run=_run_stats),
    Command(path=("bench", "cache"), help="benchmark the request cache (vs one file per entry)",
            add_arguments=_add_bench, run=_run_bench),
]
