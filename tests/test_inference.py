"""Using a trained network: ``create_model``, ``nao eval`` on test images alone, and
``nao predict``."""

from __future__ import annotations

import json
import pickle
import random
import re
import shutil
import tarfile

import pytest
import torch

import naonet
from naonet.errors import UserError

from conftest import FIXTURES, nao_in_process, relative_error, require


def test_create_model_builds_the_published_configurations():
    manifests = json.loads(require(FIXTURES / "naonet_v2_full_manifests.json").read_text())
    from naonet.models import count_parameters

    cifar = naonet.create_model("naonet-v2-cifar10")
    imagenet = naonet.create_model("naonet-v2-imagenet")
    assert (cifar.config.skeleton, cifar.config.num_classes) == ("cifar", 10)
    assert (imagenet.config.skeleton, imagenet.config.num_classes) == ("imagenet", 1000)
    # the released code's own counts of the two published networks
    assert count_parameters(cifar) == manifests["cifar10_C36_N6_aux"]["params_excl_aux"]
    assert count_parameters(imagenet) == manifests["imagenet_C52_N4_aux"]["params_excl_aux"]
    assert count_parameters(cifar, include_aux=True) == \
        manifests["cifar10_C36_N6_aux"]["params_total"]
    small = naonet.create_model("naonet-v2", channels=8, layers=1, num_classes=3)
    assert (small.config.channels, small.config.num_classes) == (8, 3)
    assert cifar.classes[:3] == ["airplane", "automobile", "bird"] and len(cifar.classes) == 10
    assert imagenet.classes is None and small.classes is None  # no names known
    with pytest.raises(UserError, match="unknown network option"):
        naonet.create_model("naonet-v2", widht=3)
    # an unknown name's error listed naonet-v2 alone, not the configurations it takes
    with pytest.raises(UserError, match="unknown architecture name 'naonet-v3'; .*; "
                                        "create_model also takes the published "
                                        "configurations naonet-v2-cifar10 and "
                                        "naonet-v2-imagenet$"):
        naonet.create_model("naonet-v3")


def test_create_model_loads_released_and_converted_weights(released_file, tmp_path, capsys):
    path, fixture = released_file
    converted = tmp_path / "converted.pt"
    assert nao_in_process(capsys, "convert", str(path), str(converted))[0] == 0
    for source in (path, converted):
        network = naonet.create_model("naonet-v2", source).eval()
        with torch.no_grad():
            logits = network(fixture["input"])[0]
        # the fixture README's tolerance: 1e-4 relative to the largest logit
        assert relative_error(logits, fixture["logits"]) < 1e-4
    # a bare state_dict records no data set: the published configuration's names them
    bare = tmp_path / "bare.pt"
    torch.save(fixture["state_dict"], bare)
    published = naonet.create_model("naonet-v2-cifar10", bare)
    assert published.classes[:2] == ["airplane", "automobile"] and len(published.classes) == 10
    other = naonet.get_space("small").sample(random.Random(0)).to_qualified_string()
    with pytest.raises(UserError, match="holds small:"):
        naonet.create_model(other, converted)


def test_training_stores_the_class_names(capsys, cifar_mini, tmp_path):
    status, _, err = nao_in_process(
        capsys, "train", "--data", str(cifar_mini), "--output", str(tmp_path), "--channels",
        "8", "--layers", "1", "--epochs", "1", "--train-subset", "32", "--test-subset", "20",
        "--device", "cpu", "--no-progress")
    assert status == 0, err
    classes = torch.load(tmp_path / "last.pt", weights_only=True)["classes"]
    assert classes == sorted(path.name for path in (cifar_mini / "train").iterdir())


def save_naonet_v2(path, dataset: str, num_classes: int = 10, classes=None):
    """A naonet checkpoint of naonet-v2 at C 8, N 1 recording ``dataset`` (and
    ``classes``); returns (path, architecture, network)."""
    from naonet.compat.model_file import LoadedModel, model_file_payload
    from naonet.spaces import resolve_architecture

    own = resolve_architecture("naonet-v2")
    network = naonet.create_model(own, channels=8, layers=1, num_classes=num_classes)
    torch.save(model_file_payload(LoadedModel(network, own, dataset, False, classes=classes),
                                  dataset), path)
    return path, own, network


