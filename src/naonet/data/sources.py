"""Reading image data sets from disk into memory or into torchvision datasets.

Supported layouts (detected, never guessed silently):

* CIFAR python-pickle batches (``cifar-10-batches-py/`` or ``cifar-100-python/``), as
  torchvision downloads them;
* an image folder with ``train/<class>/*`` and ``test/<class>/*`` (or ``val/``), like the
  CIFAR-10 JPEG set or ImageNet;
* a ``.tar.gz`` / ``.tgz`` / ``.tar`` archive of such a folder, extracted once into a cache.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import lzma
import os
import pickle
import shutil
import tarfile
import tempfile
import unicodedata
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from naonet.errors import UserError

# What --data may name besides a folder: a tar archive, compressed or not (tarfile reads
# each; its error names the others if the file is not one).
TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
# torchvision ImageFolder's image files, and the JPEG and GIF names it skips that PIL
# reads as well (a GIF's first frame): a user's photos are all used.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".webp", ".tif", ".tiff",
                  ".jpe", ".jfif", ".gif")
# files systems write beside photos, left out without a note
SYSTEM_FILES = ("thumbs.db", "desktop.ini")
PICKLE_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
TEST_SPLIT_NAMES = ("test", "val", "valid", "validation")


@dataclass
class InMemorySplit:
    """A labelled image split held as tensors: ``images`` uint8 [N, 3, H, W], ``labels`` int64."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    # the side the images had before resize_split shrank them (0: they have it still)
    resized_from: int = 0

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: torch.Tensor) -> InMemorySplit:
        return InMemorySplit(self.images[indices], self.labels[indices], self.classes,
                             self.resized_from)


def resize_split(split: InMemorySplit, size: int) -> InMemorySplit:
    """The split with every image resized to ``size`` x ``size`` (area averaging when
    shrinking, so a 16 px CIFAR image is the mean of 2 x 2 pixels), still uint8."""
    import torch.nn.functional as F

    if split.images.shape[-1] == size and split.images.shape[-2] == size:
        return split
    images = F.interpolate(split.images.float(), size=(size, size), mode="area")
    images = images.round_().clamp_(0, 255).to(torch.uint8)  # [N, 3, size, size]
    return InMemorySplit(images, split.labels, split.classes,
                         split.resized_from or int(split.images.shape[-1]))


def cache_dir() -> Path:
    """Where extracted archives go (``NAONET_CACHE`` or ``~/.cache/naonet``)."""
    return Path(os.environ.get("NAONET_CACHE", Path.home() / ".cache" / "naonet"))


def existing_data_path(path: str | Path, dataset: str | None = None) -> Path:
    """``path`` if it exists (a cheap check a run makes before writing anything); the
    error offers --download for a ``dataset`` that can be fetched."""
    path = Path(path).expanduser()
    if not path.exists():
        fetch = (f", or add --download to fetch {dataset} there"
                 if dataset in DOWNLOADABLE else "")
        raise UserError(f"data path {path} does not exist; pass --data with the folder (or "
                        f"archive) of the data set{fetch}")
    return path


def resolve_data_root(path: str | Path) -> Path:
    """The folder to read: ``path`` itself, or an archive's extraction in the cache."""
    path = existing_data_path(path)
    if path.is_file():
        if path.name.lower().endswith(".zip"):
            raise UserError(f"data path {path} is a .zip archive, which naonet does not "
                            "read; unzip it and pass the folder, or pack the folder as "
                            ".tar.gz (tar czf data.tar.gz FOLDER)")
        if not path.name.lower().endswith(TAR_SUFFIXES):
            raise UserError(f"data path {path} is a file but not a tar archive "
                            f"({', '.join(TAR_SUFFIXES)}); pass the data set folder")
        return unwrapped(extract_archive(path))
    return path


def unwrapped(root: Path) -> Path:
    """The data set inside ``root``: an archive made the usual way (``tar czf data.tar.gz
    data``) holds one folder around it; CIFAR's python archive keeps its named folder."""
    while not (root / "train").is_dir():
        entries = [entry for entry in root.iterdir()
                   if not entry.name.startswith((".", "__MACOSX"))]
        if len(entries) != 1 or not entries[0].is_dir() or \
                entries[0].name in PICKLE_FOLDERS.values():
            break
        root = entries[0]
    return root


