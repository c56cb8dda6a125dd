"""Data sources and pipelines on real CIFAR-10 images."""

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from naonet.data import DataConfig, DeviceBatches, build_data
from naonet.data.augment import cutout, random_crop_flip
from naonet.data.sources import (
    InMemorySplit,
    list_image_folder,
    load_cifar_pickle,
    load_image_folder,
)
from naonet.errors import UserError

from conftest import MINI_COUNTS, nao_in_process, require


def write_cifar_pickles(split, folder):
    """Write a split in the python-batch format torchvision downloads."""
    folder.mkdir(parents=True)
    data = split.images.numpy().reshape(len(split), -1)
    labels = split.labels.tolist()
    chunks = np.array_split(np.arange(len(split)), 5)
    for number, chunk in enumerate(chunks, start=1):
        with open(folder / f"data_batch_{number}", "wb") as handle:
            pickle.dump({b"data": data[chunk], b"labels": [labels[i] for i in chunk]}, handle)
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump({b"data": data[:20], b"labels": labels[:20]}, handle)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [c.encode() for c in split.classes]}, handle)


def test_pickle_batches_and_image_folder_give_the_same_data(cifar_mini, tmp_path):
    folder_split = load_image_folder(cifar_mini / "train")
    assert folder_split.images.shape == (600, 3, 32, 32)
    assert folder_split.classes[0] == "airplane" and len(folder_split.classes) == 10
    write_cifar_pickles(folder_split, tmp_path / "cifar-10-batches-py")
    pickled = load_cifar_pickle(tmp_path, "cifar10", "train")
    assert torch.equal(pickled.images, folder_split.images)
    assert torch.equal(pickled.labels, folder_split.labels)
    assert pickled.classes == folder_split.classes
    # The real pixel statistics of CIFAR-10 (the shared README: mean 0.4913/0.4821/0.4465).
    mean = folder_split.images.float().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor([0.49, 0.48, 0.45]), atol=0.03)


def test_a_photo_of_more_pixels_than_pillow_opens_is_one_line(tmp_path, monkeypatch,
                                                                recwarn):
    """Above twice Pillow's limit (2 x 89 = 179 MP; here 2 x 1,000 pixels) every command
    ended in a DecompressionBombError traceback; above the limit, Pillow's warning ran
    through the output."""
    from PIL import Image

    from naonet.data.sources import open_rgb

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    Image.new("RGB", (40, 40)).save(tmp_path / "large.png")  # over the limit, under twice
    Image.new("RGB", (64, 64)).save(tmp_path / "huge.png")  # over twice the limit
    assert open_rgb(tmp_path / "large.png").size == (40, 40)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
    with pytest.raises(UserError, match=f"^image {re.escape(str(tmp_path / 'huge.png'))} has "
                                        r"more pixels than Pillow opens \(2,000, a guard "
                                        r"against files made to exhaust memory\); shrink it"):
        open_rgb(tmp_path / "huge.png")


def test_every_unreadable_image_of_a_folder_is_named_at_once(cifar_mini, tmp_path):
    """Each run named the first damaged image only, after decoding every image again: a
    user with five damaged photos ran five times to find them."""
    import shutil

    shutil.copytree(cifar_mini, tmp_path / "data")
    cats = sorted((tmp_path / "data" / "train" / "cat").iterdir())
    for file in cats[:5]:
        file.write_bytes(b"not a jpeg")
    with pytest.raises(UserError) as error:
        build_data(DataConfig(dataset="folder", data=str(tmp_path / "data")),
                   torch.device("cpu"))
    message = str(error.value)
    assert message.startswith(f"5 images cannot be read: {cats[0]} (")
    assert all(str(file) in message for file in cats[:3]) and str(cats[3]) not in message
    assert message.endswith("; and 2 more; remove or replace them") and "\n" not in message
    assert message.count("remove or replace") == 1


def test_files_of_a_training_folder_that_no_class_holds_are_noted(cifar_mini, tmp_path):
    """Photos beside the class folders, and a phone's HEIC photos in them, were left out
    without a word; the system's own files are left out silently."""
    import shutil

    from PIL import Image

    data = tmp_path / "data"
    shutil.copytree(cifar_mini, data)
    config = DataConfig(dataset="folder", data=str(data))
    assert build_data(config, torch.device("cpu")).note is None
    Image.new("RGB", (32, 32)).save(data / "train" / "loose.png")
    (data / "train" / "cat" / "IMG_0001.heic").write_bytes(b"a photo")
    for folder in (data / "train", data / "train" / "cat"):
        for name in ("Thumbs.db", ".DS_Store", "desktop.ini"):
            (folder / name).write_bytes(b"the system's")
    bundle = build_data(config, torch.device("cpu"))
    assert bundle.note.startswith(f"2 files of {data / 'train'} left out (loose.png, "
                                  "cat/IMG_0001.heic): a class's images are the files of its "
                                  "folder ending in .jpg, .jpeg, .png")
    assert bundle.training_images == 10 * MINI_COUNTS["train"]  # the images alone


