"""User-facing errors: the CLI prints their message as one line and exits non-zero."""

from __future__ import annotations

from pathlib import Path


class BratsInputError(ValueError):
    """Bad input a user can fix: the message names the file and what is wrong with it."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


def find_input_error(exc: BaseException) -> BratsInputError | None:
    """The ``BratsInputError`` behind ``exc``: itself, a cause or context in its chain (MONAI wraps errors raised
    inside transforms in a ``RuntimeError``), or one re-raised from a DataLoader worker, which arrives as a
    ``RuntimeError`` whose text holds the worker's traceback ending in ``BratsInputError: <path>: <problem>``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, BratsInputError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    marker = f"{BratsInputError.__module__}.{BratsInputError.__name__}: "
    for line in reversed(str(exc).splitlines()):
        for prefix in (marker, f"{BratsInputError.__name__}: "):
            if line.startswith(prefix):
                return BratsInputError(None, line[len(prefix) :].strip())
    return None