def extract_archive(archive: Path) -> Path:
    """Extract ``archive`` once into the cache (atomically) and return the folder."""
    target = extraction_folder(archive)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with one_extraction_at_a_time(target):
        if target.is_dir():  # made while this process waited
            return target
        remove_abandoned_extractions(target.parent)
        with extraction_claim(target.parent) as staging:
            extract_into(archive, staging)
            try:
                os.replace(staging, target)
            except OSError:  # another process finished first (a file system without locks)
                shutil.rmtree(staging, ignore_errors=True)
    return target


@contextlib.contextmanager
def one_extraction_at_a_time(target: Path):
    """Held while ``target`` is made: another process asking for the same archive (each
    of torchrun's processes does) waits here, then finds it made, where each made its own
    copy (N times the disk and the time of one, the first rename winning). The lock file
    beside it (``.NAME.lock``) is deleted by its holder: whoever waits on it, or makes it
    anew, looks for ``target`` once it holds a lock. Where the file system has no locks,
    each process extracts as before."""
    import fcntl

    lock = target.parent / f".{target.name}.lock"
    with open(lock, "a") as holder:
        try:
            fcntl.flock(holder, fcntl.LOCK_EX)  # the system drops it if the holder dies
        except OSError:
            pass
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)


@contextlib.contextmanager
def named_in_archive(data: str | Path):
    """Inside: a UserError that names a file of an archive's extraction names it as the
    archive's member instead (``ARCHIVE:member``). The extraction's path in the cache
    meant nothing to its user, who mended the file there: the archive stayed damaged,
    and its extraction no longer matched it, without a word."""
    try:
        yield
    except UserError as error:
        text = as_archive_members(str(error), data)
        if text == str(error):
            raise
        raise UserError(f"{text} (a member of the archive: mend the archive, whose "
                        "extraction is made again when it changes)") from None


def as_archive_members(text: str, data: str | Path) -> str:
    """``text`` with the paths of ``data``'s extraction written as the archive's members
    (``ARCHIVE:member``), where ``data`` is an archive; else ``text`` as it is."""
    archive = Path(data).expanduser()
    if not archive.is_file() or not archive.name.lower().endswith(TAR_SUFFIXES):
        return text
    extraction = extraction_folder(archive)
    return text.replace(f"{extraction}{os.sep}", f"{archive}:").replace(
        str(extraction), f"{archive}:")


def extraction_folder(archive: Path) -> Path:
    """Where ``archive`` is extracted in the cache (named by its content: archive_key)."""
    return cache_dir() / "extracted" / f"{archive.name.split('.')[0]}-{archive_key(archive)}"


def archive_key(archive: Path) -> str:
    """What names an archive's extraction in the cache. A gzip archive is known by its
    content, wherever it lies: its size, its first MiB and its last bytes, where gzip
    records the CRC-32 and length of everything it compressed (copies of one archive in
    several checkouts share one extraction; they each made their own, 236 MB apiece for
    CIFAR-10). A plain tar records no such sum: its path, size and modification time."""
    stat = archive.stat()
    if not archive.name.endswith((".tar.gz", ".tgz")):
        return hashlib.sha1(f"{archive.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
                            .encode()).hexdigest()[:12]
    digest = hashlib.sha1(f"gzip:{stat.st_size}:".encode())
    with archive.open("rb") as file:
        digest.update(file.read(1 << 20))
        file.seek(max(0, stat.st_size - (1 << 16)))
        digest.update(file.read())
    return digest.hexdigest()[:12]


STAGING_PREFIX = ".extracting-"  # FOLDER.lock beside each, locked while it fills


@contextlib.contextmanager
def extraction_claim(parent: Path):
    """A fresh staging folder in ``parent``, with a lock file beside it that this
    process holds (locked before the folder exists, so no one takes it for abandoned)
    until the block ends; both are gone afterwards unless the folder was moved."""
    holder, lock_path = _held_lock_file(parent)
    staging = Path(lock_path[:-len(".lock")])
    try:
        staging.mkdir()
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        Path(lock_path).unlink(missing_ok=True)
        holder.close()


