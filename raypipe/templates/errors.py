"""Errors of the template layer. Both are row-level: the row goes to rejects with the message."""


class ParseError(ValueError):
    """Generated text is not a well-formed completion of the format (or not pythonic calls)."""


class NothingToTrain(ValueError):
    """A sample has no assistant token to train on; `reason` says why (goes to the rejects file)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
