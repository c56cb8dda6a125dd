"""Data sets by name, and the one function that turns a data config into batch iterators."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset

from naonet.data.augment import Cutout
from naonet.data.pipelines import BatchAugment, DeviceBatches, LoaderBatches
from naonet.data.sources import (
    DOWNLOADABLE,
    ImageFiles,
    InMemorySplit,
    as_archive_members,
    class_folders,
    class_name,
    detect_layout,
    download_cifar,
    find_split_folder,
    holds_pickles,
    image_files,
    left_out_note,
    list_image_folder,
    load_cifar_pickle,
    load_image_folder,
    named_in_archive,
    read_image,
    resize_split,
    resolve_data_root,
)
from naonet.errors import UserError

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# The labels of CIFAR-10 in its batches' order (also the sorted order of its JPEG folders):
# what a released checkpoint's outputs mean, since those files carry no class names.
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


@dataclass(frozen=True)
class DatasetSpec:
    """What a named data set is: its network skeleton, classes and image statistics.

    ``small_images`` data sets are decoded into memory and can use the device pipeline;
    the others stream from disk through a DataLoader with ImageNet-style transforms.
    """

    name: str
    skeleton: str
    num_classes: int | None  # None: the number of class folders
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    small_images: bool
    image_size: int
    classes: tuple[str, ...] = ()  # class names where the data set fixes them


DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec("cifar10", "cifar", 10, CIFAR10_MEAN, CIFAR10_STD, True, 32,
                           CIFAR10_CLASSES),
    "cifar100": DatasetSpec("cifar100", "cifar", 100, CIFAR100_MEAN, CIFAR100_STD, True, 32),
    "imagenet": DatasetSpec("imagenet", "imagenet", 1000, IMAGENET_MEAN, IMAGENET_STD, False,
                            224),
    # Any folder of labelled images: small images (<= 64 px) use the CIFAR recipe.
    "folder": DatasetSpec("folder", "cifar", None, IMAGENET_MEAN, IMAGENET_STD, True, 32),
}


# The largest side at which a folder's images count as small: the CIFAR network, decoded
# into memory; above it the ImageNet network and per-image transforms.
SMALL_IMAGE_MAX = 64


def own_size_as_zero(dataset: str, image_size: int) -> int:
    """``image_size`` as a config records it: a folder data set's own size (32 px) is 0,
    however it was given, so a run started with ``--image-size 32`` resumes without it
    (and the other way round): its images are decoded at 32 px either way. (A named data
    set's folder of larger images is resized only when a size is given, so there 32 and 0
    differ.)"""
    if dataset == "folder" and image_size == DATASETS["folder"].image_size:
        return 0
    return image_size


def get_dataset_spec(name: str, image_size: int | None = None) -> DatasetSpec:
    if name is None:  # net.dataset of a network not known to be trained on a data set
        raise UserError(f"no dataset named (None: the network does not say which data set "
                        f"it was trained on); name it, one of: {', '.join(DATASETS)}")
    if not isinstance(name, str):  # a network or a path passed where the name goes
        raise UserError(f"the dataset must be a name, one of: {', '.join(DATASETS)}; got an "
                        f"object of type {type(name).__name__} (a network from create_model "
                        "names its own: net.dataset, net.image_size)")
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; use one of: {', '.join(DATASETS)}")
    spec = DATASETS[name]
    if image_size is not None:
        from naonet.options import check_image_size

        check_image_size(image_size)
    if name == "folder" and image_size is not None and image_size != spec.image_size:
        small = image_size <= SMALL_IMAGE_MAX
        spec = DatasetSpec("folder", "cifar" if small else "imagenet", None, spec.mean,
                           spec.std, small, image_size)
    return spec


@dataclass(frozen=True)
class DataConfig:
    """Where the data is and how batches are made."""

    dataset: str = "cifar10"
    data: str = "data"
    download: bool = False
    batch_size: int = 128
    eval_batch_size: int = 256
    valid_size: int = 0  # images held out of the training set for model selection
    train_subset: int = 0  # use only this many training images (0: all)
    test_subset: int = 0
    # load the test split (a search scores on held-out training images); with valid_size,
    # train/ alone will do: the run then reports validation figures only
    with_test: bool = True
    cutout: int = 0
    autoaugment: bool = False
    pipeline: str = "auto"  # 'device' | 'loader' | 'auto'
    workers: int = 2
    image_size: int = 0  # resize the images to this (0: the data set's own; folder: 32)

    def __post_init__(self) -> None:
        from naonet.options import check_values

        check_values(self, at_least=dict(batch_size=1, eval_batch_size=1, valid_size=0,
                                         train_subset=0, test_subset=0, cutout=0, workers=0,
                                         image_size=0), above={})
        if self.download and self.dataset not in DOWNLOADABLE:  # it did nothing, silently
            named = "a folder data set" if self.dataset == "folder" else self.dataset
            raise UserError(f"--download fetches {' and '.join(DOWNLOADABLE)} only; {named} "
                            f"is not downloaded: put it at --data {self.data} yourself and "
                            "drop --download (download: false in a --config file)")

    @classmethod
    def of(cls, options, **fixed) -> DataConfig:
        """The data options of a command's config ``options`` (the fields of this class it
        holds, by name; the others keep their defaults), with ``fixed`` over them."""
        held = {field.name: getattr(options, field.name) for field in fields(cls)
                if hasattr(options, field.name)}
        return cls(**{**held, **fixed})

    def batch_for(self, train: bool) -> int:
        """The batch size of the training split, or of the evaluated ones."""
        return self.batch_size if train else self.eval_batch_size


@dataclass
class DataBundle:
    """Batch iterators of a run and what the network needs to know about the data."""

    train: DeviceBatches | LoaderBatches
    valid: DeviceBatches | LoaderBatches | None
    test: DeviceBatches | LoaderBatches | None  # None when the config asks for no test split
    num_classes: int
    skeleton: str
    spec: DatasetSpec
    classes: list[str] = field(default_factory=list)  # class names, by label
    image_size: int = 0  # the side of the images its batches hold
    # the side a training of these data without a proxy --image-size reads them at (a
    # named data set's own; a folder data set's --image-size, which is no proxy)
    native_size: int = 0
    # images of the training split before the validation hold-out and any subset: a run
    # records it and resumes only on as many (another number draws another split)
    training_images: int | None = None
    # a line on the files of the training folder left out (not images of a class); None
    # where there are none: a run prints it as it starts
    note: str | None = None


@dataclass
class TestData:
    """The test batches of an evaluation, with the class names they are labelled by."""

    batches: DeviceBatches | LoaderBatches
    classes: list[str]
    spec: DatasetSpec


def choose_pipeline(config: DataConfig, spec: DatasetSpec) -> str:
    if config.pipeline not in ("auto", "device", "loader"):
        raise UserError(f"unknown pipeline {config.pipeline!r}; use auto, device or loader")
    if config.pipeline == "device" and (not spec.small_images or config.autoaugment):
        raise UserError("the device pipeline handles small images without AutoAugment; use "
                        "--pipeline loader")
    if config.pipeline != "auto":
        return config.pipeline
    return "device" if spec.small_images and not config.autoaugment else "loader"


def pipeline_as_saved(saved: dict, current: dict) -> dict:
    """``current`` (a run's options) with its ``pipeline`` written as the ``saved`` run's
    where both resolve to the same pipeline (auto is the device pipeline for small images
    without AutoAugment): a resume compares what runs, not how it was asked for."""
    def resolved(values: dict) -> str:
        config = DataConfig(dataset=values.get("dataset", "cifar10"),
                            pipeline=values.get("pipeline", "auto"),
                            autoaugment=values.get("autoaugment", False),
                            image_size=values.get("image_size", 0))
        return choose_pipeline(config, get_dataset_spec(config.dataset,
                                                        config.image_size or None))

    if "pipeline" not in saved or saved["pipeline"] == current.get("pipeline"):
        return current
    try:
        same = resolved(saved) == resolved(current)
    except UserError:  # a saved value this version does not take: compared as written
        return current
    return {**current, "pipeline": saved["pipeline"]} if same else current


def split_indices(total: int, valid_size: int, train_subset: int, seed: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, valid) indices of the training set, fixed by ``seed``."""
    if valid_size >= total:
        raise UserError(f"--valid-size {valid_size} leaves no training images (the training "
                        f"set has {total}); lower it")
    if train_subset > total - valid_size:
        raise UserError(f"--train-subset {train_subset} asks for more images than the "
                        f"{total - valid_size} the training set has left after --valid-size "
                        f"{valid_size}; lower it, or pass --train-subset 0 to use them all")
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    valid, train = order[:valid_size], order[valid_size:]
    if train_subset:
        train = train[:train_subset]
    return train.sort().values, valid.sort().values


def subset_indices(total: int, count: int) -> torch.Tensor:
    """A fixed random subset of ``count`` indices (the same for every seed and run), so a
    test subset covers every class even when the files are sorted by class."""
    order = torch.randperm(total, generator=torch.Generator().manual_seed(0))
    return order[:min(count, total)].sort().values


def cutout_hides_images(cutout: int, image_size: int) -> bool:
    """Whether a cutout square covers every image of ``image_size`` px whole: centred
    anywhere in an image, a square of twice its size or more hides all of it."""
    return cutout >= 2 * image_size


def check_augmentation(config: DataConfig) -> None:
    """A UserError for a cutout square that covers every training image whole."""
    image_size = config.image_size or get_dataset_spec(config.dataset).image_size
    cutout = config.cutout
    if cutout_hides_images(cutout, image_size):
        raise UserError(f"--cutout {cutout} hides every {image_size}-px training image whole "
                        f"(a square of {cutout} px centred anywhere in it covers it); pass a "
                        f"cutout under {2 * image_size}, or 0")


def fetch_if_missing(root: Path, dataset: str) -> None:
    """Download CIFAR into ``root`` unless it holds it; a download that fails before
    writing anything leaves no (empty) folder it made behind (one stopped midway keeps
    its partial file, and the folders that hold it)."""
    from naonet.run_folder import remove_empty_folders, topmost_missing

    created = topmost_missing(root.resolve())
    root.mkdir(parents=True, exist_ok=True)
    try:
        detect_layout(root, dataset)
    except UserError:
        try:
            download_cifar(root, dataset)
        except BaseException:
            remove_empty_folders(root.resolve(), created)
            raise


def build_data(config: DataConfig, device: torch.device, seed: int = 0, rank: int = 0,
               world_size: int = 1, channels_last: bool = False) -> DataBundle:
    """Load the data set of ``config`` and wrap each split in a batch iterator (a file of
    an archive is named as its member)."""
    with named_in_archive(config.data):
        return _build_data(config, device, seed, rank, world_size, channels_last)


def _build_data(config: DataConfig, device: torch.device, seed: int, rank: int,
                world_size: int, channels_last: bool) -> DataBundle:
    spec = get_dataset_spec(config.dataset, config.image_size or None)
    check_augmentation(config)
    root = Path(config.data).expanduser()
    if config.download and config.dataset in DOWNLOADABLE:
        fetch_if_missing(root, config.dataset)
    root = resolve_data_root(root)
    pipeline = choose_pipeline(config, spec)
    common = dict(device=device, seed=seed, rank=rank, world_size=world_size,
                  channels_last=channels_last)
    skipped: list[Path] = []  # the training folder's files that are no class's images
    if spec.small_images:
        train_split, test_split = _load_small(root, config, spec, skipped)
        check_training_classes(config, spec, train_split.classes)
        if test_split is not None:
            check_same_classes(train_split.classes, test_split.classes,
                               described(root, config.data))
        train_index, valid_index = split_indices(len(train_split), config.valid_size,
                                                 config.train_subset, seed)
        if config.test_subset and test_split is not None:
            test_split = test_split.subset(subset_indices(len(test_split), config.test_subset))
        parts = {"train": train_split.subset(train_index),
                 "valid": train_split.subset(valid_index) if config.valid_size else None,
                 "test": test_split}
        make = _device_batches if pipeline == "device" else _small_loader_batches
        iterators = {name: make(part, name == "train", config, spec, common)
                     if part is not None else None for name, part in parts.items()}
        classes, training_images = list(train_split.classes), len(train_split)
        # a CIFAR-layout folder of larger images trains at their size (load_small_split)
        size = int(train_split.images.shape[-1])
        native = train_split.resized_from or size
    else:
        iterators, classes, training_images = _folder_iterators(root, config, spec, common,
                                                                seed, skipped)
        size = config.image_size or spec.image_size
        native = size if config.dataset == "folder" else spec.image_size
    train_folder = find_split_folder(root, "train")
    note = left_out_note(train_folder, skipped) if train_folder is not None else None
    note = note and as_archive_members(note, config.data)  # not the cache's extraction
    return DataBundle(iterators["train"], iterators["valid"], iterators["test"], len(classes),
                      spec.skeleton, spec, classes, size, native, training_images, note)


def check_class_count(dataset: str, spec: DatasetSpec, count: int, data: str | Path) -> None:
    """``data``: the path the user passed (an archive's extraction folder would mean
    nothing to them)."""
    if spec.num_classes is not None and count != spec.num_classes:
        raise UserError(f"{dataset} should have {spec.num_classes} classes but "
                        f"{data} has {count}; check --data, or pass --dataset folder for "
                        "your own classes")


def check_training_classes(config: DataConfig, spec: DatasetSpec, classes: list[str]) -> None:
    """A UserError unless the training images hold the data set's number of classes, and
    at least 2 (with one the loss is 0 from the first step: nothing is learnt)."""
    check_class_count(config.dataset, spec, len(classes), config.data)
    if len(classes) < 2:
        raise UserError(f"the training images of {config.data} are all of one class "
                        f"({', '.join(classes)}); training a classifier needs at least 2, "
                        "one folder of images per class")


def described(root: Path, given: str | Path) -> str:
    """How an error names the data at ``root``: the archive the user gave, not its
    extraction in the cache."""
    return f"{given}" if Path(given).expanduser().is_file() else f"{root}"


def find_test_source(root: Path, dataset: str, given: str | Path | None = None
                     ) -> tuple[str, Path]:
    """Where the test images under ``root`` are, needing no training images:
    ``('pickle', root)`` for CIFAR python batches, ``('folder', F)`` for ``test/`` or
    ``val/`` class folders, or ``root`` itself when it is a folder of class folders
    (torchvision's ImageFolder layout)."""
    if holds_pickles(root, dataset, "test"):
        return "pickle", root
    test = find_split_folder(root, "test")
    if test is not None:
        return "folder", test
    if find_split_folder(root, "train") is not None:
        raise UserError(f"{described(root, given or root)} has train/ but no test/ or val/ "
                        "folder; pass the folder of test images")
    if any(entry.is_dir() for entry in root.iterdir()):
        return "folder", root
    raise UserError(f"no test images in {described(root, given or root)}: expected "
                    "<class>/<image> folders, test/ or val/ class folders, or CIFAR python "
                    "batches; check --data")


def build_test_data(config: DataConfig, device: torch.device) -> TestData:
    """Only the test images of ``config.data`` (a folder of class folders, ``test/`` or
    ``val/``, CIFAR batches, or an archive of any of these) as evaluation batches (a file
    of an archive is named as its member)."""
    with named_in_archive(config.data):
        return _build_test_data(config, device)


def _build_test_data(config: DataConfig, device: torch.device) -> TestData:
    spec = get_dataset_spec(config.dataset, config.image_size or None)
    root = resolve_data_root(config.data)
    layout, where = find_test_source(root, config.dataset, config.data)
    common = dict(device=device, seed=0, rank=0, world_size=1, channels_last=False)
    if spec.small_images:
        split = load_small_split(where, layout, "test", config, spec, photos=True)
        if config.test_subset:
            split = split.subset(subset_indices(len(split), config.test_subset))
        make = (_device_batches if choose_pipeline(config, spec) == "device"
                else _small_loader_batches)
        batches, classes = make(split, False, config, spec, common), list(split.classes)
    else:
        test_set = ImageFiles(where, large_image_transform(False, config, spec))
        part = (Subset(test_set, subset_indices(len(test_set), config.test_subset).tolist())
                if config.test_subset else test_set)
        batches = LoaderBatches(part, config.eval_batch_size, train=False,
                                workers=config.workers, **common)
        classes = list(test_set.classes)
    check_class_count(config.dataset, spec, len(classes), config.data)
    return TestData(batches, classes, spec)


def check_same_classes(train_classes: list[str], test_classes: list[str], root: str) -> None:
    """Labels are class positions: a test set with other classes would shift them all."""
    if not same_classes(train_classes, test_classes):
        difference = class_difference(train_classes, test_classes, "train", "test")
        raise UserError(f"the train and test classes of {root} differ ({difference}); make "
                        "the class folders match")


def check_split_classes(data: str | Path) -> None:
    """A UserError if the class folders of ``data``'s ``test/`` (or ``val/``) are not
    those of its ``train/``. A search reads train/ only, but the training it ends by
    printing reads test/ too: this says so at the search's start, not hours later. The
    test images are listed (a class folder without images is refused as the training
    would refuse it), not read; data without both folders passes."""
    root = resolve_data_root(data)
    # the search holds validation images out: an unlabelled test/ is passed over, as the
    # training it prints (with --valid-size) passes it over
    train = find_split_folder(root, "train")
    test = find_split_folder(root, "test", labelled_only=True)
    if train is None or test is None:
        return
    fix = (f"; the search reads train/ only, but the training of what it finds reads "
           f"{test.name}/: make the class folders match, or search a copy without {test.name}/")
    test_classes = list(class_folders(test))
    if not test_classes:
        raise UserError(f"{described(root, data)}'s {test.name}/ holds no class folders{fix}")
    train_classes = list(class_folders(train))
    if not same_classes(train_classes, test_classes):
        difference = class_difference(train_classes, test_classes, "train", "test")
        raise UserError(f"the train and test classes of {described(root, data)} differ "
                        f"({difference}){fix}")
    for name, folder in class_folders(test).items():
        if not image_files(test / folder):  # what the training would refuse, at once
            raise UserError(f"class folder {test / folder} holds no images; the search reads "
                            f"train/ only, but the training of what it finds reads "
                            f"{test.name}/: add test images of {name}, or search a copy "
                            f"without {test.name}/")


def same_classes(first, second) -> bool:
    """Whether two class lists name the same classes in the same order (Unicode's forms
    of one name count as one: a network trained on a Mac's decomposed folder names
    evaluates on the same folders copied elsewhere)."""
    return [class_name(name) for name in first] == [class_name(name) for name in second]


def class_difference(first: list[str], second: list[str], first_name: str,
                     second_name: str) -> str:
    """How two class lists differ, in words: the names only one of them has."""
    first, second = [class_name(n) for n in first], [class_name(n) for n in second]
    only_first = sorted(set(first) - set(second))
    only_second = sorted(set(second) - set(first))
    if not only_first and not only_second:
        accented = any(not name.isascii() for name in first)
        return "the same names in another order" + (
            " (a name written in another Unicode form, as macOS writes folder names, sorts "
            "elsewhere: rename the folders of one side in the other's form)" if accented
            else "")
    return (f"only in {first_name}: {some_names(only_first)}; only in {second_name}: "
            f"{some_names(only_second)}")


NAMES_SHOWN = 20  # class names an error lists (ImageNet has 1,000)


def some_names(names: list[str]) -> str:
    """The first ``NAMES_SHOWN`` names, and how many more (class lists in one line)."""
    if not names:
        return "-"
    more = f" and {len(names) - NAMES_SHOWN:,} more" if len(names) > NAMES_SHOWN else ""
    return ", ".join(names[:NAMES_SHOWN]) + more


def _load_small(root: Path, config: DataConfig, spec: DatasetSpec, skipped: list[Path]
                ) -> tuple[InMemorySplit, InMemorySplit | None]:
    """The training split and the test split (None when the config needs none);
    ``skipped`` gets the training folder's files that are no class's images."""
    layout = detect_layout(root, config.dataset)
    if layout == "pickle":
        return (load_small_split(root, layout, "train", config, spec),
                load_small_split(root, layout, "test", config, spec)
                if config.with_test else None)
    train_folder = find_split_folder(root, "train")
    classes = class_folders(train_folder)
    if classes:  # before decoding: photos of other sizes fail there, with another hint
        check_class_count(config.dataset, spec, len(classes), config.data)
    train = load_small_split(train_folder, layout, "train", config, spec, skipped=skipped)
    if not config.with_test:
        return train, None
    test_folder = find_split_folder(root, "test", labelled_only=bool(config.valid_size))
    if test_folder is None:
        if config.valid_size:  # held-out training images stand in: no test figures
            return train, None
        raise UserError(f"{described(root, config.data)} has train/ but no test/ or val/ "
                        "folder; add one, or hold out validation images with --valid-size N")
    return train, load_small_split(test_folder, layout, "test", config, spec)


def load_small_split(where: Path, layout: str, split: str, config: DataConfig,
                     spec: DatasetSpec, photos: bool = False,
                     skipped: list[Path] | None = None) -> InMemorySplit:
    """One split of small images in memory, at the size the network sees: CIFAR batches
    (``where`` is their root) or a folder of class folders (``where`` is that folder),
    area-resized to ``--image-size`` when it is given. A folder data set is decoded
    straight to its size; a CIFAR-layout folder at its images' own size (a training on
    larger CIFAR-like images trains at theirs), or, for ``photos`` to evaluate a CIFAR
    network on (test images alone), at the data set's 32 px, as nao predict reads an
    image, so that photos of any size and of several sizes evaluate."""
    if layout == "pickle":
        images = load_cifar_pickle(where, config.dataset, split)
    else:
        decoded_size = spec.image_size if config.dataset == "folder" or photos else None
        images = load_image_folder(where, decoded_size, skipped)
    # Smaller images make a cheap proxy task (the search's supernet on a CPU).
    area = area_resize(config.dataset, config.image_size)
    return resize_split(images, area) if area else images


def _device_batches(split: InMemorySplit, train: bool, config: DataConfig, spec: DatasetSpec,
                    common: dict) -> DeviceBatches:
    padding = crop_padding(split.images.shape[-1])
    return DeviceBatches(split, config.batch_for(train), mean=spec.mean, std=spec.std,
                         train=train,
                         augment=BatchAugment(crop_padding=padding, cutout=config.cutout),
                         **common)


def reads_files_as_it_goes(batches) -> bool:
    """Whether ``batches`` read their image files as they go (the loader pipeline over a
    folder of large images), not images decoded into memory at the start."""
    dataset = getattr(getattr(batches, "loader", None), "dataset", None)
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return isinstance(dataset, ImageFiles)


def crop_padding(size: int) -> int:
    """The random crop's padding at ``size`` px: the released 4 px of 32, in proportion."""
    return max(1, size // 8)


class _TensorImageDataset(Dataset):
    """An in-memory split as PIL images through torchvision transforms (reference path)."""

    def __init__(self, split: InMemorySplit, transform):
        self.split, self.transform = split, transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int):
        from torchvision.transforms.functional import to_pil_image

        image = to_pil_image(self.split.images[index])
        return self.transform(image), int(self.split.labels[index])


def small_image_transform(train: bool, config: DataConfig, spec: DatasetSpec,
                          size: int | None = None):
    """The released CIFAR transforms: crop 32 pad 4 (pad size / 8 at other sizes), flip,
    [AutoAugment], normalise, cutout."""
    from torchvision import transforms as T

    size = size or spec.image_size
    steps = []
    if train:
        steps += [T.RandomCrop(size, padding=crop_padding(size)), T.RandomHorizontalFlip()]
        if config.autoaugment:
            steps.append(T.AutoAugment(T.AutoAugmentPolicy.CIFAR10))
    steps += [T.ToTensor(), T.Normalize(spec.mean, spec.std)]
    if train and config.cutout:
        steps.append(Cutout(config.cutout))
    return T.Compose(steps)


def large_image_transform(train: bool, config: DataConfig, spec: DatasetSpec):
    """The released ImageNet transforms, at ``--image-size`` when given (224 px is the
    released size)."""
    from torchvision import transforms as T

    size = config.image_size or spec.image_size
    if train:
        steps = [T.RandomResizedCrop(size), T.RandomHorizontalFlip(),
                 T.ColorJitter(0.4, 0.4, 0.4, 0.2)]
        if config.autoaugment:
            steps.append(T.AutoAugment(T.AutoAugmentPolicy.IMAGENET))
    else:
        steps = [T.Resize(evaluation_resize(size)), T.CenterCrop(size)]
    return T.Compose(steps + [T.ToTensor(), T.Normalize(spec.mean, spec.std)])


def area_resize(dataset: str, image_size: int) -> int:
    """The size a small image, decoded at its data set's size, is then area-averaged to
    (0: none): a named data set's ``--image-size``; a folder data set's images are
    decoded straight to theirs."""
    return image_size if image_size and dataset != "folder" else 0


def evaluation_resize(size: int) -> int:
    """The shorter side a large image is resized to before its centre ``size`` crop is
    evaluated (the released 256 for 224)."""
    return int(size * 256 / 224)


def preprocessing_text(dataset: str, image_size: int = 0) -> str:
    """What :func:`prepare_image` does to an image, in words, for a deployment that
    prepares its images without naonet (an exported network's metadata)."""
    spec = get_dataset_spec(dataset, image_size or None)
    if spec.small_images:
        resize = f"resized to {spec.image_size} x {spec.image_size} (PIL's bicubic)"
        area = area_resize(dataset, image_size)
        if area and area != spec.image_size:
            resize += f", then area-averaged to {area} x {area}"
    else:
        size = image_size or spec.image_size
        resize = (f"shorter side resized to {evaluation_resize(size)} (bilinear), the centre "
                  f"{size} x {size} cropped (its first row and column at round((side - "
                  f"{size}) / 2), as torchvision's CenterCrop)")
    mean, std = (", ".join(f"{value:g}" for value in values) for values in (spec.mean, spec.std))
    return (f"RGB image turned upright by its EXIF orientation, {resize}, scaled to [0, 1], "
            f"then (x - mean) / std per channel, mean ({mean}), std ({std})")


def prepare_image(file: str | Path, dataset: str, image_size: int = 0) -> torch.Tensor:
    """One image file as the network's input (3 x size x size, float32), preprocessed as
    the evaluation preprocesses its test images: small-image data sets resize to the
    training size, large ones resize to size * 256 / 224 and crop the centre; then
    scale to [0, 1] and normalise with the data set's mean and standard deviation."""
    if (isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral)
            or image_size < 0):
        raise UserError(f"image_size must be a whole number >= 0 (0: the data set's own), "
                        f"got {image_size!r}")
    spec = get_dataset_spec(dataset, image_size or None)
    if spec.small_images:
        # As the data set's images reach training: folder images are decoded straight to
        # their size; CIFAR's at 32 px, then area-resized to --image-size if it was given.
        decoded = torch.tensor(read_image(Path(file), spec.image_size)).permute(2, 0, 1)
        if area_resize(dataset, image_size):
            decoded = resize_split(InMemorySplit(decoded[None], torch.zeros(1), []),
                                   image_size).images[0]
        pixels = decoded.float() / 255
        mean, std = (torch.tensor(values).view(3, 1, 1) for values in (spec.mean, spec.std))
        return (pixels - mean) / std
    from PIL import Image

    image = Image.fromarray(read_image(Path(file)))
    return large_image_transform(False, DataConfig(dataset=dataset, image_size=image_size),
                                 spec)(image)