def _held_lock_file(parent: Path, attempts: int = 5):
    """A new ``.extracting-*.lock`` file in ``parent``, open and locked: (handle, path).
    A cleanup may lock and delete a new file before its maker locks it; then another
    is made. Where the file system has no locks, the file is kept unlocked (an
    extraction killed there leaves its folder behind, as before)."""
    import fcntl

    for attempt in range(1, attempts + 1):
        descriptor, lock_path = tempfile.mkstemp(dir=parent, prefix=STAGING_PREFIX,
                                                 suffix=".lock")
        holder = os.fdopen(descriptor, "w")
        try:
            fcntl.flock(holder, fcntl.LOCK_EX)
        except OSError:  # no locks on this file system
            break
        # still ours (nobody took it before the lock); the last try is kept all the same
        if Path(lock_path).exists() or attempt == attempts:
            break
        holder.close()
    return holder, lock_path


def remove_abandoned_extractions(parent: Path) -> None:
    """Delete the staging folders of extractions whose process died (killed mid-way): the
    operating system dropped their locks, so their lock files can be locked here."""
    import fcntl

    for lock_path in parent.glob(f"{STAGING_PREFIX}*.lock"):
        try:
            with open(lock_path) as holder:
                fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(lock_path.with_suffix(""), ignore_errors=True)
                lock_path.unlink(missing_ok=True)
        except OSError:  # held by a live extraction, or already gone
            continue


def extract_into(archive: Path, staging: Path) -> None:
    """Unpack ``archive`` into ``staging``; a UserError if it is not an intact tar."""
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(staging, filter="data")
            check_read_to_the_end(tar, archive)
    except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as error:
        # tarfile lists every compression it tried, one line each: its first line says it
        reason = str(error).splitlines()[0].rstrip(": ") if str(error) else type(error).__name__
        raise UserError(f"could not extract {archive} ({reason}); pass an intact tar archive "
                        "(.tar, .tar.gz, .tar.bz2 or .tar.xz; download it again if it came "
                        "from the web)") from None


def check_read_to_the_end(tar: tarfile.TarFile, archive: Path) -> None:
    """Read what follows the archive's last member: zeros only in an intact tar. tarfile
    takes a damaged member header for the end of the archive, so a damaged archive
    extracted part of its images without a word; reading on also checks the
    compression's own sums (gzip's CRC-32, which raises an OSError when it fails).
    ``extractall`` walks the members lazily, so the stream stands just past the header
    that ended the walk."""
    while chunk := tar.fileobj.read(1 << 20):
        if chunk.count(0) != len(chunk):
            raise UserError(f"could not extract {archive} (data follows the end of its "
                            "listing: a damaged member header, or archives joined into one); "
                            "pass one intact tar archive (download it again if it came from "
                            "the web)")


def find_split_folder(root: Path, split: str, labelled_only: bool = False) -> Path | None:
    """``root/train`` for 'train'; ``root/test`` or ``root/val`` for 'test': the first
    that holds class folders (Kaggle's layout puts unlabelled images loose in test/ and
    the labelled ones in val/), else the first there is (for its error to name), unless
    ``labelled_only`` (a run that holds validation images out of train/ passes an
    unlabelled test/ over: Kaggle's layout without val/)."""
    names = ("train",) if split == "train" else TEST_SPLIT_NAMES
    found = [root / name for name in names if (root / name).is_dir()]
    labelled = [folder for folder in found if _has_class_folders(folder)]
    return (labelled or ([] if labelled_only else found) or [None])[0]


def _has_class_folders(folder: Path) -> bool:
    try:
        return any(entry.is_dir() and not entry.name.startswith(".")
                   for entry in folder.iterdir())
    except OSError:  # unreadable: its own error comes when it is read
        return False


def holds_pickles(root: Path, dataset: str, split: str = "train") -> bool:
    """Whether ``root`` holds the CIFAR python batches of ``dataset`` (for ``split``)."""
    folder = PICKLE_FOLDERS.get(dataset)
    loose = ("data_batch_1", "train") if split == "train" else ("test_batch", "test")
    return bool(folder) and ((root / folder).is_dir()
                             or any((root / name).is_file() for name in loose))


