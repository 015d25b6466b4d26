"""custody's one exception tree: permanent rejections and transient faults."""

from __future__ import annotations


class CustodyError(Exception):
    """Root of every error custody raises on purpose."""


class Rejected(CustodyError):
    """Raised when a command is refused for good: retrying cannot change the answer.

    Carries the wire ``statusCode``, ``errorCode`` and the human ``errorMessages``.
    """

    def __init__(self, status_code: int, error_code: str, *messages: str) -> None:
        super().__init__("; ".join(messages) or error_code)
        self.status_code = status_code
        self.error_code = error_code
        self.messages = list(messages) or [error_code]

    @classmethod
    def invalid(cls, *messages: str) -> Rejected:
        return cls(400, "INVALID_REQUEST", *messages)

    @classmethod
    def unauthorized(cls, *messages: str) -> Rejected:
        return cls(401, "UNAUTHORIZED", *messages)

    @classmethod
    def forbidden(cls, *messages: str) -> Rejected:
        return cls(403, "FORBIDDEN", *messages)

    @classmethod
    def not_found(cls, error_code: str, *messages: str) -> Rejected:
        return cls(404, error_code, *messages)

    @classmethod
    def conflict(cls, error_code: str, *messages: str) -> Rejected:
        return cls(409, error_code, *messages)


class Transient(CustodyError):
    """Raised when a fault may go away by itself (database down, deadlock, broker hiccup).

    The task adapter retries these with backoff; nothing else is retried.
    """


class Misconfigured(CustodyError):
    """Raised when the settings cannot work as given (a missing or malformed master key);
    the process stops with the reason rather than run half-configured."""
