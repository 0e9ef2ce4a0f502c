"""Atomic output: every file we write appears complete or not at all, never over an input, with the user's umask.

A file is written under a hidden temporary name in the target's folder and renamed onto the target. The temporary
name carries the writer's process id, so a later write into the same folder removes what a killed writer left
behind (its process is gone) without touching the temporary file of a writer still at work. A command that fails
removes the output folders it created and left empty (``settle_outputs``).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from brats3d.errors import BratsInputError

_TMP_MARK = ".tmp"
_created_folders: list[Path] = []  # output folders this process created, parents first (see settle_outputs)


def current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (os.umask can only be read by setting)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


# Our temporary names: ".<target>.<pid>.<random characters from tempfile.mkstemp>.tmp<suffixes>".
_TEMPORARY = re.compile(rf"^\..+\.(\d+)\.[a-z0-9_]+{re.escape(_TMP_MARK)}")
# Folders this process has already freed of dead writers' temporaries: one scan per folder, not one per file
# written (a dataset-wide predict writes thousands of files into one folder).
_CLEANED: set[Path] = set()


def remove_stale_temporaries(folder: Path) -> None:
    """Delete our temporary files in ``folder`` whose writer process no longer exists (a run killed mid-write)."""
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            match = _TEMPORARY.match(entry.name)
            if match and int(match.group(1)) != os.getpid() and not _process_alive(int(match.group(1))):
                with contextlib.suppress(OSError):
                    entry.unlink()


def check_output_location(path: str | Path) -> None:
    """Fail early, without creating anything, when ``path`` could not be created as a folder and written to."""
    path = Path(path).absolute()
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        raise BratsInputError(path, f"cannot create the output folder: {existing} is a file; choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BratsInputError(path, f"cannot create the output folder: {existing} is not writable")


def ensure_output_dir(path: str | Path) -> Path:
    """Create ``path`` (and parents) and check it can be written, before any work: a one-line error otherwise."""
    path = Path(path)
    new = [p for p in (*reversed(path.absolute().parents), path.absolute()) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise BratsInputError(path, "output folder is an existing file; choose another --out") from exc
    except OSError as exc:
        raise BratsInputError(path, f"cannot create the output folder ({exc.strerror or exc})") from exc
    _created_folders.extend(new)
    if not path.is_dir():
        raise BratsInputError(path, "output folder is an existing file; choose another --out")
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise BratsInputError(path, f"cannot write into the output folder ({exc.strerror or exc})") from exc
    return path


def settle_outputs(failed: bool) -> None:
    """End of a command: when it failed, remove the output folders it created that are still empty, deepest
    first, so that a command failing before it wrote anything leaves no trace. A folder that existed before, or
    that holds anything, is kept."""
    while _created_folders:
        folder = _created_folders.pop()
        if failed:
            with contextlib.suppress(OSError):  # not empty (kept), or already gone
                folder.rmdir()


@contextlib.contextmanager
def atomic_path(target: str | Path, protect: Iterable[str | Path] = ()) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only if the block succeeds.

    ``protect`` lists input files that must never be overwritten. The file gets the mode ``open()`` would give a
    new file (0o666 less the umask), not the private 0o600 of a temporary file.
    """
    target = Path(target)
    for p in protect:
        if Path(p).exists() and target.exists() and os.path.samefile(p, target):
            raise BratsInputError(target, "refusing to overwrite an input file; choose another --out")
    ensure_output_dir(target.parent)
    folder = target.parent.resolve()
    if folder not in _CLEANED:
        remove_stale_temporaries(folder)
        _CLEANED.add(folder)
    # Keep the real suffix (.nii.gz, .png, ...) so writers that infer the format from the name still work.
    suffix = "".join(target.suffixes)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.{os.getpid()}.", suffix=f"{_TMP_MARK}{suffix}", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