def has_test_images(root: Path, dataset: str) -> bool:
    """Whether the data set in ``root`` holds test images: CIFAR's test batch, or test/
    or val/ class folders (unlabelled images loose in test/ are none)."""
    return (holds_pickles(root, dataset, "test")
            or find_split_folder(root, "test", labelled_only=True) is not None)


def detect_layout(root: Path, dataset: str) -> str:
    """'pickle' or 'folder', or a UserError describing what was expected."""
    folder = PICKLE_FOLDERS.get(dataset)
    if holds_pickles(root, dataset):
        return "pickle"
    if find_split_folder(root, "train") is not None:
        return "folder"
    expected = f"'{folder}/' (python batches) or " if folder else ""
    fetch = " (use --download to fetch CIFAR when online)" if folder else ""
    if root.is_dir() and any(entry.is_dir() and not entry.name.startswith(".")
                             for entry in root.iterdir()):
        # class folders straight in root (what nao eval and predict read)
        fetch += f"; if its folders are your classes, move them into {root}/train/"
    raise UserError(f"no data set found in {root}: expected {expected}'train/<class>/' image "
                    f"folders; check --data{fetch}")


# --------------------------------------------------------------------------- pickle batches
def load_cifar_pickle(root: Path, dataset: str, split: str) -> InMemorySplit:
    """CIFAR-10/100 python batches into memory."""
    folder = root / PICKLE_FOLDERS[dataset] if (root / PICKLE_FOLDERS[dataset]).is_dir() else root
    if dataset == "cifar10":
        files = ([f"data_batch_{i}" for i in range(1, 6)] if split == "train"
                 else ["test_batch"])
        meta_file, label_key, names_key = "batches.meta", b"labels", b"label_names"
    else:
        files = ["train" if split == "train" else "test"]
        meta_file, label_key, names_key = "meta", b"fine_labels", b"fine_label_names"
    meta = _read_pickle(folder / meta_file, (names_key,))
    classes = _class_names(meta[names_key], folder / meta_file)
    images, labels = [], []
    for name in files:
        batch = _read_pickle(folder / name, (b"data", label_key))
        data = _pixels(batch[b"data"], folder / name)
        found = _labels(batch[label_key], len(classes), folder / name)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(found):
            raise UserError(f"CIFAR batch file {folder / name} holds {data.shape} pixels for "
                            f"{len(found)} labels, not N x 3072 for N; download the data "
                            "set again")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.extend(found)
    return InMemorySplit(torch.from_numpy(np.concatenate(images)),
                         torch.tensor(labels, dtype=torch.int64), classes)


def _pixels(data, path: Path) -> np.ndarray:
    """A batch's pixels: an array of bytes (uint8), as CIFAR stores them."""
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        kind = f"a {data.dtype} array" if isinstance(data, np.ndarray) else type(data).__name__
        raise UserError(f"CIFAR batch file {path} holds {kind} as pixels, not uint8; download "
                        "the data set again")
    return data


def _labels(values, num_classes: int, path: Path) -> list[int]:
    """A batch's labels: a list of integers, each a class of the meta file."""
    valid = isinstance(values, list | tuple | np.ndarray) and all(
        isinstance(value, int | np.integer) and not isinstance(value, bool)
        and 0 <= value < num_classes for value in values)
    if not valid:
        raise UserError(f"CIFAR batch file {path} holds labels that are not class numbers "
                        f"0..{num_classes - 1}; download the data set again")
    return [int(value) for value in values]


def _class_names(names, path: Path) -> list[str]:
    """The meta file's class names: a list of distinct strings."""
    if not isinstance(names, list | tuple) or not all(isinstance(n, bytes | str) for n in names):
        raise UserError(f"CIFAR meta file {path} does not list class names; download the "
                        "data set again")
    classes = [name.decode(errors="replace") if isinstance(name, bytes) else name
               for name in names]
    if len(set(classes)) != len(classes) or not classes:
        raise UserError(f"CIFAR meta file {path} lists a class twice (or none); download "
                        "the data set again")
    return classes


