"""What a worker spent (requests, tokens, cost), on disk before it can be lost.

Each worker writes `out/_spend/<generation>-<worker>.json`. Before a request goes out, the
file must already count it: the worker books requests ahead in blocks (`requests_reserved`),
so the file is written once per block, not per request, and a worker killed mid-run leaves a
count that is never below what the endpoint received (at most one block above). Commits
rewrite the file with exact figures; the summary adds up every worker's file over all runs.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from raypipe.io import fs
from raypipe.io.dataset import SPEND, list_names, write_atomic

FIELDS = ("requests", "responses", "cache_hits", "retries", "throttled", "prompt_tokens",
          "completion_tokens", "cost_usd")


class SpendLog:
    def __init__(self, out: str, generation: str, stage: str, block: int):
        self.path = fs.join(out, SPEND, f"{generation}-w{secrets.token_hex(6)}.json")
        self.stage, self.block = stage, max(1, block)
        self.reserved = 0
        self.totals = {k: 0 for k in FIELDS}

    def needs_booking(self, requests_so_far: int) -> bool:
        """True when the next request would exceed what the file already counts."""
        return requests_so_far + 1 > self.reserved

    def book(self, totals: dict[str, Any], in_flight: int = 0) -> None:
        """Write the figures; `requests_reserved` covers the next block of requests (or only
        those in flight, for an exact figure when the worker is idle)."""
        self.totals = {k: totals.get(k, 0) for k in FIELDS}
        ahead = self.block if in_flight else 0
        self.reserved = self.totals["requests"] + ahead
        body = {"stage": self.stage, **self.totals, "requests_reserved": self.reserved}
        write_atomic(self.path, json.dumps(body))


def read_spend(out: str, generation: str) -> dict[str, Any]:
    """Every worker's figures for one generation, added up. `requests` is the upper bound
    where a worker died with requests booked ahead (never below what was sent)."""
    totals: dict[str, Any] = {k: 0 for k in FIELDS}
    workers = 0
    for name in list_names(out, SPEND):
        if not (name.startswith(f"{generation}-") and name.endswith(".json")):
            continue
        try:
            spent = json.loads(fs.read_text(fs.join(out, SPEND, name)))
        except ValueError:
            continue  # a half-written file of a dead worker (local disks write atomically)
        workers += 1
        for k in FIELDS:
            totals[k] += spent.get(k, 0)
        totals["requests"] += max(0, spent.get("requests_reserved", 0) - spent.get("requests", 0))
    totals["cost_usd"] = round(totals["cost_usd"], 6)
    totals["workers"] = workers
    return totals
