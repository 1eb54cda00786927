"""Row-level failures. A `RowError` sends one row to the rejects dataset with its reason and
the job goes on; `raypipe.errors.FatalJobError` stops the whole job with one message."""

from __future__ import annotations


class RowError(Exception):
    """This row cannot be completed. `reason` starts with its kind: "http error: ...",
    "parse error: ...", "validation error: ..." (free text after the kind)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