def _numpy_rebuilders() -> dict[tuple[str, str], object]:
    """The only callables a CIFAR batch's pickle may name: numpy's array and scalar
    rebuilders (under numpy 1's and numpy 2's module names), ndarray and dtype."""
    reconstruct = np.ndarray((0,)).__reduce__()[0]
    scalar = np.float64(0).__reduce__()[0]
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               # protocol-2 pickles written by Python 3 rebuild bytes with this pure
               # function (text -> bytes); it runs nothing else
               ("_codecs", "encode"): codecs.encode}
    for package in ("numpy.core", "numpy._core"):
        allowed[package + ".multiarray", "_reconstruct"] = reconstruct
        allowed[package + ".multiarray", "scalar"] = scalar
    frombuffer = getattr(getattr(np, "_core", None), "numeric", None)
    if frombuffer is not None and hasattr(frombuffer, "_frombuffer"):  # pickle protocol 5
        for package in ("numpy.core", "numpy._core"):
            allowed[package + ".numeric", "_frombuffer"] = frombuffer._frombuffer
    return allowed


class _CifarUnpickler(pickle.Unpickler):
    """Admits dicts, lists, bytes, numbers and numpy arrays, nothing else: a crafted
    batch file cannot import or run anything."""

    allowed = _numpy_rebuilders()

    def find_class(self, module: str, name: str):
        try:
            return self.allowed[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR batch "
                                         "never holds") from None


def _read_pickle(path: Path, keys: tuple[bytes, ...]) -> dict:
    if not path.is_file():
        raise UserError(f"CIFAR batch file {path} is missing; the data set folder is "
                        "incomplete, download it again")
    try:
        with open(path, "rb") as handle:
            batch = _CifarUnpickler(handle, encoding="bytes").load()
    except Exception as error:  # noqa: BLE001 - a malformed pickle fails in many ways
        raise UserError(f"CIFAR batch file {path} is corrupt ({error}); download the data "
                        "set again") from None
    if not isinstance(batch, dict) or not all(key in batch for key in keys):
        raise UserError(f"CIFAR batch file {path} is not a CIFAR batch (it needs the keys "
                        f"{', '.join(key.decode() for key in keys)}); download the data set "
                        "again")
    return batch


DOWNLOADABLE = ("cifar10", "cifar100")  # data sets --download fetches (torchvision's)


def download_cifar(root: Path, dataset: str) -> None:
    """Fetch the python batches with torchvision (needs the internet)."""
    import torchvision

    cls = torchvision.datasets.CIFAR10 if dataset == "cifar10" else torchvision.datasets.CIFAR100
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as error:  # noqa: BLE001 - network errors come in many types
        raise UserError(f"could not download {dataset} into {root} ({error}); put the data "
                        "there by hand and pass --data") from None


# --------------------------------------------------------------------------- image folders
def class_name(text: str) -> str:
    """A class name as naonet compares and records it: Unicode's composed form (NFC)."""
    return unicodedata.normalize("NFC", text)


def class_folders(folder: Path) -> dict[str, str]:
    """The class folders of ``folder``: class name -> folder name, in the order of the
    folder names (torchvision's ImageFolder's, and the order runs recorded before names
    were normalised). A class is its folder's name in Unicode's composed form (NFC):
    macOS writes names decomposed, so "ñandú" copied from a Mac names the same class as
    one typed here. Hidden folders are none."""
    folders: dict[str, str] = {}
    for entry in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if entry.is_dir() and not entry.name.startswith("."):
            name = class_name(entry.name)
            if name in folders:
                raise UserError(f"{folder} has two class folders named {name!r} (written "
                                "with different Unicode forms); merge them")
            folders[name] = entry.name
    return folders


