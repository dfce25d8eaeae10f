"""The one exception type for mistakes a person can fix (bad file, bad option, image too large)."""


class ImpastoError(Exception):
    """A user error: the message says what went wrong and what to do about it.

    The CLI prints it without a traceback and exits 2; the server answers it as 4xx JSON.
    """

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status
