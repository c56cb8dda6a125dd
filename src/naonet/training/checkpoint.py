"""Atomic checkpoints that load with ``torch.load(..., weights_only=True)``.

A checkpoint holds the model, optimizer and scheduler states, the epoch reached, the
random number generator states, the resolved config and the architecture string, all
as tensors and plain Python values (no pickled classes).
"""

from __future__ import annotations

import errno
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch

from naonet.errors import UserError
from naonet.files import atomic_write_bytes
from naonet.options import flag_text
from naonet.text import counted


def atomic_save(obj: dict, path: str | Path) -> None:
    """``torch.save`` that never leaves a half-written file at ``path``."""
    atomic_write_bytes(Path(path), lambda file: torch.save(obj, file))


def require_checkpoint_file(path: Path) -> None:
    """A UserError unless ``path`` is a file; a run folder gets the names of its
    checkpoints."""
    if path.is_dir():
        from naonet.run_folder import SEARCH_CHECKPOINT as SEARCH_STATE
        from naonet.search.outputs import FINAL_POOL
        from naonet.search.ranking import CHECKPOINT_NAME as RANKING_STATE

        # a search's or an experiment's state is no network: its folder says how to get one
        found = sorted(p.name for p in path.glob("*.pt")
                       if p.name not in (SEARCH_STATE, RANKING_STATE))
        if found:
            hint = f"pass one of its checkpoints ({', '.join(found)}), e.g. {path / found[0]}"
        elif (path / FINAL_POOL).is_file():
            hint = ("a search's folder holds no trained network; train a line of its "
                    f"{FINAL_POOL} with nao train --arch")
        else:
            hint = "pass a checkpoint file (.pt)"
        raise UserError(f"{path} is a folder; {hint}")
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; check the path")


