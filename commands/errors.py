"""A refusal: a clear message that says what was wrong and how to write it."""

from __future__ import annotations


class Refusal(Exception):
    def __init__(self, message: str, hint: str | None = None, *, code: str = "refused") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code