def list_image_folder(folder: Path, skipped: list[Path] | None = None
                      ) -> tuple[list[tuple[Path, int]], list[str]]:
    """(path, class index) pairs of the images under ``folder/<class>/`` (its sub-folders
    included, as torchvision's ImageFolder reads them, and the GIF and JPEG names it
    skips) in sorted order, and the classes. Hidden entries (``.ipynb_checkpoints/``,
    macOS's ``._photo.jpg``) are no classes or images. ``skipped`` (where given) gets the
    other files: those beside the class folders, and those of no image kind in them."""
    folders = class_folders(folder)
    classes = list(folders)
    if not classes:
        raise UserError(f"{folder} has no class sub-folders; expected {folder}/<class>/<image>")
    if skipped is not None:
        skipped.extend(sorted(entry for entry in folder.iterdir()
                              if entry.is_file() and noted_when_left_out(entry.name)))
    samples = [(file, index) for index, name in enumerate(classes)
               for file in image_files(folder / folders[name], skipped)]
    if not samples:
        raise UserError(holds_no_images(folder))
    empty = sorted(set(classes) - {classes[index] for _, index in samples})
    if empty:  # a class never seen would still take an output (torchvision refuses too)
        more = f" and {len(empty) - 1} more" if len(empty) > 1 else ""
        raise UserError(f"class folder {folder / empty[0]}{more} hold{'' if more else 's'} "
                        f"no images; add images or remove the folder{'s' if more else ''}")
    return samples, classes


def holds_no_images(folder) -> str:
    """What is said of a folder without image files."""
    return f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})"


def image_files(folder: Path, skipped: list[Path] | None = None) -> list[Path]:
    """The image files anywhere under ``folder`` (linked folders followed), hidden ones
    skipped, in torchvision ImageFolder's order: folder by folder in sorted order, each
    folder's files sorted. ``skipped`` (where given) gets the other files that are not
    hidden (a HEIC photo, notes.txt) but for the system's own (``SYSTEM_FILES``)."""
    def unreadable(error: OSError) -> None:
        raise UserError(f"cannot read {error.filename} ({error.strerror}); check its "
                        "permissions or remove it")

    walked, visited = [], set()
    for root, folders, files in os.walk(folder, onerror=unreadable, followlinks=True):
        # A linked folder is read once: a link to itself or to a folder above (cat/self ->
        # .) would list every image again at every depth the system allows.
        real = os.path.realpath(root)
        if real in visited:
            folders[:] = []
            continue
        visited.add(real)
        folders[:] = [name for name in folders if not name.startswith(".")]
        walked.append((root, files))
    found = []
    for root, files in sorted(walked):
        for name in sorted(files):
            path = Path(root) / name
            # regular files only: a FIFO named x.jpg would block the read forever
            if (not name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES
                    and path.is_file()):
                found.append(path)
            elif skipped is not None and noted_when_left_out(name) and path.is_file():
                skipped.append(path)
    return found


SKIPPED_SHOWN = 3  # files a note names


def noted_when_left_out(name: str) -> bool:
    """Whether a file of this name that no class holds as an image is named in a note:
    not a hidden one, nor one the system writes beside photos (``SYSTEM_FILES``)."""
    return not name.startswith(".") and name.lower() not in SYSTEM_FILES


def left_out_note(folder: Path, skipped: list[Path]) -> str | None:
    """A line on the files of a training folder no class holds as an image (None where
    there are none): a user's HEIC photos, or images beside the class folders, were left
    out without a word."""
    if not skipped:
        return None
    names = ", ".join(str(path.relative_to(folder)) for path in skipped[:SKIPPED_SHOWN])
    more = f" and {len(skipped) - SKIPPED_SHOWN:,} more" if len(skipped) > SKIPPED_SHOWN else ""
    kinds = ", ".join(IMAGE_SUFFIXES)
    return (f"{len(skipped):,} file{'s' if len(skipped) > 1 else ''} of {folder} left out "
            f"({names}{more}): a class's images are the files of its folder ending in "
            f"{kinds}")