def test_create_model_names_a_checkpoints_outputs_by_its_recorded_classes(tmp_path):
    path, _, _ = save_naonet_v2(tmp_path / "three.pt", "folder", 3, ["ant", "bee", "cow"])
    assert naonet.create_model(checkpoint=path).classes == ["ant", "bee", "cow"]


def test_a_network_says_what_it_was_trained_on_and_a_contradicting_size_is_named(tmp_path):
    """A loaded network named its classes but not its data set or image size, which
    prepare_image needs (given the network there, it printed the network's whole repr);
    channels=16 on a C 8 file blamed the architecture."""
    from naonet.data import prepare_image

    path, _, _ = save_naonet_v2(tmp_path / "three.pt", "folder", 3, ["ant", "bee", "cow"])
    network = naonet.create_model(checkpoint=path)
    assert (network.dataset, network.image_size) == ("folder", 0)
    published = naonet.create_model("naonet-v2-cifar10")
    assert (published.dataset, published.image_size) == ("cifar10", 0)
    narrow = naonet.create_model("naonet-v2-cifar10", channels=8, layers=1)
    assert (narrow.dataset, len(narrow.classes)) == ("cifar10", 10)  # CIFAR-10's still
    for other in ({"num_classes": 3}, {"skeleton": "imagenet"}):  # CIFAR's it is not: it
        # gave prepare_image 32-px CIFAR input for a network with an ImageNet stem
        another = naonet.create_model("naonet-v2-cifar10", channels=8, layers=1, **other)
        assert (another.dataset, another.classes) == (None, None), other
    image = tmp_path / "ant.png"
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 10, 10)).save(image)
    assert prepare_image(image, network.dataset, network.image_size).shape == (3, 32, 32)
    with pytest.raises(UserError, match=r"^the dataset must be a name, one of: .*; got an "
                                        r"object of type NAONet \(a network from create_model "
                                        r"names its own: net.dataset, net.image_size\)$"):
        prepare_image(image, network)
    with pytest.raises(UserError, match=r"^no dataset named \(None: the network does not say "
                                        r"which data set it was trained on\); name it, one "
                                        r"of: cifar10, "):  # it pointed to net.dataset
        prepare_image(image, None)
    with pytest.raises(UserError, match=r"^image_size must be a whole number >= 0 \(0: the "
                                        r"data set's own\), got -5$"):  # torch's error, raw
        prepare_image(image, "cifar10", -5)
    with pytest.raises(UserError, match=r"three.pt holds a network of channels=8, not 16; "
                                        r"leave channels out"):
        naonet.create_model("naonet-v2", path, channels=16)
    assert naonet.create_model("naonet-v2", path, channels=8, keep_prob=0.5).config.channels == 8


def write_test_layouts(cifar_mini, root):
    """The test images of cifar_mini in every layout ``nao eval --data`` accepts."""
    test = cifar_mini / "test"
    shutil.copytree(test, root / "class-folders")
    shutil.copytree(test, root / "split" / "val")
    with tarfile.open(root / "test.tar.gz", "w:gz") as archive:
        archive.add(test, arcname="test")
    from naonet.data.sources import load_image_folder

    split = load_image_folder(test)
    batches = root / "pickled" / "cifar-10-batches-py"
    batches.mkdir(parents=True)  # the test batch alone: no data_batch_N files
    with open(batches / "test_batch", "wb") as handle:
        pickle.dump({b"data": split.images.numpy().reshape(len(split), -1),
                     b"labels": split.labels.tolist()}, handle)
    with open(batches / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [name.encode() for name in split.classes]}, handle)
    return {"class-folders": root / "class-folders", "val": root / "split",
            "archive": root / "test.tar.gz", "pickle": root / "pickled"}


