"""The one exception type for mistakes a person can fix (bad file, bad option, image too large)."""

import os


class ImpastoError(Exception):
    """A user error: the message says what went wrong and what to do about it.

    The CLI prints it without a traceback and exits 2; the server answers it as 4xx JSON.
    """

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def shown(value, limit: int = 80) -> str:
    """A value as an error message may echo it: its repr for strings, cut to `limit` characters,
    so that a 1 MB form field or argument never comes back whole."""
    text = str(value) if isinstance(value, (os.PathLike,)) else (repr(value) if isinstance(value, str) else str(value))
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text)} characters)"
    return text