def open_rgb(file: Path):
    """One image file as an RGB PIL image, read whole and turned as its EXIF orientation
    says (a phone stores a portrait photo sideways, with a tag to turn it upright); a
    file that is not an image is a UserError."""
    from PIL import Image, UnidentifiedImageError

    if not Path(file).exists():
        raise UserError(f"image {file} does not exist; check the path")
    if not Path(file).is_file():  # a folder or a FIFO named like an image
        raise UserError(f"{file} is not an image file; pass image files")
    try:
        with warnings.catch_warnings():
            # Pillow warns from half its pixel limit on: such a photo is read (and the
            # warning's traceback-like lines ran through the command's output)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                upright(image)
                return (eight_bit_gray(image) if image.mode in WIDE_GRAY_MODES
                        else image).convert("RGB")
    except Image.DecompressionBombError:
        # Pillow refuses an image of more than twice its limit (it warns above the limit)
        raise UserError(f"image {file} has more pixels than Pillow opens "
                        f"({2 * Image.MAX_IMAGE_PIXELS:,}, a guard against files made to "
                        "exhaust memory); shrink it, or remove it") from None
    except (UnidentifiedImageError, OSError) as error:
        raise UserError(f"cannot read image {file} ({error}){UNREADABLE_FIX}") from None


def upright(image) -> None:
    """Turn ``image`` in place as its EXIF orientation says. A malformed EXIF block (PIL
    has raised SyntaxError, ZeroDivisionError and IndexError on some) leaves the image as
    stored: the photo is still read, as it was before orientations were honoured."""
    from PIL import ImageOps

    try:
        ImageOps.exif_transpose(image, in_place=True)
    except Exception:  # noqa: BLE001 - any failure to read the tag is the tag's
        pass


# PIL's modes of one channel wider than 8 bits: 16-bit PNG and TIFF, 32-bit integer and
# float TIFF. PIL's own conversion to RGB clips their values at 255, so a 16-bit image
# turns almost white and a float one in [0, 1] black.
WIDE_GRAY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def eight_bit_gray(image):
    """A wide grayscale PIL image scaled to 8 bits ('L'). The range is read from the
    mode and the values: 16 bits for 16-bit images; [0, 1] for a float image whose 99th
    percentile is at most 1 (a little overshoot allowed), else the smallest of [0, 255],
    [0, 65535] (integer images only: a 16-bit source) that holds the values, else their
    own maximum. NaN and infinities count as black and as the maximum."""
    from PIL import Image

    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size else 0.0
    values = np.nan_to_num(values, nan=0.0, posinf=top, neginf=0.0)
    if image.mode.startswith("I;16"):
        full = 65535.0
    elif image.mode == "F" and finite.size and np.percentile(finite, 99) <= 1.0:
        full = 1.0
    else:
        ranges = (255.0,) if image.mode == "F" else (255.0, 65535.0)
        full = next((limit for limit in ranges if top <= limit), top)
    eight = np.clip(np.rint(values * (255.0 / full)), 0, 255).astype(np.uint8)
    return Image.fromarray(eight, "L")


def read_image(file: Path, size: int | None = None) -> np.ndarray:
    """One image as an RGB uint8 array (height x width x 3), resized to ``size`` x ``size``
    if given and different; a file that is not an image is a UserError."""
    image = open_rgb(file)
    if size is not None and image.size != (size, size):
        image = image.resize((size, size))
    return np.asarray(image, dtype=np.uint8)


class ImageFiles(torch.utils.data.Dataset):
    """The images of ``folder/<class>/`` as :func:`list_image_folder` lists them (class
    sub-folders included, hidden entries skipped), read as RGB and passed through
    ``transform``: ``(transform(image), label)``, as torchvision's ImageFolder gives, for
    images too large to decode into memory at once."""

    def __init__(self, folder: Path, transform, listing=None):
        self.samples, self.classes = listing or list_image_folder(Path(folder))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        return self.transform(open_rgb(path)), label


def load_image_folder(folder: Path, size: int | None = None,
                      skipped: list[Path] | None = None) -> InMemorySplit:
    """Decode a folder of small images (CIFAR-sized) into memory as uint8 tensors.

    The decoded tensors are cached (``$NAONET_CACHE/decoded``, keyed by every file's
    path, size and modification time and by ``size``), so a second run reads one file
    instead of decoding every image again; ``NAONET_DECODED_CACHE=0`` turns it off.
    """
    samples, classes = list_image_folder(folder, skipped)
    cache_file = decoded_cache_file(folder, samples, size)
    cached = read_decoded(cache_file, len(samples), classes)
    if cached is None and size is not None:
        # the images decoded at their own size (as training decodes a CIFAR-layout
        # folder) are the same pixels where that size is ``size``: not cached twice
        own = read_decoded(decoded_cache_file(folder, samples, None), len(samples), classes)
        if own is not None and tuple(own.images.shape[-2:]) == (size, size):
            cached = own
    if cached is not None:
        return cached
    split = _decode_images(samples, classes, size)
    write_decoded(cache_file, split)
    return split