def test_eval_needs_only_test_images_in_any_layout(released_file, cifar_mini, tmp_path, capsys):
    path, _ = released_file
    results = {}
    for name, data in write_test_layouts(cifar_mini, tmp_path).items():
        status, out, err = nao_in_process(capsys, "eval", str(path), "--data", str(data),
                                          "--json", "--device", "cpu")
        assert status == 0, (name, err)
        results[name] = json.loads(out)
    assert {result["images"] for result in results.values()} == {200}
    assert len({(result["top1"], result["top5"]) for result in results.values()}) == 1, results
    renamed = tmp_path / "class-folders"
    (renamed / "cat").rename(renamed / "kitten")
    status, _, err = nao_in_process(capsys, "eval", str(path), "--data", str(renamed),
                                    "--device", "cpu")
    assert status == 2 and "differ from the network's" in err
    assert "only in the network: cat; only in the test images: kitten" in err
    assert len(err.strip().splitlines()) == 1


def test_eval_reads_photos_of_any_size_at_the_size_of_a_cifar_network(
        released_file, cifar_mini, tmp_path, capsys):
    """A CIFAR network evaluated on a folder of larger photos ran at their size (96 x 72:
    a loss of 14.8 without a word), and photos of two sizes were refused even with the
    --image-size the error advised: they are read at 32 px, as nao predict reads them."""
    from PIL import Image

    path, _ = released_file
    photos, small = tmp_path / "photos", tmp_path / "small"
    for index, file in enumerate(sorted((cifar_mini / "test").glob("*/*"))[::4]):
        size = (96, 72) if index % 3 else (40, 40)  # two sizes, neither 32 px
        photo = Image.open(file).convert("RGB").resize(size)
        for root, image in ((photos, photo), (small, photo.resize((32, 32)))):
            (root / file.parent.name).mkdir(parents=True, exist_ok=True)
            image.save(root / file.parent.name / f"{file.stem}.png")
    results = []
    for data in (photos, small):
        status, out, err = nao_in_process(capsys, "eval", str(path), "--data", str(data),
                                          "--json", "--device", "cpu")
        assert status == 0, err
        results.append(json.loads(out))
    assert results[0]["images"] == 50, results
    assert [results[0][key] for key in ("top1", "top5", "loss")] == \
        [results[1][key] for key in ("top1", "top5", "loss")]


def test_eval_prints_top_5_only_with_more_than_5_classes(tmp_path, cifar_mini, capsys):
    """With 5 classes or fewer top-5 is 100 % whatever the network does: not printed."""

    for count in (3, 6):
        data = tmp_path / f"classes-{count}"
        data.mkdir()
        classes = sorted(path.name for path in (cifar_mini / "test").iterdir())[:count]
        for name in classes:
            (data / name).symlink_to(cifar_mini / "test" / name)
        path, _, _ = save_naonet_v2(tmp_path / f"net-{count}.pt", "folder", count)
        status, out, err = nao_in_process(capsys, "eval", str(path), "--data", str(data),
                                          "--device", "cpu")
        assert status == 0, err
        assert "top-1 " in out and ("top-5 " in out) == (count > 5), out
        status, out, err = nao_in_process(capsys, "eval", str(path), "--data", str(data),
                                          "--device", "cpu", "--json")
        assert status == 0, err
        assert (json.loads(out)["top5"] is None) == (count <= 5), out  # it said 1.0


