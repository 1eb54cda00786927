"""The error types the CLI turns into one clear line and a non-zero exit."""


class RaypipeError(Exception):
    """A user-facing error: bad input, bad config, missing file. The message says what and where."""


class FatalJobError(RaypipeError):
    """A job cannot go on (bad credentials, endpoint gone, error rate too high)."""


class MissingExtraError(RaypipeError):
    """An optional dependency is not installed; the message carries the install hint."""

    def __init__(self, package: str, extra: str):
        super().__init__(f"{package} is not installed: pip install 'raypipe[{extra}]'")
