"""Errors that end a command with a one-line message and exit code 2."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad user input: printed as ``path:line: what is wrong``, exit code 2, no traceback."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.detail = message
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        self.message = where + message
        super().__init__(self.message)