def test_predict_gives_the_probabilities_eval_computes(released_file, cifar_mini, capsys):
    """The top-5 of ``nao predict`` are the softmax of the logits the evaluation pipeline
    gives for the same images, named by CIFAR-10's classes."""
    from naonet.compat.model_file import load_model
    from naonet.data import DataConfig, build_test_data

    path, _ = released_file
    images = [sorted((cifar_mini / "test" / name).iterdir())[0] for name in ("cat", "ship")]
    status, out, err = nao_in_process(capsys, "predict", str(path), *map(str, images),
                                      "--json", "--device", "cpu")
    assert status == 0, err
    predicted = [json.loads(line) for line in out.splitlines()]
    network = load_model(path).network.eval()
    data = build_test_data(DataConfig(data=str(cifar_mini / "test")), torch.device("cpu"))
    inputs, labels = next(iter(data.batches))
    names = data.classes
    for record, image in zip(predicted, images, strict=True):
        row = [i for i, label in enumerate(labels.tolist())
               if names[label] == image.parent.name][0]  # the first image of its class
        with torch.no_grad():
            expected = torch.softmax(network(inputs[row:row + 1])[0], dim=1)[0]
        top = expected.topk(5)
        assert [entry["class"] for entry in record["top"]] == [names[i] for i in top.indices]
        assert [entry["probability"] for entry in record["top"]] == pytest.approx(
            top.values.tolist(), abs=1e-5)


@pytest.mark.parametrize("bad", ["not-an-image.jpg", "a-folder"])
def test_predict_refuses_a_file_that_is_not_an_image(released_file, tmp_path, capsys, bad):
    path, _ = released_file
    (tmp_path / "not-an-image.jpg").write_text("hello")
    (tmp_path / "a-folder").mkdir()
    status, out, err = nao_in_process(capsys, "predict", str(path), str(tmp_path / bad))
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and bad in err


