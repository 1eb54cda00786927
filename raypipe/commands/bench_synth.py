"""`raypipe bench synth`: throughput, rate-limit, fault and resume figures of the LLM engine
against the local test server, side by side with ray.data.llm's HTTP processor and a bare
asyncio loop."""

from __future__ import annotations

from raypipe.registry import Command


def _add_bench(p) -> None:
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    p.add_argument("--quick", action="store_true", help="a quarter of the requests (a smoke run)")
    p.add_argument("--only", default=None,
                   help="comma-separated scenarios: latency_bound, ray_http_processor, client_cpu, "
                        "rate_limited, faults, resume, scale (default: all)")


def _run_bench(args) -> int:
    import json

    from raypipe.errors import RaypipeError
    from raypipe.llm.bench import SCENARIOS, run_all

    only = tuple(x.strip() for x in args.only.split(",")) if args.only else SCENARIOS
    unknown = [x for x in only if x not in SCENARIOS]
    if unknown:
        raise RaypipeError(f"--only: unknown scenario(s) {unknown} (known: {', '.join(SCENARIOS)})")
    result = run_all(quick=args.quick, only=only)
    text = json.dumps(result, indent=2)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    if args.json:
        print(text)
    else:
        for key, value in result.items():
            if key not in ("scenarios", "notes", "req_s"):
                print(f"{key:28s} {value}")
        print(f"{'req_s':28s} {json.dumps(result['req_s'])}")
    return 0


COMMANDS = [
    Command(path=("bench", "synth"), help="benchmark the LLM engine against the local test server",
            add_arguments=_add_bench, run=_run_bench),
]
