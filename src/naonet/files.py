"""Files written atomically: a temporary file beside the target, renamed over it, so
that a kill leaves the old file or the new one, never a part of either. The files a run
produces (checkpoints, result and score files, pictures, exports, the decoded-data
cache) are written through here; TensorBoard's event files and an archive's extraction
(staged in a folder renamed into place) are not."""

from __future__ import annotations

import errno
import glob
import os
import re
import tempfile
import time
from pathlib import Path


def temporary_name(target: str) -> re.Pattern:
    """The names of atomic_write_bytes' temporaries of ``target`` (a regular expression):
    ".TARGET.PID." and mkstemp's 8 characters."""
    return re.compile(rf"\.{target}\.(?P<pid>\d+)\.[a-z0-9_]{{8}}")


ATOMIC_TEMPORARY_NAME = temporary_name(".+")  # of any file
# A temporary left by a process that is gone and untouched this long is abandoned (a live
# write keeps writing to its file until it renames it).
STALE_AFTER_SECONDS = 60


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``.

    The file gets the mode ``open`` would give it (0666 less the umask), or keeps the
    mode of the file it replaces: a user's ``chmod`` survives a resumed run.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():  # found before the work, not by the rename after it
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    remove_stale_temporaries(path)
    mode = file_mode(path)
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent,
                                             prefix=f".{path.name}.{os.getpid()}.")
    except OSError as error:
        raise _naming(error, path) from None
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.chmod(file.fileno(), mode)  # mkstemp creates 0600
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename in (None, temporary):
            raise _naming(error, path) from None  # a full disk's write names no file
        raise


def _naming(error: OSError, path: Path) -> OSError:
    """``error`` about ``path``, the file being written: the temporary's name means
    nothing to the user."""
    named = type(error)(error.errno, error.strerror or str(error), str(path))
    named.filename2 = error.filename2
    return named


def remove_stale_temporaries(path: Path) -> None:
    """Delete the temporaries of ``path`` that killed writes left behind: those of a
    process that no longer runs, untouched for ``STALE_AFTER_SECONDS``. Outside a run
    folder (caches, exports, result files) nothing else would ever remove them, and a
    decoded data set's can be 150 MB."""
    # "Gone" means gone on this machine: a temporary on a file system shared with other
    # machines (or containers) could be a live write there, if untouched for a minute.
    pattern, now = temporary_name(re.escape(path.name)), time.time()
    for entry in path.parent.glob(f".{glob.escape(path.name)}.*"):
        named = pattern.fullmatch(entry.name)
        if named is None or _running(int(named["pid"])):
            continue
        try:
            if entry.is_file() and now - entry.stat().st_mtime >= STALE_AFTER_SECONDS:
                entry.unlink()
        except OSError:  # gone already, or not ours to remove: leave it
            continue


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (on Windows: assumed so)."""
    if pid == os.getpid() or os.name == "nt":  # Windows' os.kill would end it
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process (or no such number)
        return False
    except OSError:  # it exists, under another user
        return True
    return True


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


def append_line(path: str | Path, line: str) -> None:
    """Append ``line`` and a newline to ``path`` and flush it to the disk: a log that
    grows by one record at a time, where rewriting it whole would cost its length each
    time. A stop during the write leaves at most a last line without its newline, which
    the reader drops (see :func:`complete_lines`)."""
    with open(path, "a", encoding="utf-8") as file:
        file.write(line + "\n")
        file.flush()
        os.fsync(file.fileno())


def complete_lines(text: str) -> list[str]:
    """The lines of an appended log (:func:`append_line`) that were written whole: a last
    line without its newline was cut short by a stop."""
    lines = text.split("\n")
    return [line for line in lines[:-1] if line.strip()]


def as_json_holds(value):
    """``value`` as a JSON file gives it back (tuples as lists): what a saved config is
    compared with."""
    import json

    return json.loads(json.dumps(value))
