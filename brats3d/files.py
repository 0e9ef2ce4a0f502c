"""Atomic output: every file we write appears complete or not at all, and never over an input."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from brats3d.errors import BratsInputError


@contextlib.contextmanager
def atomic_path(target: str | Path, protect: Iterable[str | Path] = ()) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only if the block succeeds.

    ``protect`` lists input files that must never be overwritten.
    """
    target = Path(target)
    for p in protect:
        if Path(p).exists() and target.exists() and os.path.samefile(p, target):
            raise BratsInputError(target, "refusing to overwrite an input file; choose another --out")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Keep the real suffix (.nii.gz, .png, ...) so writers that infer the format from the name still work.
    suffix = "".join(target.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
