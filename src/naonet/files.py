"""Files written atomically: a temporary file beside the target, renamed over it, so
that a kill leaves the old file or the new one, never a part of either. Every file a
run produces (checkpoints, result and score files, pictures, exports, caches) is
written through here."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

# The name of atomic_write_bytes' temporary file: ".NAME." and mkstemp's 8 characters.
ATOMIC_TEMPORARY_NAME = re.compile(r"\..+\.[a-z0-9_]{8}")


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``.

    The file gets the mode ``open`` would give it (0666 less the umask), or keeps the
    mode of the file it replaces: a user's ``chmod`` survives a resumed run.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = file_mode(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.chmod(file.fileno(), mode)  # mkstemp creates 0600
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def file_mode(path: Path) -> int:
    """The mode of the existing ``path``, else what ``open`` gives a new file."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)  # reading the umask means setting it; put it straight back
        return 0o666 & ~umask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(Path(path), lambda file: file.write(text.encode()))
