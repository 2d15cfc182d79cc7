from __future__ import annotations

import msgspec

CONTRACT_VERSION = 1


class ServiceError(Exception):
    """A failure a caller can act on: an HTTP-like code and a sentence for the user."""

    def __init__(self, code: int, message: str, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class Empty(msgspec.Struct, frozen=True):
    pass


class ErrorReply(msgspec.Struct, frozen=True):
    code: int
    message: str
    field: str | None = None