def _small_loader_batches(split: InMemorySplit, train: bool, config: DataConfig,
                          spec: DatasetSpec, common: dict) -> LoaderBatches:
    dataset = _TensorImageDataset(split, small_image_transform(train, config, spec,
                                                               split.images.shape[-1]))
    return LoaderBatches(dataset, config.batch_for(train), train=train,
                         workers=config.workers, **common)


def _folder_iterators(root: Path, config: DataConfig, spec: DatasetSpec, common: dict,
                      seed: int, skipped: list[Path]) -> tuple[dict, list[str], int]:
    train_folder = find_split_folder(root, "train")
    test_folder = find_split_folder(root, "test", labelled_only=bool(config.valid_size))
    if train_folder is None or (test_folder is None and config.with_test
                                and not config.valid_size):
        raise UserError(f"{described(root, config.data)} needs train/ and val/ (or test/) "
                        "folders of class folders (or train/ alone with --valid-size N)")
    # listed once: ImageNet has 1.28 million
    listing = list_image_folder(train_folder, skipped)
    train_set = ImageFiles(train_folder, large_image_transform(True, config, spec), listing)
    check_training_classes(config, spec, train_set.classes)
    plain_train = ImageFiles(train_folder, large_image_transform(False, config, spec), listing)
    test_set = (ImageFiles(test_folder, large_image_transform(False, config, spec))
                if config.with_test and test_folder is not None else None)
    train_index, valid_index = split_indices(len(train_set), config.valid_size,
                                             config.train_subset, seed)
    test_part = test_set
    if test_set is not None and config.test_subset:
        test_part = Subset(test_set, subset_indices(len(test_set), config.test_subset).tolist())
    parts = {"train": Subset(train_set, train_index.tolist()),
             "valid": Subset(plain_train, valid_index.tolist()) if config.valid_size else None,
             "test": test_part}
    iterators = {
        name: LoaderBatches(part, config.batch_for(name == "train"), train=name == "train",
                            workers=config.workers, **common) if part is not None else None
        for name, part in parts.items()}
    if test_set is not None:
        check_same_classes(train_set.classes, test_set.classes, described(root, config.data))
    return iterators, list(train_set.classes), len(train_set)
