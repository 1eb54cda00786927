"""Row-level outcomes other than success.

- `RowError`: the row's *content* cannot be completed (an answer that fails its checks after
  the re-asks, a 4xx about the request, a program that returns nothing): it goes to the rejects
  with its reason and is settled; only `--retry-rejects` tries it again.
- `TransientError`: the row could not be completed *now* (retries exhausted on 429, 5xx,
  timeouts or connection errors; a rate-limiter or actor failure): it is not settled, stays
  pending, and the next run retries it. Never a reject.
- `raypipe.errors.FatalJobError` stops the whole job with one message.
"""

from __future__ import annotations


class RowError(Exception):
    """This row cannot be completed. `reason` starts with its kind: "http error: ...",
    "parse error: ...", "validation error: ..." (free text after the kind)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class TransientError(Exception):
    """This row could not be completed for a reason that may pass (the row stays pending)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