def test_predict_classifies_the_readable_images_and_names_the_others(
        released_file, cifar_mini, tmp_path, capsys, monkeypatch):
    """One bad file failed the whole call with nothing printed, and every image was read
    into memory first: the images go a batch at a time, a bad one is named and skipped,
    and the exit status says so."""
    from naonet.cli import predict

    monkeypatch.setattr(predict, "IMAGES_PER_BATCH", 2)
    path, _ = released_file
    good = [str(file) for file in sorted((cifar_mini / "test" / "cat").iterdir())[:3]]
    (tmp_path / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    images = [good[0], str(tmp_path / "cut.jpg"), good[1], str(tmp_path / "gone.png"), good[2]]
    status, out, err = nao_in_process(capsys, "predict", str(path), *images, "--json",
                                      "--device", "cpu")
    assert status == 2
    lines = [json.loads(line) for line in out.splitlines()]  # one per image, in order
    assert [line["image"] for line in lines] == images
    assert [line["error"] for line in lines[1::2]] == [
        f"cannot read image {tmp_path / 'cut.jpg'} (Truncated File Read); remove or replace "
        "it", f"image {tmp_path / 'gone.png'} does not exist; check the path"]
    out = "".join(line + "\n" for line in out.splitlines()[::2])  # the images read
    assert err.splitlines() == [
        f"nao predict: error: cannot read image {tmp_path / 'cut.jpg'} (Truncated File "
        "Read); remove or replace it; skipped",
        f"nao predict: error: image {tmp_path / 'gone.png'} does not exist; check the path; "
        "skipped"]
    status, alone, _ = nao_in_process(capsys, "predict", str(path), *good, "--json",
                                      "--device", "cpu")
    assert status == 0
    # the same figures, a batch of 2 or of 3: float32 sums in another order, probabilities
    # in [0, 1] within a few units of float32's 6e-8
    for ours, reference in zip(out.splitlines(), alone.splitlines(), strict=True):
        ours, reference = json.loads(ours)["top"], json.loads(reference)["top"]
        assert [entry["class"] for entry in ours] == [entry["class"] for entry in reference]
        assert [entry["probability"] for entry in ours] == pytest.approx(
            [entry["probability"] for entry in reference], abs=1e-6)


def test_predict_reads_a_folder_as_the_images_under_it(released_file, cifar_mini,
                                                       tmp_path, capsys):
    """A folder was refused as "not an image file": it stands for the image files under
    it, sub-folders included, in sorted order; one without images is named and skipped."""
    path, _ = released_file
    cats = sorted((cifar_mini / "test" / "cat").iterdir())[:2]
    ships = sorted((cifar_mini / "test" / "ship").iterdir())[:1]
    photos = tmp_path / "photos"
    (photos / "inner").mkdir(parents=True)
    (photos / "empty").mkdir()
    (photos / "notes.txt").write_text("not an image")
    for index, file in enumerate(cats):
        (photos / f"b{index}.jpg").symlink_to(file)
    (photos / "inner" / "a.jpg").symlink_to(ships[0])
    listed = [str(photos / "b0.jpg"), str(photos / "b1.jpg"), str(photos / "inner" / "a.jpg")]
    status, by_name, err = nao_in_process(capsys, "predict", str(path), *listed, "--json",
                                          "--device", "cpu")
    assert status == 0, err
    status, by_folder, err = nao_in_process(capsys, "predict", str(path), str(photos),
                                            "--json", "--device", "cpu")
    assert status == 0, err
    assert by_folder == by_name
    status, out, err = nao_in_process(capsys, "predict", str(path), str(photos / "empty"),
                                      str(photos / "b0.jpg"), "--device", "cpu")
    assert status == 2 and out.startswith(str(photos / "b0.jpg") + "\n")
    assert err.splitlines() == [f"nao predict: error: folder {photos / 'empty'} holds no "
                                "images (.jpg, .jpeg, .png, .bmp, .ppm, .pgm, .webp, .tif, "
                                ".tiff, .jpe, .jfif, .gif); skipped"]


@pytest.mark.parametrize("dataset", ["cifar10", "imagenet"])
def test_the_preprocessing_an_export_records_is_what_prepare_image_does(tmp_path, dataset):
    """An exported file's metadata says how to prepare an image without naonet; done by
    hand as it says, the input is prepare_image's."""
    import numpy as np
    from PIL import Image
    from torchvision.transforms import functional

    from naonet.data import get_dataset_spec, prepare_image
    from naonet.data.registry import preprocessing_text

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(
        tmp_path / "photo.png")
    text, spec = preprocessing_text(dataset), get_dataset_spec(dataset)
    image = Image.open(tmp_path / "photo.png").convert("RGB")
    if dataset == "cifar10":
        assert "resized to 32 x 32 (PIL's bicubic)" in text
        image = image.resize((32, 32), Image.Resampling.BICUBIC)
    else:
        assert ("shorter side resized to 256 (bilinear), the centre 224 x 224 cropped (its "
                "first row and column at round((side - 224) / 2)") in text
        image = functional.resize(image, 256)  # 256 x 341: the columns from 58 (of 58.5)
        left, top = (round((side - 224) / 2) for side in image.size)
        image = image.crop((left, top, left + 224, top + 224))
    # the numbers as the text gives them (a user with a floor, or without the numbers,
    # was one pixel or a data set's statistics off)
    mean, std = (tuple(map(float, re.search(rf"{name} \(([^)]*)\)", text)[1].split(", ")))
                 for name in ("mean", "std"))
    assert (mean, std) == (spec.mean, spec.std)
    by_hand = functional.normalize(functional.to_tensor(image), mean, std)
    assert torch.allclose(prepare_image(tmp_path / "photo.png", dataset), by_hand, atol=1e-6)


@pytest.mark.parametrize("size", [0, 16])
def test_prepare_image_is_the_evaluation_preprocessing(cifar_mini, size):
    """At the native size and at a training --image-size (area-resized as training does)."""
    from naonet.data import DataConfig, build_test_data, prepare_image

    data = build_test_data(DataConfig(data=str(cifar_mini / "test"), image_size=size),
                           torch.device("cpu"))
    images, labels = next(iter(data.batches))
    cat = data.classes.index("cat")
    row = labels.tolist().index(cat)  # the first cat of the sorted listing
    first_cat = sorted((cifar_mini / "test" / "cat").iterdir())[0]
    assert torch.allclose(prepare_image(first_cat, "cifar10", size), images[row], atol=1e-5)


def pooling_twin(architecture):
    """``architecture`` with its first average pooling made a max pooling: a network of
    the same weights, which loads the other's state_dict without complaint."""
    space = architecture.space
    integers = list(space.to_integers(architecture))
    position = next(i for i in range(1, len(integers), 2)
                    if integers[i] == space.op_index("avg_pool_3x3"))
    integers[position] = space.op_index("max_pool_3x3")
    return space.from_integers(integers)


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """A naonet checkpoint of naonet-v2 at C 8, N 1, trained on cifar10 (as recorded)."""
    return save_naonet_v2(tmp_path / "tiny.pt", "cifar10")


def test_a_checkpoint_refuses_an_architecture_other_than_its_own(tiny_checkpoint, tmp_path,
                                                                 capsys):
    path, own, network = tiny_checkpoint
    twin = pooling_twin(own)
    # the twin's network takes these weights as they are: the refusal is the only guard
    naonet.create_model(twin, channels=8, layers=1).load_state_dict(network.state_dict())
    for command in (["eval", str(path), "--data", str(tmp_path)],
                    ["predict", str(path), str(tmp_path / "image.jpg")],
                    ["export", str(path), str(tmp_path / "model.pt")]):
        status, out, err = nao_in_process(capsys, *command, "--arch", twin.to_string())
        assert status == 2 and out == "", (command, err)
        assert f"holds {own.to_qualified_string()}, not {twin.to_qualified_string()}" in err
        assert len(err.strip().splitlines()) == 1
    with pytest.raises(UserError, match="leave the architecture out"):
        naonet.create_model(twin, path)
    loaded = naonet.create_model(own.to_string(), path)  # the same one, as text: loads
    torch.testing.assert_close(loaded.state_dict(), network.state_dict(), rtol=0, atol=0)
    with pytest.raises(UserError, match=r"is a file, not an architecture; pass it as "
                                         r"create_model\(checkpoint="):
        naonet.create_model(str(path))


@pytest.mark.parametrize("command", ["eval", "predict", "export", "convert"])
def test_a_data_set_other_than_the_recorded_one_is_refused(tiny_checkpoint, tmp_path, capsys,
                                                           command):
    """Another data set's normalisation and class names would be applied silently."""
    path, _, _ = tiny_checkpoint
    target = {"eval": ["--data", str(tmp_path)], "predict": [str(tmp_path / "image.jpg")],
              "export": [str(tmp_path / "out" / "model.pt")],
              "convert": [str(tmp_path / "out" / "model.pt")]}[command]
    status, out, err = nao_in_process(capsys, command, str(path), *target,
                                      "--dataset", "cifar100")
    assert status == 2 and out == ""
    assert f"{path} was trained on cifar10, not cifar100; drop --dataset" in err
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_info_on_a_checkpoint_describes_its_own_network(tiny_checkpoint, capsys):
    from naonet.models import count_parameters

    path, own, network = tiny_checkpoint
    status, out, err = nao_in_process(capsys, "info", str(path))
    assert status == 0, err
    assert f"architecture: {own.to_qualified_string()}" in out
    aux = ", aux head" if network.config.aux_head else ""
    # the size even where the run kept the data set's own (0), and the class names
    assert (f"this checkpoint: small network of cifar C 8 N 1, 10 classes{aux}, "
            f"{count_parameters(network):,} parameters (no aux), trained on cifar10 at 32 px; "
            "classes: airplane, automobile, bird, cat, deer, dog, frog, horse, ship, "
            "truck") in out


def test_info_shows_what_a_released_training_checkpoint_recorded(released_file, tmp_path,
                                                                 capsys):
    """The released utils.save keeps the epoch and the best top-1 (a percent, sometimes a
    tensor) beside the weights: nao info left them out."""
    import argparse

    _, fixture = released_file
    path = tmp_path / "checkpoint.pt"
    args = argparse.Namespace(arch=fixture["arch"], search_space="small", epochs=600)
    torch.save({"model": fixture["state_dict"], "args": args, "epoch": 412, "step": 9,
                "best_acc_top1": torch.tensor(97.4321)}, path)
    status, out, err = nao_in_process(capsys, "info", str(path))
    assert status == 0, err
    assert out.splitlines()[-1] == ("trained to epoch 412 of 600, best test top-1 97.43 % "
                                    "(the released code's record)")


def test_info_says_a_released_checkpoint_is_the_released_codes(capsys):
    path = require(FIXTURES / "naonet_v2_cifar_c8_l1.pt")
    status, out, err = nao_in_process(capsys, "info", str(path))
    assert status == 0, err
    # as the fixture's config says (dataset cifar10, C 8, 1 cell a stage, an aux head)
    line = next(line for line in out.splitlines() if "checkpoint:" in line)
    assert line.startswith("the released code's checkpoint: small network of cifar C 8 N 1, "
                           "10 classes, aux head, ") and line.endswith(
        "trained on cifar10 at 32 px; classes: airplane, automobile, bird, cat, deer, dog, "
        "frog, horse, ship, truck")


def test_show_draws_the_architecture_a_checkpoint_records(tiny_checkpoint, tmp_path, capsys):
    """It once read the file's path as an architecture string."""
    path, own, _ = tiny_checkpoint
    status, out, err = nao_in_process(capsys, "show", str(path), "-o",
                                      str(tmp_path / "cells.png"))
    assert status == 0, err
    assert own.to_readable() in out
    assert (tmp_path / "cells.png").read_bytes()[:4] == b"\x89PNG"


def test_create_model_loads_a_plain_state_dict_of_a_nas_bench_201_cell(tmp_path):
    from naonet.spaces import NB201

    cell = NB201.sample(random.Random(1))
    network = NB201.build_network(cell, NB201.network_config(8, 1, 10))
    path = tmp_path / "weights.pt"
    torch.save(network.state_dict(), path)
    for loaded in (naonet.create_model(cell, path),  # the size read off the weights
                   naonet.create_model(cell, path, channels=8, cells_per_stage=1)):
        torch.testing.assert_close(loaded.state_dict(), network.state_dict(), rtol=0, atol=0)
    with pytest.raises(UserError) as error:  # a size asked for that the weights are not
        naonet.create_model(cell, path, channels=16)
    message = str(error.value)
    assert "does not fit the nb201 network of C 16, 1 cell per stage, 10 classes (" \
        in message and "\n" not in message
    assert "weights of another shape, such as stem.0.weight" in message
    assert "check the architecture and the network options" in message


def test_a_released_file_reads_the_architecture_asked_for_in_its_own_space(tmp_path):
    """A released middle-space file records search_space 'middle': an --arch of the same
    bare integers names its architecture (once read in the default small space and
    refused)."""
    import argparse

    middle, small = naonet.get_space("middle"), naonet.get_space("small")
    seeds = (seed for seed in range(100) if not _parses(small, middle.sample(
        random.Random(seed)).to_string()))
    own = middle.sample(random.Random(next(seeds)))
    network = naonet.create_model(own, channels=8, layers=1)
    path = tmp_path / "released.pt"
    args = argparse.Namespace(arch=own.to_string(), search_space="middle", dataset="cifar10")
    torch.save({"model": network.state_dict(), "args": args}, path)
    from naonet.compat.model_file import load_model

    loaded = load_model(path, arch=own.to_string())
    assert loaded.architecture == own and loaded.network.config.channels == 8
    other = middle.mutate(own, random.Random(0))
    with pytest.raises(UserError, match=f"holds {re.escape(own.to_qualified_string())}, not "
                                        f"{re.escape(other.to_qualified_string())}"):
        load_model(path, arch=other.to_string())


def _parses(space, text: str) -> bool:
    try:
        space.parse(text)
    except UserError:
        return False
    return True


def test_an_architecture_value_of_another_space_than_the_one_named_is_refused():
    from naonet.spaces import NB201

    cell = NB201.sample(random.Random(0))
    with pytest.raises(UserError, match="takes architectures of the 'small' space, got "
                                        "one of the 'nb201' space"):
        naonet.create_model(cell, space="small")


def test_the_fixtures_recorded_architecture_and_data_set_are_read(capsys):
    """The reference fixtures keep the released code's architecture string and config at
    their top level; info, eval and convert said the file 'does not record its
    architecture; pass --arch', and create_model gave it no class names."""
    from naonet.data.registry import CIFAR10_CLASSES

    cifar = require(FIXTURES / "naonet_v2_cifar_c8_l1.pt")
    fixture = torch.load(cifar, weights_only=True)
    status, printed, err = nao_in_process(capsys, "info", str(cifar))
    assert status == 0, err
    assert f"architecture: small:{fixture['arch']}" in printed
    assert "trained on cifar10" in printed
    network = naonet.create_model("naonet-v2", cifar)
    assert network.classes == list(CIFAR10_CLASSES)


def test_another_projects_arch_entry_is_not_taken_for_an_architecture(tmp_path):
    """timm's and torchvision's example checkpoints keep their own ``arch`` beside the
    weights: once the fixtures' top-level form was read, such a file was refused with
    'unknown architecture name' even with the architecture given."""
    from naonet.compat.model_file import load_model

    fixture = torch.load(require(FIXTURES / "naonet_v2_cifar_c8_l1.pt"), weights_only=True)
    path = tmp_path / "checkpoint.pt"
    torch.save({"arch": "naonet_v2_c8", "epoch": 3, "config": {"lr": 0.1},
                "state_dict": fixture["state_dict"]}, path)
    loaded = load_model(path, arch="naonet-v2")
    assert loaded.architecture.to_string() == fixture["arch"] and loaded.dataset is None
    with pytest.raises(UserError, match="does not record its architecture; give it with --arch"):
        load_model(path)


@pytest.mark.parametrize("name, other", [("naonet-v2-imagenet", "naonet_v2_cifar_c8_l1.pt"),
                                         ("naonet-v2-cifar10", "naonet_v2_imagenet_c8_l1.pt")])
def test_a_published_name_refuses_a_file_of_the_other_network(name, other):
    """create_model('naonet-v2-imagenet', <CIFAR file>) gave a 10-class CIFAR network
    under the ImageNet network's name; the command line refused such a file."""
    with pytest.raises(UserError, match=f"is not a {name} network: trained on"):
        naonet.create_model(name, require(FIXTURES / other))


def test_another_image_size_than_the_trained_one_is_noted(tiny_checkpoint, tmp_path, capsys):
    """A network runs at any size (its pooling adapts): eval gave chance accuracy at 1 px
    without a word."""
    from PIL import Image

    path, _, _ = tiny_checkpoint
    Image.new("RGB", (40, 30), (90, 120, 200)).save(tmp_path / "photo.png")
    notes = {}
    for size in ("8", "32", "0"):
        status, out, err = nao_in_process(capsys, "predict", str(path),
                                          str(tmp_path / "photo.png"), "--image-size", size)
        assert status == 0 and out.startswith(str(tmp_path / "photo.png")), err
        notes[size] = err.strip()
    assert notes == {"8": "nao predict: note: the network was trained at 32 px; running it "
                          "at 8 px (--image-size)", "32": "", "0": ""}


def test_the_note_on_another_size_says_when_the_preprocessing_changes_with_it(capsys):
    """A folder network trained at 128 px (resized and centre-cropped) and run at 64 px is
    fed images resized whole, the small-image preprocessing: the note said only the size."""
    from types import SimpleNamespace

    from naonet.cli.eval import note_another_size

    said = {}
    for trained, asked in ((128, 64), (128, 96), (48, 96), (48, 32)):
        note_another_size("eval", SimpleNamespace(image_size=trained), "folder", asked)
        said[trained, asked] = capsys.readouterr().err.strip()
    head = "nao eval: note: the network was trained at"
    assert said == {
        (128, 64): f"{head} 128 px; running it at 64 px (--image-size), where images are "
                   "prepared as small ones (resized whole, not centre-cropped)",
        (128, 96): f"{head} 128 px; running it at 96 px (--image-size)",
        (48, 96): f"{head} 48 px; running it at 96 px (--image-size), where images are "
                  "prepared as large ones (resized and centre-cropped, not resized whole)",
        (48, 32): f"{head} 48 px; running it at 32 px (--image-size)"}