def torch_load_quietly(path: str | Path, restricted_pickle_module=None):
    """``torch.load`` onto the CPU, never running pickled code: tensors and plain
    containers only (``weights_only``), or through ``restricted_pickle_module``, an
    unpickler that builds nothing it was not told to. Without torch's warning about a
    pickle protocol it did not expect: a damaged or foreign file gets our one-line error
    (or loads), never a warning printed above it."""
    import warnings

    exported = exported_format(path)
    if exported is not None:  # torch.load would hand TorchScript to torch.jit.load
        runner = {"TorchScript": "torch.jit.load", "ONNX": "ONNX Runtime"}[exported]
        raise UserError(f"{path} is an exported {exported} model (nao export), not a "
                        f"checkpoint; pass the .pt file nao train wrote (run it with "
                        f"{runner})")
    check_zip_checksums(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        if restricted_pickle_module is None:
            return torch.load(path, map_location="cpu", weights_only=True)
        return torch.load(path, map_location="cpu", weights_only=False,
                          pickle_module=restricted_pickle_module)


def check_zip_checksums(path: str | Path) -> None:
    """A ``zipfile.BadZipFile`` naming the first record of a zip checkpoint whose bytes
    fail the CRC-32 the archive records for them: ``torch.load`` reads damaged tensor
    bytes without a word (a network then evaluates to other figures). A record saved
    without a CRC (``torch.serialization.set_crc32_options(False)`` writes 0) is not
    checked."""
    import zipfile

    with open(path, "rb") as file:
        if file.read(4) != b"PK\x03\x04":
            return  # a legacy or foreign file: torch.load says what is wrong
    with zipfile.ZipFile(path) as archive:
        for record in archive.infolist():
            if record.CRC == 0 and record.file_size:
                continue
            with archive.open(record) as stream:  # the zip reader compares the CRC
                try:
                    while stream.read(1 << 22):
                        pass
                except zipfile.BadZipFile:
                    raise zipfile.BadZipFile(f"its record {record.filename} fails its CRC "
                                             "check: damaged bytes") from None


def exported_format(path: str | Path) -> str | None:
    """``"TorchScript"`` for a zip holding ``constants.pkl`` (what ``torch.jit.save``
    writes and ``torch.load`` recognises), ``"ONNX"`` for an ``.onnx`` file or one that
    starts as an ONNX model's protobuf does (its first field, ``ir_version``: byte 0x08;
    a checkpoint starts with a zip's 'PK' or a pickle's 0x80), else None."""
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                scripted = any(name.rsplit("/", 1)[-1] == "constants.pkl"
                               for name in archive.namelist())
            return "TorchScript" if scripted else None
        with open(path, "rb") as file:
            first = file.read(1)
    except (OSError, zipfile.BadZipFile):
        return None  # unreadable: torch.load says what is wrong
    return "ONNX" if Path(path).suffix.lower() == ".onnx" or first == b"\x08" else None


def load_checkpoint(path: str | Path,
                    fix: str = "delete it to start over, or pass another file") -> dict:
    """Load a naonet checkpoint safely, or a one-line UserError saying what is wrong
    and, for a damaged file, ``fix``."""
    path = Path(path)
    require_checkpoint_file(path)
    try:
        state = torch_load_quietly(path)
    except UserError:  # a file that is no checkpoint at all, named for what it is
        raise
    except Exception as error:  # noqa: BLE001 - truncated zips, bad pickles, ...
        # A system error (a file it may not read) keeps the system's words, not "delete
        # it"; but torch's zip reader fails on some truncated archives with errno 22
        # ("Invalid argument"), which would read as a bad path.
        if isinstance(error, OSError) and (error.errno != errno.EINVAL
                                           or not readable(path)):
            raise
        raise UserError(f"checkpoint {path} is corrupt or not a naonet checkpoint "
                        f"({load_failure(path, error)}); {fix}") from None
    if not isinstance(state, dict):
        raise UserError(f"checkpoint {path} does not hold a dictionary; not a naonet checkpoint")
    return state


def readable(path: Path) -> bool:
    """Whether the system lets this process read ``path`` through to its end."""
    try:
        with open(path, "rb") as file:
            while file.read(1 << 20):
                pass
        return True
    except OSError:
        return False


def load_failure(path: Path, error: Exception) -> str:
    """Why ``torch.load`` failed, in a few words: PyTorch's own messages run to paragraphs
    of advice about ``weights_only`` that would mislead here."""
    import zipfile

    if not zipfile.is_zipfile(path):  # every checkpoint torch.save writes is a zip archive
        return "not a PyTorch zip archive, or truncated"
    text = str(error)
    marker = "WeightsUnpickler error:"
    if marker in text:  # the one line that says what the file holds
        text = text.split(marker, 1)[1]
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    first = first.split(" Please ", 1)[0]  # advice for the code that called torch.load
    return first if len(first) <= 120 else first[:117].rsplit(" ", 1)[0] + " ..."


START_OVER = "pass another --output, or delete the folder to start over"


def check_same_processes(path: Path, saved, current: int, what: str) -> None:
    """A UserError if the run saved at ``path`` ran on another number of processes: the
    steps of its epochs, its data shards and its learning rate are that count's (a file
    written before the count was saved is not checked)."""
    if saved is None or int(saved) == current:
        return
    saved = int(saved)
    how = "without torchrun" if saved == 1 else f"under torchrun with {saved} processes"
    raise UserError(f"{path} is a {what} of {counted(saved, 'process', 'processes')}, this "
                    f"one has {current}: rerun it {how} (its epochs' steps and learning "
                    f"rate are those of {saved}), or pass another --output")


def check_same_run(saved: dict, current: dict, path: Path, resumable: Collection[str],
                   what: str, added: Mapping[str, object] | None = None,
                   flags: Mapping[str, str] | None = None,
                   start_over: str = START_OVER, rerun: str = "resume it") -> None:
    """A run folder resumes only the run it was made by: every saved option but the
    ``resumable`` ones (where and how fast it runs, not what it computes) must be the
    current one, and each that is not is named as the flag that sets it (``flags``: the
    flag of a field whose name is not its flag's). ``added``: options that came after run
    folders were first written, with the value every run made before them ran with (a
    folder that lacks one resumes only with that value). ``start_over``: how to start
    over instead, in the refusal; ``rerun``: what a rerun with the saved options does."""
    from naonet.data.registry import own_size_as_zero

    saved = {**{key: value for key, value in (added or {}).items() if key in current},
             **saved}
    if isinstance(saved.get("image_size"), int) and "dataset" in saved:
        # folders written before configs recorded the data set's own size as 0
        saved["image_size"] = own_size_as_zero(saved["dataset"], saved["image_size"])
    differences = [_difference(key, value, current, (flags or {}).get(key))
                   for key, value in saved.items()
                   if key not in resumable and current.get(key) != value]
    if differences:  # every one (the first alone hid the option the user had changed)
        also = f" (and {', '.join(differences[1:])})" if len(differences) > 1 else ""
        raise UserError(f"{path} belongs to a {what} with {differences[0]}{also}; rerun "
                        f"with its options to {rerun}, or {start_over}")


def _difference(key: str, saved, current: dict, flag: str | None) -> str:
    """A saved option as its flag against the current one's, or as an option this
    version no longer has."""
    if key not in current:
        return f"{key}={saved!r} (an option this version of naonet does not have)"
    return f"{flag_text(key, saved, flag)}, not {flag_text(key, current[key], flag)}"


def check_run_classes(path: Path, saved, current: list[str] | None, done: str) -> None:
    """A run folder resumes only on the classes its run was ``done`` on (labels are class
    positions: a renamed or added class folder would shift or break them). ``saved``
    None: a file written before runs recorded their classes."""
    from naonet.data.registry import class_difference, same_classes

    if saved and current is not None and not same_classes(saved, current):
        difference = class_difference(list(saved), list(current), "the run", "--data")
        raise UserError(f"{path} was {done} on other classes ({difference}); pass the data "
                        f"it was {done} on, or another --output")


def check_run_images(path: Path, saved, current: int | None, done: str) -> None:
    """A run folder resumes only on as many training images as its run was ``done`` on:
    the held-out validation images and every epoch's order are drawn by position, so
    images added or removed would resume on another split without a word. ``saved``
    None: a file written before runs recorded the number."""
    if saved is not None and current is not None and int(saved) != current:
        raise UserError(f"{path} was {done} on {int(saved):,} training images of its --data, "
                        f"which holds {current:,} now (images added or removed: its held-out "
                        "validation images and its order would change); restore them, or "
                        "pass another --output")


@contextmanager
def restoring(path: Path, fix: str = START_OVER) -> Iterator[None]:
    """Read what a checkpoint holds inside this block: a missing or mismatched entry (a
    damaged file, or one another version wrote) becomes one line naming ``fix``."""
    try:
        yield
    except (UserError, torch.OutOfMemoryError, torch.AcceleratorError):
        raise  # already one line, or the device's trouble, not the file's
    except (KeyError, TypeError, ValueError, AttributeError, IndexError,
            RuntimeError) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        reason = f"{type(error).__name__}: {'; '.join(lines)[:200]}" if lines \
            else type(error).__name__
        raise UserError(f"{path} does not hold what it should ({reason}): it is damaged or "
                        f"another version wrote it; {fix}") from None
