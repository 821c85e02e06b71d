"""Exceptions shared across the pipeline."""

from __future__ import annotations


class ClipError(Exception):
    """One clip cannot be processed; the run records it as an error row and goes on.

    Attributes:
        stage: pipeline stage that failed (``annotation``, ``decode``, ``face``, ``phases``,
            ``motion``), so error tables can be grouped by cause.
    """

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage
