"""One run per output folder: claim it before anything is written.

A run (``nao train``, ``nao search``) holds an exclusive lock on ``FOLDER/.naonet.lock``
for as long as its process lives. The operating system drops the lock when the process
ends, however it ends (forked children, such as DataLoader workers, close their copies
of the lock file, so orphaned ones do not keep it), so a killed run leaves no stale lock
and rerunning it resumes. A second process gets a one-line error naming the holder. The
lock file also says which command made the folder (``nao train (process 123)``): a
folder of another command is refused before anything in it is touched, unless it holds
nothing but that lock (and temporaries: a run killed before its first file); whether
the configuration matches is checked by each command against its checkpoint, also
before writing. A run refused after its claim (bad data, a configuration that does not
match) leaves no trace: releasing a folder that holds nothing but the lock removes the
lock, and the folder if the claim made it.
"""

from __future__ import annotations

import atexit
import errno
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from naonet.errors import UserError
from naonet.files import ATOMIC_TEMPORARY_NAME, atomic_write_text

LOCK_NAME = ".naonet.lock"  # holds "nao COMMAND (process PID)" of the last holder
# Files of a run folder that more than one module names.
CONFIG_NAME = "config.yaml"  # the run's options as resolved (nao train and nao search)
TRAIN_CHECKPOINT = "last.pt"  # nao train's latest epoch
SEARCH_CHECKPOINT = "search_state.pt"  # nao search's state
# Folders made before the marker existed are told apart by their checkpoint.
CHECKPOINT_OF = {"train": TRAIN_CHECKPOINT, "search": SEARCH_CHECKPOINT}

# open lock files (the lock lives as long as the handle), and the topmost folder the
# claim made (None: the run folder existed)
_held: dict[Path, tuple[IO, Path | None]] = {}
LOCK_ATTEMPTS = 5  # a lock file replaced under us again and again means a busy folder


def _forget_inherited_locks() -> None:
    """In a forked child (a DataLoader worker): close the inherited lock files. A lock
    lasts while any process has its file open, and workers orphaned by a killed run
    live on for seconds, so the rerun that should resume found its folder "in use"."""
    for handle, _ in _held.values():
        handle.close()  # the child's copy; the parent keeps its own and its lock
    _held.clear()


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_forget_inherited_locks)


def claim_run_folder(folder: str | Path, command: str) -> Path:
    """Create ``folder`` if needed, lock it for this process and mark it as ``command``'s.

    Raises a UserError (nothing written) when the folder cannot be used, is held by
    another process or belongs to another command (one that wrote something there).
    """
    folder = Path(folder)  # an empty --output is refused by the configs
    key = folder.resolve()
    held = _held.get(key)
    if held is not None:  # claimed earlier by this process (library use, tests)
        held[0].seek(0)
        check_command(folder, command, held[0].read())
        return folder
    created = topmost_missing(key)
    handle = None
    try:
        handle = _lock(folder)
        handle.seek(0)
        holder = handle.read()
        owner = folder_command(folder, holder)
        # A run killed between its claim and its first file leaves nothing to overwrite.
        killed_starting = owner is not None and holds_only_its_lock(folder)
        if not killed_starting:
            check_command(folder, command, holder)
        if owner == command or killed_starting:
            remove_abandoned_temporaries(folder)
        handle.seek(0)
        handle.truncate()
        handle.write(f"nao {command} (process {os.getpid()})\n")
        handle.flush()
    except BaseException:
        if handle is not None:
            if created is not None:  # the claim made the folder: the lock file is ours
                (key / LOCK_NAME).unlink(missing_ok=True)
            handle.close()
        remove_empty_folders(key, created)
        raise
    _held[key] = (handle, created)
    return folder


def remove_abandoned_temporaries(folder: Path) -> None:
    """Delete the temporary files of writes a killed run never finished. Called with the
    folder's lock held, in a folder a run of the same command made (or one that holds
    nothing else): no one else is writing there, and nothing else in it is named so."""
    for entry in folder.iterdir():
        if ATOMIC_TEMPORARY_NAME.fullmatch(entry.name) and entry.is_file() \
                and not entry.is_symlink():
            entry.unlink(missing_ok=True)


def topmost_missing(folder: Path) -> Path | None:
    """The highest of ``folder`` and its parents that does not exist (None: it does)."""
    missing = None
    for path in (folder, *folder.parents):
        if path.exists():
            break
        missing = path
    return missing


def release_run_folder(folder: str | Path) -> None:
    """Drop this process's lock on ``folder`` (it is dropped at exit anyway). A folder
    that holds nothing but the lock (its run was refused before it wrote anything) is
    left as it was found: the lock file goes, and so do the folders the claim made."""
    folder = Path(folder).resolve()
    held = _held.pop(folder, None)
    if held is None:
        return
    handle, created = held
    try:
        if [entry.name for entry in folder.iterdir()] == [LOCK_NAME]:
            # while still locked: a process that opened this file meanwhile finds it gone
            # once it gets the lock, and locks the new one instead (_lock)
            (folder / LOCK_NAME).unlink()
    except OSError:  # gone or unreadable: nothing of the run's to tidy
        pass
    finally:
        handle.close()  # before rmdir: on NFS an open deleted file keeps a folder busy
    remove_empty_folders(folder, created)


