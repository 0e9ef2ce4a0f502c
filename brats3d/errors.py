"""User-facing errors: the CLI prints their message as one line and exits non-zero."""

from __future__ import annotations

from pathlib import Path


class BratsInputError(ValueError):
    """Bad input a user can fix: the message names the file and what is wrong with it."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)