def test_a_damaged_image_of_an_archive_is_named_as_its_member(cifar_mini, tmp_path):
    """It was named by its path in the cache's extraction: a user mended it there, the
    archive stayed damaged, and the extraction no longer matched it."""
    import shutil
    import tarfile

    shutil.copytree(cifar_mini, tmp_path / "mine")
    damaged = sorted((tmp_path / "mine" / "train" / "cat").iterdir())[0]
    damaged.write_bytes(b"not a jpeg")
    with tarfile.open(tmp_path / "mine.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "mine", arcname="mine")
    with pytest.raises(UserError) as error:
        build_data(DataConfig(data=str(tmp_path / "mine.tar.gz")), torch.device("cpu"))
    assert str(error.value).startswith(
        f"cannot read image {tmp_path / 'mine.tar.gz'}:mine/train/cat/{damaged.name} (")
    assert str(error.value).endswith("(a member of the archive: mend the archive, whose "
                                     "extraction is made again when it changes)")
    assert "extracted" not in str(error.value)


def test_corrupt_and_missing_data_are_user_errors(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"garbage")
    with pytest.raises(UserError, match="corrupt"):
        load_cifar_pickle(tmp_path, "cifar10", "train")
    with pytest.raises(UserError, match="does not exist"):
        build_data(DataConfig(data=str(tmp_path / "nowhere")), torch.device("cpu"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no data set found"):
        build_data(DataConfig(data=str(tmp_path / "empty")), torch.device("cpu"))


def broken_layouts(root, cifar_mini):
    """Data folders a user gets wrong, each with what its one-line error must say."""
    import shutil

    from PIL import Image

    cases = {}
    (root / "notes.txt").write_text("not data")
    cases["a plain file"] = (root / "notes.txt", {}, "is a file but not a tar archive "
                             "(.tar.gz, .tgz, .tar, .tar.bz2")
    flat = root / "flat"  # images but no class folders
    flat.mkdir()
    shutil.copy(next((cifar_mini / "train" / "cat").iterdir()), flat / "x.jpg")
    cases["no class folders"] = (flat, dict(dataset="folder"), "no data set found")
    classes_only = root / "classes-only"  # what nao eval reads, not a training set
    shutil.copytree(cifar_mini / "train", classes_only)
    cases["class folders without train/"] = (
        classes_only, dict(dataset="folder"),
        f"if its folders are your classes, move them into {classes_only}/train/")
    three = root / "three-classes"
    for name in ("cat", "dog", "ship"):
        shutil.copytree(cifar_mini / "train" / name, three / "train" / name)
        shutil.copytree(cifar_mini / "test" / name, three / "test" / name)
    cases["own classes without --dataset folder"] = (
        three, {}, "has 3; check --data, or pass --dataset folder for your own classes")
    # photos of several sizes: the size check came first, and its --image-size hint left
    # the same error
    photos = root / "three-classes-of-photos"
    shutil.copytree(three, photos)
    Image.new("RGB", (48, 40)).save(photos / "train" / "cat" / "photo.png")
    cases["own photos without --dataset folder"] = (
        photos, {}, "has 3; check --data, or pass --dataset folder for your own classes")
    empty_classes = root / "empty-classes" / "train"
    for name in ("cat", "dog"):
        (empty_classes / name).mkdir(parents=True)
    shutil.copytree(empty_classes, root / "empty-classes" / "test")
    cases["class folders without images"] = (root / "empty-classes", dict(dataset="folder"),
                                              "holds no images")
    one_empty = root / "one-empty-class"  # trained an output no image ever asked for
    shutil.copytree(cifar_mini, one_empty)
    for split in ("train", "test"):
        (one_empty / split / "zebra").mkdir()
    cases["one class folder without images"] = (
        one_empty, dict(dataset="folder"),
        f"class folder {one_empty / 'train' / 'zebra'} holds no images; add images or remove "
        "the folder")
    mixed = root / "mixed"
    shutil.copytree(cifar_mini, mixed)
    Image.new("RGB", (40, 40)).save(mixed / "train" / "cat" / "zz-larger.png")
    cases["images of two sizes"] = (mixed, {},  # training: a CIFAR folder's own size
                                    "is 40x40 but the first image is 32x32; pass --image-size")
    train_only = root / "train-only"
    shutil.copytree(cifar_mini / "train", train_only / "train")
    cases["train/ without test/"] = (train_only, {}, "has train/ but no test/ or val/ folder; "
                                     "add one, or hold out validation images with "
                                     "--valid-size N")
    incomplete = root / "incomplete"
    write_cifar_pickles(load_image_folder(cifar_mini / "train"),
                        incomplete / "cifar-10-batches-py")
    (incomplete / "cifar-10-batches-py" / "data_batch_3").unlink()
    cases["a missing CIFAR batch"] = (incomplete, {}, "data_batch_3 is missing; the data set "
                                      "folder is incomplete")
    (root / "data.zip").write_bytes(b"PK\x03\x04")
    cases["a zip archive"] = (root / "data.zip", {}, "is a .zip archive, which naonet does "
                              "not read; unzip it and pass the folder, or pack the folder as "
                              ".tar.gz")
    import tarfile

    with tarfile.open(root / "train-only.tar.xz", "w:xz") as archive:
        archive.add(train_only, arcname="train-only")
    cases["train/ without test/, packed"] = (  # the archive named, not its extraction
        root / "train-only.tar.xz", {},
        f"{root / 'train-only.tar.xz'} has train/ but no test/ or val/ folder")
    return cases


def test_data_a_user_gets_wrong_is_named_in_one_line(cifar_mini, tmp_path):
    """Each case once reached the user only through its message: pin the message."""
    import re

    for name, (data, options, fragment) in broken_layouts(tmp_path, cifar_mini).items():
        with pytest.raises(UserError, match=re.escape(fragment)) as error:
            build_data(DataConfig(data=str(data), **options), torch.device("cpu"))
        assert "\n" not in str(error.value), name


def test_a_linked_folder_is_read_once(cifar_mini, tmp_path):
    """A link to a folder above it (cat/self -> .) listed the class's images again at
    every depth the system allows: 41 times, silently, in a user's trial."""
    import shutil

    shutil.copytree(cifar_mini / "train", tmp_path / "train")
    (tmp_path / "train" / "cat" / "self").symlink_to(tmp_path / "train" / "cat")
    (tmp_path / "train" / "dog" / "cats").symlink_to(tmp_path / "train" / "cat")
    samples, classes = list_image_folder(tmp_path / "train")
    expected, _ = list_image_folder(cifar_mini / "train")
    assert len(samples) == len(expected) + MINI_COUNTS["train"]  # dog/cats is one more
    assert [index for _, index in samples] == sorted(
        [index for _, index in expected] + [classes.index("dog")] * MINI_COUNTS["train"])


def test_a_class_is_one_class_in_either_unicode_form(cifar_mini, tmp_path):
    """macOS writes folder names decomposed (NFD): a network trained on 'ñandú' typed here
    refused test folders copied from a Mac, saying the classes differed in two names that
    printed alike."""
    import shutil
    import unicodedata

    from naonet.data.registry import same_classes

    composed = unicodedata.normalize("NFC", "gato ñandú")
    for form, root in (("NFC", tmp_path / "composed"), ("NFD", tmp_path / "decomposed")):
        for name in ("cat", "dog"):
            target = unicodedata.normalize(form, composed) if name == "cat" else name
            shutil.copytree(cifar_mini / "test" / name, root / target)
    listed = {root.name: list_image_folder(root) for root in tmp_path.iterdir()}
    assert listed["composed"][1] == listed["decomposed"][1] == ["dog", composed]
    assert [index for _, index in listed["composed"][0]] == \
        [index for _, index in listed["decomposed"][0]]
    assert same_classes([unicodedata.normalize("NFD", composed)], [composed])
    assert not same_classes(["cat", "dog"], ["dog", "cat"])
    # The order stays the folder names' (torchvision's, and what runs recorded before):
    # decomposed, 'Äpfel' starts with 'A' and sorts before 'Birnen'.
    apples = unicodedata.normalize("NFC", "Äpfel")
    mac = tmp_path / "mac"
    for name in (unicodedata.normalize("NFD", apples), "Birnen"):
        shutil.copytree(cifar_mini / "test" / "cat", mac / name)
    assert list_image_folder(mac)[1] == [apples, "Birnen"]
    # typed here, the same names sort the other way: refused, saying why
    from naonet.data.registry import class_difference

    assert class_difference([apples, "Birnen"], ["Birnen", apples], "train", "test") == (
        "the same names in another order (a name written in another Unicode form, as macOS "
        "writes folder names, sorts elsewhere: rename the folders of one side in the "
        "other's form)")


def test_random_crop_matches_a_crop_of_the_padded_image():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    generator = torch.Generator().manual_seed(0)
    cropped = random_crop_flip(images, padding=2, generator=generator, flip=False)
    offsets = torch.randint(0, 5, (2, 2), generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for index in range(2):
        row, col = offsets[0, index], offsets[1, index]
        assert torch.equal(cropped[index], padded[index, :, row:row + 8, col:col + 8])
    assert torch.equal(random_crop_flip(images, 0, generator, flip=False), images)


def test_cutout_zeroes_one_clipped_square_per_image():
    images = torch.ones(64, 3, 32, 32)
    out = cutout(images, 16, torch.Generator().manual_seed(0))
    zeroed = (out[:, 0] == 0)
    assert torch.equal(zeroed, (out[:, 1] == 0))  # same square in every channel
    areas = zeroed.sum(dim=(1, 2))
    assert areas.max() == 256 and areas.min() >= 64  # 16x16, at least a quarter when clipped
    rows = zeroed.any(dim=2).sum(dim=1)
    cols = zeroed.any(dim=1).sum(dim=1)
    assert torch.equal(rows * cols, areas)  # a rectangle


def test_device_batches_shard_and_shuffle_reproducibly(cifar_mini):
    split = load_image_folder(cifar_mini / "train")
    common = dict(batch_size=64, device=torch.device("cpu"), mean=(0.5,) * 3, std=(0.25,) * 3)
    seen = []
    for rank in range(2):
        batches = DeviceBatches(split, train=True, seed=3, rank=rank, world_size=2, **common)
        batches.set_epoch(1)
        seen.append(torch.cat([labels for _, labels in batches]))
        assert len(batches) == 5  # 300 images per rank
    again = DeviceBatches(split, train=True, seed=3, rank=0, world_size=2, **common)
    again.set_epoch(1)
    assert torch.equal(torch.cat([labels for _, labels in again]), seen[0])
    again.set_epoch(2)
    assert not torch.equal(torch.cat([labels for _, labels in again]), seen[0])
    total = torch.cat(seen)
    assert torch.equal(total.bincount(), split.labels.bincount())  # every image once
    evaluation = [DeviceBatches(split, train=False, rank=r, world_size=2, **common)
                  for r in range(2)]
    assert sum(len(torch.cat([lab for _, lab in ev])) for ev in evaluation) == len(split)


def test_no_rank_repeats_another_ranks_augmentation_draws():
    """Rank r + 16 drew the crops, flips and cutouts of rank r in the next epoch (its seed
    was epoch_seed * 16 + rank + 7). Every (rank, epoch) now draws its own, and ranks
    0-15 keep the seeds the documented runs drew with."""
    from naonet.data import BatchAugment
    from naonet.data.pipelines import augment_seed, epoch_seed

    split = InMemorySplit(torch.zeros(8, 3, 16, 16, dtype=torch.uint8),
                          torch.zeros(8, dtype=torch.int64), ["a"])
    augment = BatchAugment(crop_padding=4, flip=True, cutout=8)
    draws = {}
    for rank in range(34):
        for epoch in range(3):
            pipeline = DeviceBatches(split, 4, torch.device("cpu"), (0.5,) * 3, (0.25,) * 3,
                                     train=True, augment=augment, seed=5, rank=rank,
                                     world_size=1)
            pipeline.set_epoch(epoch)
            drawn = pipeline._epoch_draws(8)
            draws[rank, epoch] = torch.cat([drawn[name].flatten().float() for name in
                                            ("offsets", "flips", "centres")])
    keys = list(draws)
    repeats = [(a, b) for i, a in enumerate(keys) for b in keys[i + 1:]
               if torch.equal(draws[a], draws[b])]
    assert repeats == []
    assert [augment_seed(5, 2, rank) for rank in range(16)] == [
        epoch_seed(5, 2) * 16 + rank + 7 for rank in range(16)]


def test_build_data_holds_out_a_validation_split(cifar_mini):
    bundle = build_data(DataConfig(data=str(cifar_mini), valid_size=100, train_subset=200,
                                   batch_size=50), torch.device("cpu"), seed=1)
    assert bundle.num_classes == 10 and bundle.skeleton == "cifar"
    train_images = sum(labels.shape[0] for _, labels in bundle.train)
    valid_images = sum(labels.shape[0] for _, labels in bundle.valid)
    assert (train_images, valid_images) == (200, 100)
    images, _ = next(iter(bundle.test))
    assert images.dtype == torch.float32 and abs(images.mean().item()) < 0.5


def test_test_subset_is_a_fixed_sample_of_every_class(cifar_mini):
    first = build_data(DataConfig(data=str(cifar_mini), test_subset=50), torch.device("cpu"))
    labels = torch.cat([labels for _, labels in first.test])
    assert labels.shape[0] == 50 and labels.unique().numel() >= 8  # files are sorted by class
    again = build_data(DataConfig(data=str(cifar_mini), test_subset=50), torch.device("cpu"),
                       seed=9)
    assert torch.equal(torch.cat([labels for _, labels in again.test]), labels)


def test_loader_pipeline_matches_device_pipeline_in_evaluation(cifar_mini):
    device = torch.device("cpu")
    fast = build_data(DataConfig(data=str(cifar_mini), pipeline="device"), device)
    slow = build_data(DataConfig(data=str(cifar_mini), pipeline="loader", workers=0), device)
    fast_images = torch.cat([images for images, _ in fast.test])
    slow_images = torch.cat([images for images, _ in slow.test])
    assert torch.allclose(fast_images, slow_images, atol=1e-5)


@pytest.mark.slow
def test_full_archive_is_read_directly(cifar_root):
    require(cifar_root)
    bundle = build_data(DataConfig(data=str(cifar_root), test_subset=100), torch.device("cpu"))
    assert sum(labels.shape[0] for _, labels in bundle.train) == 50_000


def test_autoaugment_and_large_image_folders_use_the_loader_pipeline(cifar_mini):
    from naonet.data import LoaderBatches
    from naonet.models import NetworkConfig, build_network
    from naonet.spaces import named_architecture

    device = torch.device("cpu")
    augmented = build_data(DataConfig(data=str(cifar_mini), autoaugment=True, cutout=16,
                                      workers=0, batch_size=16), device)
    assert isinstance(augmented.train, LoaderBatches)
    images, labels = next(iter(augmented.train))
    assert images.shape == (16, 3, 32, 32) and labels.shape == (16,)
    # Any folder of images with ImageNet-style transforms and the ImageNet skeleton.
    folder = build_data(DataConfig(dataset="folder", data=str(cifar_mini), image_size=96,
                                   workers=0, batch_size=8, eval_batch_size=8), device)
    assert folder.skeleton == "imagenet" and folder.num_classes == 10
    images, labels = next(iter(folder.train))
    assert images.shape == (8, 3, 96, 96)
    network = build_network(named_architecture("naonet-v2"), NetworkConfig(
        skeleton="imagenet", channels=8, layers=1, num_classes=10, aux_head=False))
    logits, _ = network(images)
    assert logits.shape == (8, 10)


def test_imagenet_images_are_prepared_at_the_image_size_asked(cifar_mini):
    """--image-size was ignored for --dataset imagenet (train, eval, predict, export's
    preprocessing all at 224 px) while the run recorded the size asked."""
    from naonet.data import get_dataset_spec, prepare_image
    from naonet.data.registry import large_image_transform
    from naonet.data.sources import open_rgb

    image = sorted((cifar_mini / "test").glob("*/*"))[0]  # a real JPEG
    assert prepare_image(image, "imagenet").shape == (3, 224, 224)  # the released size
    assert prepare_image(image, "imagenet", 128).shape == (3, 128, 128)
    config = DataConfig(dataset="imagenet", image_size=96)
    for train in (True, False):  # training's random crop, evaluation's centre crop
        transform = large_image_transform(train, config, get_dataset_spec("imagenet", 96))
        assert transform(open_rgb(image)).shape == (3, 96, 96)


def test_a_cifar_layout_folder_of_larger_images_says_the_size_it_trains_at(tmp_path):
    """Such a folder trains at its images' size, but the bundle (the size the start lines
    print, and a search's size budget is measured at) said the data set's 32 px."""
    from PIL import Image

    for split in ("train", "test"):
        for label in range(10):  # CIFAR-10's count of classes
            folder = tmp_path / split / f"class{label}"
            folder.mkdir(parents=True)
            for index in range(2):
                Image.new("RGB", (40, 40), (index * 50, label * 20, 30)).save(
                    folder / f"{index}.png")
    bundle = build_data(DataConfig(data=str(tmp_path), dataset="cifar10", batch_size=2),
                        torch.device("cpu"))
    images, _ = next(iter(bundle.train))
    assert images.shape[-1] == bundle.image_size == 40
    shrunk = build_data(DataConfig(data=str(tmp_path), dataset="cifar10", batch_size=2,
                                   image_size=16), torch.device("cpu"))
    assert next(iter(shrunk.train))[0].shape[-1] == shrunk.image_size == 16
    # a proxy size shrinks them; the found network trains at their own 40 px
    assert shrunk.native_size == bundle.native_size == 40


def test_labelled_val_is_read_beside_an_unlabelled_test_folder(tmp_path):
    """Kaggle's layout: labelled val/<class>/ and loose, unlabelled images in test/. The
    run stopped with "test has no class sub-folders", val/ never looked at."""
    from PIL import Image

    def write(folder: Path, count: int, shade: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            Image.new("RGB", (80, 70), (shade, 40 * index, 9)).save(folder / f"{index}.jpg")

    for name, shade in (("cat", 10), ("dog", 200)):
        write(tmp_path / "train" / name, 4, shade)
        write(tmp_path / "val" / name, 2, shade)
    write(tmp_path / "test", 3, 99)  # no labels
    bundle = build_data(DataConfig(data=str(tmp_path), dataset="folder", batch_size=2,
                                   workers=0), torch.device("cpu"))
    assert sum(len(labels) for _, labels in bundle.test) == 4 and bundle.classes == [
        "cat", "dog"]
    for name in ("cat", "dog"):  # with no labelled folder, the first is named
        (tmp_path / "val" / name).rename(tmp_path / f"{name}-moved")
    with pytest.raises(UserError, match="test has no class sub-folders"):
        build_data(DataConfig(data=str(tmp_path), dataset="folder", workers=0),
                   torch.device("cpu"))


@pytest.mark.parametrize("mode", ["I;16", "F", "I"])
def test_images_wider_than_8_bits_keep_their_brightness(tmp_path, mode):
    """A 16-bit grayscale PNG read as almost white (PIL clips at 255: mean 254.6 for an
    image of mean 127.7), a float TIFF in [0, 1] as black."""
    from PIL import Image

    from naonet.data.sources import read_image

    ramp = np.linspace(0.0, 1.0, 64 * 64).reshape(64, 64)  # black to white
    values = {"I;16": (ramp * 65535).astype(np.uint16), "F": ramp.astype(np.float32),
              "I": (ramp * 65535).astype(np.int32)}[mode]
    path = tmp_path / ("ramp.png" if mode == "I;16" else "ramp.tiff")
    Image.fromarray(values).save(path)
    with Image.open(path) as opened:
        assert opened.mode == mode  # the mode under test is the one PIL reads back
    pixels = read_image(path).astype(np.float64)
    assert pixels.shape == (64, 64, 3)
    np.testing.assert_allclose(pixels[..., 0], np.rint(ramp * 255), atol=1)
    assert (pixels[..., 0] == pixels[..., 2]).all()


def test_a_float_image_with_overshoot_or_nan_keeps_its_brightness():
    """A float image in [0, 1] overshooting to 1.01 (resampling) read black, and one NaN
    pixel made the whole image black."""
    from PIL import Image

    from naonet.data.sources import eight_bit_gray

    ramp = np.linspace(0.0, 1.0, 64 * 64).reshape(64, 64)
    over = np.asarray(eight_bit_gray(Image.fromarray((ramp * 1.01).astype(np.float32))))
    np.testing.assert_allclose(over, np.clip(np.rint(ramp * 1.01 * 255), 0, 255), atol=1)
    holed = ramp.astype(np.float32)
    holed[0, 0] = np.nan
    gray = np.asarray(eight_bit_gray(Image.fromarray(holed))).astype(np.float64)
    assert gray[0, 0] == 0  # NaN reads as black, the rest as it was
    np.testing.assert_allclose(gray.ravel()[1:], np.rint(ramp.ravel()[1:] * 255), atol=1)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_an_archive_of_an_image_folder_is_read_through_its_top_folder(cifar_mini, tmp_path,
                                                                      monkeypatch):
    """``tar czf images.tar.gz images`` wraps the data set in its folder's name (once
    refused: 'no data set found'); CIFAR's python archive keeps its named folder."""
    import tarfile

    monkeypatch.setenv("NAONET_CACHE", str(tmp_path / "cache"))
    archive = tmp_path / "images.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(cifar_mini / split, arcname=f"images/{split}")
    bundle = build_data(DataConfig(data=str(archive), dataset="folder", valid_size=0),
                        torch.device("cpu"))
    assert bundle.num_classes == 10
    assert sum(labels.shape[0] for _, labels in bundle.train) == 600
    assert sum(labels.shape[0] for _, labels in bundle.test) == 200
    pickles = tmp_path / "cifar-python.tar.gz"
    write_cifar_pickles(load_image_folder(cifar_mini / "train"),
                        tmp_path / "batches" / "cifar-10-batches-py")
    with tarfile.open(pickles, "w:gz") as tar:
        tar.add(tmp_path / "batches" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    from naonet.data.sources import resolve_data_root

    assert (resolve_data_root(pickles) / "cifar-10-batches-py").is_dir()


@pytest.mark.parametrize("packed", [False, True])
def test_a_crafted_cifar_batch_runs_no_code(cifar_mini, tmp_path, packed, monkeypatch):
    """A data set is data: a batch whose pickle names os.system is refused, unrun, in a
    folder and in an archive."""
    root = tmp_path / "data"
    write_cifar_pickles(load_image_folder(cifar_mini / "train"), root / "cifar-10-batches-py")
    marker = tmp_path / "pwned"
    with open(root / "cifar-10-batches-py" / "data_batch_1", "wb") as handle:
        pickle.dump({b"data": _Exploit(marker), b"labels": [0]}, handle)
    data = root
    if packed:
        import tarfile

        data = tmp_path / "cifar.tar.gz"
        with tarfile.open(data, "w:gz") as archive:
            archive.add(root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    with pytest.raises(UserError, match="data_batch_1 is corrupt.*os"):
        monkeypatch.setenv("NAONET_CACHE", str(tmp_path / "cache"))
        build_data(DataConfig(data=str(data)), torch.device("cpu"))
    assert not marker.exists()


def test_malformed_cifar_batches_are_user_errors(cifar_mini, tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_pickles(load_image_folder(cifar_mini / "train"), folder)
    pixels = np.zeros((4, 3072), np.uint8)
    for content, fragment in [
            ([1, 2, 3], "not a CIFAR batch"),
            ({b"data": np.zeros((4, 7), np.uint8), b"labels": [0] * 4}, "not N x 3072"),
            ({b"data": b"hello", b"labels": [0] * 4}, "holds bytes as pixels"),
            ({b"data": pixels.astype(np.float64) * 1e9, b"labels": [0] * 4},
             "float64 array as pixels"),
            ({b"data": pixels, b"labels": 7}, "not class numbers"),
            ({b"data": pixels, b"labels": ["a"] * 4}, "not class numbers"),
            ({b"data": pixels, b"labels": [float("nan")] * 4}, "not class numbers"),
            ({b"data": pixels, b"labels": [2**70] * 4}, "not class numbers"),
            ({b"data": pixels, b"labels": [10, 0, 0, -1]}, "not class numbers")]:
        with open(folder / "data_batch_2", "wb") as handle:
            pickle.dump(content, handle)
        with pytest.raises(UserError, match=fragment):
            load_cifar_pickle(tmp_path, "cifar10", "train")
    write_cifar_pickles(load_image_folder(cifar_mini / "train"), tmp_path / "meta" /
                        "cifar-10-batches-py")
    for names, fragment in [(5, "does not list class names"), ([b"cat", b"cat"], "twice")]:
        with open(tmp_path / "meta" / "cifar-10-batches-py" / "batches.meta", "wb") as handle:
            pickle.dump({b"label_names": names}, handle)
        with pytest.raises(UserError, match=fragment):
            load_cifar_pickle(tmp_path / "meta", "cifar10", "train")


def test_protocol_2_batches_written_by_python_3_load(cifar_mini, tmp_path):
    """Python 3 pickles bytes at protocol 2 through _codecs.encode (a pure function)."""
    split = load_image_folder(cifar_mini / "test")
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    data = split.images.numpy().reshape(len(split), -1)
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump({b"data": data, b"labels": split.labels.tolist()}, handle, protocol=2)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [c.encode() for c in split.classes]}, handle, protocol=2)
    loaded = load_cifar_pickle(tmp_path, "cifar10", "test")
    assert torch.equal(loaded.images, split.images) and loaded.classes == split.classes


def test_test_classes_must_match_the_training_classes(cifar_mini, tmp_path):
    import shutil

    root = tmp_path / "renamed"
    shutil.copytree(cifar_mini, root)
    (root / "test" / "cat").rename(root / "test" / "kitten")  # would shift every label
    with pytest.raises(UserError, match="only in train: cat; only in test: kitten"):
        build_data(DataConfig(data=str(root)), torch.device("cpu"))


def test_the_class_count_must_match_the_named_data_set(cifar_mini, tmp_path):
    import shutil

    root = tmp_path / "eleven"
    shutil.copytree(cifar_mini, root)
    for split in ("train", "test"):
        shutil.copytree(root / split / "cat", root / split / "lynx")
    with pytest.raises(UserError, match="cifar10 should have 10 classes but .* has 11"):
        build_data(DataConfig(data=str(root)), torch.device("cpu"))
    with pytest.raises(UserError, match="cifar100 should have 100 classes"):
        build_data(DataConfig(data=str(cifar_mini), dataset="cifar100"), torch.device("cpu"))


def test_decoded_images_are_cached_and_the_cache_follows_the_files(cifar_mini, tmp_path,
                                                                   monkeypatch):
    import os
    import shutil

    from naonet.data.sources import decoded_cache_file

    monkeypatch.setenv("NAONET_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "test"
    shutil.copytree(cifar_mini / "test", folder)
    decoded = load_image_folder(folder)
    cache = decoded_cache_file(folder, *list_image_folder(folder)[:1], None)
    assert cache.is_file()
    from naonet.data import sources

    decode = sources._decode_images
    decodes = []

    def counted(*args, **kwargs):
        decodes.append(1)
        return decode(*args, **kwargs)

    monkeypatch.setattr(sources, "_decode_images", counted)
    again = load_image_folder(folder)  # from the cache: the same tensors, nothing decoded
    assert decodes == []
    assert torch.equal(again.images, decoded.images) and torch.equal(again.labels,
                                                                      decoded.labels)
    # asked at their own 32 px (nao eval reads a test folder so), the same pixels: the
    # split decoded at its own size serves (the cache held CIFAR-10's test split twice)
    at_32 = load_image_folder(folder, 32)
    assert decodes == [] and torch.equal(at_32.images, decoded.images)
    assert sorted(path.name for path in (tmp_path / "cache" / "decoded").iterdir()) == [
        cache.name]
    assert torch.equal(sources._decode_images(*list_image_folder(folder), 32).images,
                       decoded.images)  # what decoding at 32 px would have given
    decodes.clear()
    load_image_folder(folder, 16)  # another size is decoded (and cached) on its own
    assert decodes == [1]
    decodes.clear()
    # an edited image changes the key: decoded again, not served stale
    image = sorted((folder / "cat").iterdir())[0]
    shutil.copy(sorted((folder / "dog").iterdir())[0], image)
    os.utime(image, ns=(1, 1))
    edited = load_image_folder(folder)
    assert decodes == [1]
    row = list_image_folder(folder)[0].index((image, decoded.classes.index("cat")))
    assert not torch.equal(edited.images[row], decoded.images[row])
    # a damaged cache file is decoded again, never trusted
    damaged = decoded_cache_file(folder, list_image_folder(folder)[0], None)
    damaged.write_bytes(b"not a tensor file")
    assert torch.equal(load_image_folder(folder).images, edited.images)
    assert decodes == [1, 1]
    monkeypatch.setenv("NAONET_DECODED_CACHE", "0")
    assert decoded_cache_file(folder, list_image_folder(folder)[0], None) is None


def test_an_extraction_killed_midway_is_cleaned_up_by_the_next(tmp_path, monkeypatch):
    """A killed extraction once left its staging folder in the cache for ever; one whose
    process still runs (its lock held) is left alone."""
    import fcntl
    import subprocess
    import sys
    import tarfile

    from naonet.data.sources import extract_archive

    monkeypatch.setenv("NAONET_CACHE", str(tmp_path / "cache"))
    extracted = tmp_path / "cache" / "extracted"
    extracted.mkdir(parents=True)
    # a process that claimed a staging folder the way extract_archive does, then died
    claim = ("import pathlib, sys; from naonet.data.sources import extraction_claim\n"
             "with extraction_claim(pathlib.Path(sys.argv[1])) as staging:\n"
             "    (staging / 'half.bin').write_bytes(bytes(1000))\n"
             "    sys.stdout.write(str(staging)); sys.stdout.flush()\n"
             "    import os; os._exit(9)\n")
    result = subprocess.run([sys.executable, "-c", claim, str(extracted)], capture_output=True,
                            text=True, timeout=600)
    abandoned = Path(result.stdout)
    assert result.returncode == 9 and abandoned.is_dir(), result.stderr
    live = extracted / ".extracting-live"
    (live / "part").mkdir(parents=True)
    with open(extracted / ".extracting-live.lock", "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)  # a running extraction's
        archive = tmp_path / "images.tar.gz"
        (tmp_path / "images" / "train").mkdir(parents=True)
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(tmp_path / "images", arcname="images")
        target = extract_archive(archive)
        assert (target / "images" / "train").is_dir()
        assert not abandoned.exists() and not Path(f"{abandoned}.lock").exists()
        assert live.is_dir()
    assert sorted(entry.name for entry in extracted.iterdir()) == sorted(
        [target.name, ".extracting-live", ".extracting-live.lock"])


def test_processes_asking_for_one_archive_at_once_extract_it_once(tmp_path, monkeypatch):
    """Each of torchrun's processes extracted the archive on its own, at once (a trial
    user: two staging copies of CIFAR-10; on ImageNet with 8 GPUs, 8 copies); one
    extracts now, and the others wait for it and take its folder."""
    import tarfile
    import threading
    import time

    from naonet.data import sources

    monkeypatch.setenv("NAONET_CACHE", str(tmp_path / "cache"))
    archive = tmp_path / "images.tar.gz"
    (tmp_path / "images" / "train").mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "images", arcname="images")
    extracting, extract_into = [], sources.extract_into

    def slow_extraction(archive, staging):
        extracting.append(staging)
        time.sleep(0.5)  # long enough for the others to ask meanwhile
        extract_into(archive, staging)

    monkeypatch.setattr(sources, "extract_into", slow_extraction)
    folders = []
    threads = [threading.Thread(target=lambda: folders.append(sources.extract_archive(
        archive))) for _ in range(3)]  # each opens the lock file: one lock each, as processes
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(extracting) == 1 and len(folders) == 3 and len(set(folders)) == 1
    assert (folders[0] / "images" / "train").is_dir()


def test_copies_of_a_gzip_archive_share_one_extraction_and_a_changed_one_gets_its_own(
        tmp_path, monkeypatch):
    """Each checkout's copy of the CIFAR-10 archive once made its own 236 MB extraction:
    a gzip archive is known by its content (its gzip trailer sums all of it)."""
    import shutil
    import tarfile

    from naonet.data.sources import extract_archive

    monkeypatch.setenv("NAONET_CACHE", str(tmp_path / "cache"))
    (tmp_path / "images" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "images" / "train" / "cat" / "a.txt").write_text("first")

    def pack(name: str) -> Path:
        archive = tmp_path / name / "images.tar.gz"
        archive.parent.mkdir()
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(tmp_path / "images", arcname="images")
        return archive

    original = pack("one")
    copy = tmp_path / "two" / "images.tar.gz"
    copy.parent.mkdir()
    shutil.copy(original, copy)  # a new path and a new modification time
    assert extract_archive(copy) == extract_archive(original)
    (tmp_path / "images" / "train" / "cat" / "a.txt").write_text("other")  # same length
    changed = extract_archive(pack("three"))
    assert changed != extract_archive(original)
    assert (changed / "images" / "train" / "cat" / "a.txt").read_text() == "other"
    assert len(list((tmp_path / "cache" / "extracted").iterdir())) == 2


class _RandomlyAugmented(torch.utils.data.Dataset):
    """Sample i: i plus draws from each global stream an image transform may use."""

    def __len__(self) -> int:
        return 24

    def __getitem__(self, index: int):
        import random

        noise = [torch.rand(()).item(), random.random(), float(np.random.rand())]
        return torch.tensor([float(index), *noise]), index % 3


def _epoch_batches(loader, epoch: int) -> list[torch.Tensor]:
    loader.set_epoch(epoch)
    return [images.clone() for images, _ in loader]


def test_loader_augmentations_depend_on_the_epoch_and_sample_only():
    """A resumed run (new workers, started in a later epoch) augments as the run it
    continues: persistent workers once carried their random streams across epochs. The
    number of workers does not matter either, and without workers the training's own
    streams are left as they were."""
    from naonet.data.pipelines import LoaderBatches

    def loader(workers: int, world_size: int = 1) -> LoaderBatches:
        return LoaderBatches(_RandomlyAugmented(), 5, torch.device("cpu"), train=True,
                             workers=workers, seed=3, rank=world_size - 1,
                             world_size=world_size)

    for world_size in (2, 1):  # rank 1 of two under torchrun (its DistributedSampler)
        uninterrupted = loader(1, world_size)
        epochs = [_epoch_batches(uninterrupted, epoch) for epoch in range(3)]
        resumed = _epoch_batches(loader(1, world_size), 2)
        for a, b in zip(epochs[2], resumed, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(torch.cat(epochs[1]), torch.cat(epochs[2]))  # new draws each epoch
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    in_process = _epoch_batches(loader(0), 2)
    assert torch.equal(torch.rand(3), expected)  # the caller's stream, untouched
    for a, b in zip(epochs[2], in_process, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


class _WorkerSignals(torch.utils.data.Dataset):
    """Sample i: whether the worker ignores SIGINT, and the worker's process id."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        import os
        import signal

        ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        return torch.tensor([float(ignored)]), os.getpid()


def test_loader_workers_leave_ctrl_c_to_the_main_process():
    """Ctrl-C reaches the workers too: a worker raising the command's KeyboardInterrupt in
    its exit path printed a traceback each, and the loader then raised over the stop's
    one line (that the command reports a process group's stop in one line:
    test_bad_input.py::test_sigterm_to_the_process_group_stops_a_loader_run_in_one_line)."""
    from naonet.data.pipelines import LoaderBatches

    batches = LoaderBatches(_WorkerSignals(), 4, torch.device("cpu"), train=False,
                            workers=1)
    ignored, _ = next(iter(batches))
    assert ignored.flatten().tolist() == [1.0] * 4


CTRL_C_AS_WORKERS_START = """
import os, signal, torch
from torch.utils.data import TensorDataset
from naonet.data.pipelines import LoaderBatches

# a process group's Ctrl-C reaching each worker right after its fork, before the worker
# could run any code of ours
os.register_at_fork(after_in_child=lambda: os.kill(os.getpid(), signal.SIGINT))
images = TensorDataset(torch.zeros(8, 3, 4, 4), torch.arange(8))
batches = LoaderBatches(images, 2, torch.device("cpu"), train=False, workers=2)
print(sorted(torch.cat([labels for _, labels in batches]).tolist()))
"""


def test_a_ctrl_c_as_the_workers_start_stays_out_of_them():
    """Left to the inherited handler, the signal raised a KeyboardInterrupt in each
    starting worker (printed as "Exception ignored ... KeyboardInterrupt", or a traceback
    and the loader's "worker exited unexpectedly")."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", CTRL_C_AS_WORKERS_START],
                          capture_output=True, text=True, timeout=600)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (
        0, str(list(range(8))), "")


SIGTERM_AS_WORKERS_START = """
import os, signal, sys, torch
from torch.utils.data import TensorDataset
from naonet.data.pipelines import LoaderBatches

# the command's own SIGTERM handler, which a worker inherits with the fork
signal.signal(signal.SIGTERM, lambda *_: print(f"handler ran in {os.getpid()}", flush=True))
# a process group's SIGTERM reaching each worker right after its fork
os.register_at_fork(after_in_child=lambda: os.kill(os.getpid(), signal.SIGTERM))
images = TensorDataset(torch.zeros(8, 3, 4, 4), torch.arange(8))
try:
    for _ in LoaderBatches(images, 2, torch.device("cpu"), train=False, workers=1):
        pass
except RuntimeError as error:  # the main process's stop reports it (naonet.cli.main)
    print("loader:", str(error).split(" (pid")[0])
"""


def test_a_sigterm_as_the_workers_start_ends_them_without_the_commands_handler():
    """The command's handler ran in a worker that a process group's SIGTERM reached
    before torch's own handler was set (its stop, and a traceback, in the worker)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", SIGTERM_AS_WORKERS_START],
                          capture_output=True, text=True, timeout=600)
    # ended by torch's handler, which the loader reports; the command's never ran there
    assert done.stdout.splitlines() == ["loader: DataLoader worker"], (done.stdout,
                                                                      done.stderr)


MAIN_PROCESS_LEAVING_A_HANDOVER = """
import os, socket, sys
from multiprocessing import resource_sharer
from naonet.data.pipelines import _seed_worker

_seed_worker(0)  # as a loader worker starts
handed = resource_sharer.DupFd(os.open(os.devnull, os.O_RDONLY))  # its serving thread
leaving = socket.socket(socket.AF_UNIX)  # a main process ended mid-handshake
leaving.connect(resource_sharer._resource_sharer._address)
leaving.recv(1)
leaving.close()
os.close(handed.detach())  # served after the broken one: its error is handled by now
sys.excepthook(ValueError, ValueError("any other error"), None)
"""


def test_a_worker_is_quiet_when_the_main_process_leaves_while_taking_a_batch():
    """A process group's SIGTERM that ended the main process while it took a batch's
    tensors printed the worker's ConnectionResetError traceback below the stop's line (2
    runs in 30 of test_sigterm_to_the_process_group_stops_a_loader_run_in_one_line under
    load); another error still prints."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", MAIN_PROCESS_LEAVING_A_HANDOVER],
                          capture_output=True, text=True, timeout=600)
    assert (done.returncode, done.stderr) == (0, "ValueError: any other error\n")


def test_a_search_checks_the_test_classes_its_printed_training_will_read(cifar_mini,
                                                                        tmp_path, capsys):
    """A search reads train/ only: with test/ classes of other names it ran to its end
    and printed a nao train command that failed at once."""
    import re
    import shutil

    from naonet.data.registry import check_split_classes

    check_split_classes(cifar_mini)  # the same classes: nothing to say
    renamed = tmp_path / "renamed"
    shutil.copytree(cifar_mini, renamed)
    (renamed / "test" / "cat").rename(renamed / "test" / "kitten")
    with pytest.raises(UserError, match=re.escape(
            f"the train and test classes of {renamed} differ (only in train: cat; only in "
            "test: kitten); the search reads train/ only, but the training of what it finds "
            "reads test/: make the class folders match, or search a copy without test/")):
        check_split_classes(renamed)
    status, _, err = nao_in_process(capsys, "search", "--preset", "quick-cifar10", "--dataset",
                                    "folder", "--data", str(renamed), "--output",
                                    str(tmp_path / "run"))
    assert status == 2 and "the train and test classes of" in err and "\n" not in err.strip()
    assert not (tmp_path / "run").exists()  # refused before anything is read or written
    # Kaggle's layout without val/: test images not sorted into classes. The search and
    # a training that hold validation images out pass it over (both refused it, and the
    # search's printed training adds --valid-size); a training without them refuses it.
    from naonet.data.sources import has_test_images

    flat = tmp_path / "flat-test"
    shutil.copytree(cifar_mini / "train", flat / "train")
    (flat / "test").mkdir()
    shutil.copy(next((cifar_mini / "test" / "cat").iterdir()), flat / "test" / "x.jpg")
    check_split_classes(flat)
    assert not has_test_images(flat, "folder")
    for size in (0, 96):  # the in-memory and the loader pipelines
        bundle = build_data(DataConfig(dataset="folder", data=str(flat), valid_size=50,
                                       image_size=size), torch.device("cpu"))
        assert bundle.test is None and bundle.valid is not None
    with pytest.raises(UserError, match="test has no class sub-folders"):
        build_data(DataConfig(dataset="folder", data=str(flat)), torch.device("cpu"))
    shutil.rmtree(flat / "test")
    check_split_classes(flat)  # train/ alone: the search holds validation images out
    emptied = tmp_path / "emptied"  # the names match, but the training finds no cats
    shutil.copytree(cifar_mini, emptied)
    for image in (emptied / "test" / "cat").iterdir():
        image.unlink()
    with pytest.raises(UserError, match=re.escape(
            f"class folder {emptied / 'test' / 'cat'} holds no images; the search reads "
            "train/ only, but the training of what it finds reads test/: add test images of "
            "cat, or search a copy without test/")):  # not "remove the folder": then the
        check_split_classes(emptied)  # classes differ, which is refused too


def test_an_error_lists_twenty_class_names_and_counts_the_rest():
    from naonet.data.registry import class_difference

    names = [f"n{index:08d}" for index in range(1000)]
    said = class_difference(names, ["cat"], "train", "test")
    assert said == f"only in train: {', '.join(names[:20])} and 980 more; only in test: cat"


def test_a_photo_is_read_upright_as_its_exif_orientation_says(tmp_path):
    """A phone stores a portrait photo sideways with an orientation tag: it was read
    sideways (and classified so) by training, eval and predict."""
    from PIL import Image

    from naonet.data import prepare_image

    upright = np.zeros((32, 32, 3), dtype=np.uint8)
    upright[:8] = (250, 20, 20)  # a red band along the top
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turn 90 degrees clockwise to show
    for name, tagged in (("upright", None), ("sideways", exif)):
        folder = tmp_path / name / "photos"
        folder.mkdir(parents=True)
        (Image.fromarray(upright) if tagged is None else stored).save(
            folder / "photo.png", **({} if tagged is None else {"exif": tagged}))
    read = {name: load_image_folder(tmp_path / name).images[0]
            for name in ("upright", "sideways")}
    assert read["sideways"][0, :8].float().mean() > 240  # the red band on top, as shown
    assert torch.equal(read["sideways"], read["upright"])
    assert torch.equal(prepare_image(tmp_path / "sideways" / "photos" / "photo.png", "cifar10"),
                       prepare_image(tmp_path / "upright" / "photos" / "photo.png", "cifar10"))


def test_a_photo_whose_exif_cannot_be_read_is_read_as_stored(tmp_path, monkeypatch):
    """PIL's exif_transpose has raised SyntaxError, ZeroDivisionError and IndexError on
    malformed tags: such a photo, read before orientations were honoured, still is."""
    from PIL import Image, ImageOps

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (8, 8), (10, 200, 10)).save(folder / "photo.jpg")

    def malformed(image, in_place=False):
        raise SyntaxError("not a TIFF file (header b'' not valid)")

    monkeypatch.setattr(ImageOps, "exif_transpose", malformed)
    monkeypatch.setenv("NAONET_DECODED_CACHE", "0")
    assert load_image_folder(tmp_path).images[0, 1].float().mean() > 150


def test_gif_and_jfif_photos_are_images(tmp_path):
    """PIL reads them (nao predict did), but training skipped them without a word."""
    from PIL import Image

    for name, suffix in (("cat", ".gif"), ("cat", ".jfif"), ("dog", ".jpe"), ("dog", ".png")):
        (tmp_path / name).mkdir(exist_ok=True)
        image = Image.new("RGB", (8, 8), (200, 30, 30) if name == "cat" else (30, 30, 200))
        image.save(tmp_path / name / f"photo{suffix}", format={".gif": "GIF", ".png": "PNG"}
                   .get(suffix, "JPEG"))
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    samples, classes = list_image_folder(tmp_path)
    assert classes == ["cat", "dog"]
    assert sorted(path.name for path, _ in samples) == ["photo.gif", "photo.jfif", "photo.jpe",
                                                        "photo.png"]
    split = load_image_folder(tmp_path)
    red = split.images[split.labels == 0].float().mean(dim=(0, 2, 3))
    assert red[0] > 150 and red[2] < 80  # the GIF's palette read back as its colour


def test_no_training_batch_holds_one_image_alone(cifar_mini):
    """A last training batch of one image crashed training with a traceback at the end
    of its first epoch: the auxiliary head's BatchNorm cannot normalise one value per
    channel. Both pipelines leave that image out (another each epoch); evaluation keeps
    every image."""
    from naonet.data.pipelines import LoaderBatches, trained_images

    split = load_image_folder(cifar_mini / "train")
    subset = type(split)(split.images[:129], split.labels[:129], split.classes)
    common = dict(batch_size=64, device=torch.device("cpu"), mean=(0.5,) * 3, std=(0.25,) * 3)
    device = DeviceBatches(subset, train=True, **common)
    left_out = []
    for epoch in range(2):
        device.set_epoch(epoch)
        assert [labels.shape[0] for _, labels in device] == [64, 64] and len(device) == 2
        left_out.append(set(range(129)) - set(device._indices().tolist()))
    assert len(left_out[0]) == len(left_out[1]) == 1 and left_out[0] != left_out[1]
    # a shard's whole split, one process's: the count of all 129 (not of rank 1's 32)
    shard = DeviceBatches(subset, train=True, rank=1, world_size=4, **common)
    assert len(shard) == 1 and len(shard.unsharded()) == 2
    assert shard.unsharded()._indices().numel() == 128
    evaluation = DeviceBatches(subset, train=False, **common)
    assert [labels.shape[0] for _, labels in evaluation] == [64, 64, 1]

    loader = LoaderBatches(_RandomlyAugmented(), 23, torch.device("cpu"), train=True,
                           workers=0)  # 24 samples: one batch of 23, and one alone
    left_out = []
    for epoch in range(2):
        batches = _epoch_batches(loader, epoch)
        assert [len(images) for images in batches] == [23] and len(loader) == 1
        left_out.append(set(range(24)) - {int(row[0]) for row in batches[0]})
    assert len(left_out[0]) == len(left_out[1]) == 1 and left_out[0] != left_out[1]

    assert [trained_images(n, b) for n, b in ((129, 64), (130, 64), (65, 1), (2, 64))] == [
        128, 130, 65, 2]
    with pytest.raises(UserError, match=r"the training images leave no batch of two images"
                                        r" .*: use more training images"):
        trained_images(1, 64)


def test_a_cutout_that_hides_every_image_and_a_failed_download_are_refused_cleanly(
        cifar_mini, tmp_path, monkeypatch):
    """At 7 px the default --cutout 16 blanked every training image whole, silently (the
    runs at 1, 2 and 7 px trained on the same blank images). A failed --download left
    the empty folder it had made."""
    import naonet.data.registry as registry

    with pytest.raises(UserError, match=r"^--cutout 16 hides every 7-px training image "
                                        r"whole .*; pass a cutout under 14, or 0$"):
        build_data(DataConfig(data=str(cifar_mini), dataset="folder", image_size=7,
                              cutout=16), torch.device("cpu"))
    build_data(DataConfig(data=str(cifar_mini), dataset="folder", image_size=8, cutout=15,
                          train_subset=10), torch.device("cpu"))  # a corner is left

    def offline(root, dataset):
        raise UserError(f"could not download {dataset} into {root} (offline)")

    monkeypatch.setattr(registry, "download_cifar", offline)
    with pytest.raises(UserError, match="could not download cifar10"):
        build_data(DataConfig(data=str(tmp_path / "new" / "cifar"), download=True),
                   torch.device("cpu"))
    assert list(tmp_path.iterdir()) == []