def remove_empty_folders(folder: Path, top: Path | None) -> None:
    """Remove ``folder`` and its parents up to ``top`` while they are empty."""
    if top is None:
        return
    for path in (folder, *folder.parents):
        try:
            path.rmdir()  # refuses a folder that is not empty: then the rest stays too
        except OSError:
            return
        if path == top:
            return


@atexit.register
def release_all_run_folders() -> None:
    """Release every folder this process holds (at exit: the system would drop the
    locks anyway, but not tidy a refused run's folder)."""
    for folder in list(_held):
        release_run_folder(folder)


@contextmanager
def releasing_new_claims():
    """Release, when the block ends, the folders claimed inside it (a command's), and
    only those: a library caller's own claims stay held."""
    before = set(_held)
    try:
        yield
    finally:
        for folder in set(_held) - before:
            release_run_folder(folder)


def make_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--output {folder} is a file, not a folder; pass a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create the output folder {folder} "
                        f"({error.strerror or error}); pass another --output") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"the output folder {folder} is not writable; pass another --output")


def _lock(folder: Path) -> IO:
    """The folder's lock file, open and exclusively locked. A releasing run may delete
    the file between our open and our lock: then the lock we got is on a file no one
    else will see, so lock the one at the path instead."""
    for _ in range(LOCK_ATTEMPTS):
        make_folder(folder)  # again after a release removed it
        handle = _locked_file(folder / LOCK_NAME, folder)
        try:
            current = os.stat(folder / LOCK_NAME)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(os.fstat(handle.fileno()), current):
            return handle
        handle.close()
    raise UserError(f"the lock file of the output folder {folder} keeps being replaced; "
                    "another process is using it: pass another --output")


def _locked_file(path: Path, folder: Path) -> IO:
    import fcntl

    try:
        handle = open(path, "a+")  # noqa: SIM115 - held open for the life of the run
    except OSError as error:
        raise UserError(f"cannot write in the output folder {folder} "
                        f"({error.strerror or error}); pass another --output") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        if error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise UserError(f"the output folder {folder} is in use by {holder}; wait for it "
                            "to finish or pass another --output") from None
        raise UserError(f"cannot lock the output folder {folder} ({error.strerror}); pass "
                        "another --output") from None
    return handle


def folder_command(folder: Path, lock_text: str) -> str | None:
    """The command that made ``folder``: named in its lock file, else known by its
    checkpoint (a folder made before the lock existed); None for a new folder."""
    named = re.match(r"nao ([\w-]+)", lock_text.strip())
    if named:
        return named.group(1)
    for command, checkpoint in CHECKPOINT_OF.items():
        if (folder / checkpoint).exists():
            return command
    return None


def check_command(folder: Path, command: str, lock_text: str) -> None:
    """A UserError if ``folder`` holds another command's run."""
    owner = folder_command(folder, lock_text)
    if owner is not None and owner != command:
        raise UserError(f"{folder} holds a `nao {owner}` run; `nao {command}` would overwrite "
                        "it: pass another --output")


def holds_only_its_lock(folder: Path) -> bool:
    """Whether ``folder`` holds nothing but its lock file and write temporaries."""
    return all(entry.name == LOCK_NAME or ATOMIC_TEMPORARY_NAME.fullmatch(entry.name)
               for entry in folder.iterdir())


def lost_checkpoint(run_dir: Path, holds: str, checkpoint: str, anew: str) -> UserError:
    """The error for a run folder that ``holds`` a run's outputs (written only after its
    first checkpoint) but not its ``checkpoint``: deleted, say, after the run. A rerun
    used to start over on top of them without a word. ``anew``: what to do in another
    folder ('train anew')."""
    return UserError(f"{run_dir} holds {holds} but not its checkpoint {checkpoint}, which a "
                     f"rerun resumes from; put it back, or {anew} in another --output (or "
                     f"delete {run_dir})")


def write_run_config(run_dir: Path, config: dict, is_main: bool) -> None:
    """Make ``run_dir`` and write the run's resolved options to it (``CONFIG_NAME``) on
    the main process; every process waits until it is there. Paths are written absolute
    (:func:`absolute_paths`), so ``--config run_dir/config.yaml`` given from any folder
    names this run and its files (as typed, they were relative to where it started)."""
    from naonet.distributed import barrier

    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / CONFIG_NAME, run_config_text(config))
    barrier()


def run_config_text(config: dict) -> str:
    """The run's resolved options as its ``CONFIG_NAME`` holds them (YAML, paths
    absolute)."""
    import yaml

    return yaml.safe_dump(absolute_paths(config), sort_keys=False)


# The options that name files or folders: the data, the run folder, a search's seed pool
# file, and its reference table (table:PATH).
PATH_OPTIONS = ("data", "output", "seed_pool_file")
TABLE_OPTIONS = ("reference",)


def absolute_paths(config: dict) -> dict:
    """``config`` with the paths of its path options made absolute (``~`` expanded)."""
    from naonet.nb201.table import TABLE_PREFIX

    def absolute(text: str) -> str:
        return str(Path(text).expanduser().resolve())

    paths = {key: absolute(config[key]) for key in PATH_OPTIONS if config.get(key)}
    tables = {key: TABLE_PREFIX + absolute(config[key][len(TABLE_PREFIX):])
              for key in TABLE_OPTIONS
              if isinstance(config.get(key), str) and config[key].startswith(TABLE_PREFIX)}
    return {**config, **paths, **tables}