# The version of the decoding a cached split holds (2: photos turned upright by their
# EXIF orientation): a cache of another is decoded again.
DECODING = 2


def decoded_cache_file(folder: Path, samples: list[tuple[Path, int]],
                       size: int | None) -> Path | None:
    """Where the decoded images of this exact listing go (None: caching is off)."""
    if os.environ.get("NAONET_DECODED_CACHE", "1") == "0":
        return None
    digest = hashlib.sha256(f"{DECODING}:{size}".encode())
    for file, label in samples:
        stat = file.stat()
        digest.update(f"{file.relative_to(folder)}:{label}:{stat.st_size}:"
                      f"{stat.st_mtime_ns}\n".encode())
    return cache_dir() / "decoded" / f"{folder.name}-{digest.hexdigest()[:20]}.pt"


def read_decoded(path: Path | None, count: int, classes: list[str]) -> InMemorySplit | None:
    """The cached split, or None when absent, unreadable or not what is expected."""
    if path is None or not path.is_file():
        return None
    try:
        from naonet.training.checkpoint import torch_load_quietly

        saved = torch_load_quietly(path)
        images, labels = saved["images"], saved["labels"]
        usable = (saved.get("classes") == list(classes) and images.dtype == torch.uint8
                  and labels.dtype == torch.int64 and len(images) == count == len(labels))
    except Exception:  # noqa: BLE001 - a damaged cache is decoded again, never trusted
        return None
    return InMemorySplit(images, labels, list(classes)) if usable else None


def write_decoded(path: Path | None, split: InMemorySplit) -> None:
    if path is None:
        return
    from naonet.training.checkpoint import atomic_save

    try:
        atomic_save({"images": split.images, "labels": split.labels,
                     "classes": list(split.classes)}, path)
    except OSError:
        pass  # no room for the cache: the next run decodes again, nothing else


UNREADABLE_SHOWN = 3  # files one error names in full
UNREADABLE_FIX = "; remove or replace it"  # the end of open_rgb's error for one file


def unreadable_text(errors: list[str]) -> str:
    """One line for the images of a folder that cannot be read (``errors``: each one's
    own, as ``open_rgb`` words it): the first ``UNREADABLE_SHOWN`` files with their
    reasons, then how many more, and the fix once."""
    if len(errors) == 1:
        return errors[0]
    files = [error.removeprefix("cannot read image ").removesuffix(UNREADABLE_FIX)
             for error in errors[:UNREADABLE_SHOWN]]
    more = len(errors) - UNREADABLE_SHOWN
    return (f"{len(errors):,} images cannot be read: {'; '.join(files)}"
            + (f"; and {more:,} more" if more > 0 else "") + "; remove or replace them")


def _decode_images(samples: list[tuple[Path, int]], classes: list[str],
                   size: int | None = None) -> InMemorySplit:
    """Every image of ``samples`` (resized to ``size``) in one uint8 tensor; the files that
    cannot be read are named together, after all were tried (one a run, each found after
    a whole decoding again, cost a user's trial a rerun per file)."""
    first = None
    images = None
    unreadable: list[str] = []
    for row, (file, _) in enumerate(samples):
        try:
            array = read_image(file, size)
        except UserError as error:
            unreadable.append(str(error))
            continue
        if images is None:
            first = array.shape
            images = np.empty((len(samples), *first), dtype=np.uint8)
        if array.shape != first:
            raise UserError(f"image {file} is {array.shape[1]}x{array.shape[0]} but the first "
                            f"image is {first[1]}x{first[0]}; pass --image-size to resize")
        images[row] = array
    if unreadable:
        raise UserError(unreadable_text(unreadable))
    labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
    return InMemorySplit(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels,
                         classes)
