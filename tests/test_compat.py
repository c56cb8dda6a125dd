"""Released checkpoints: key conversion, safe loading, inferred configs, nao convert."""

import argparse
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from naonet.compat import (
    convert_key,
    infer_network_config,
    load_released_checkpoint,
    read_checkpoint_payload,
    released_arguments,
)
from naonet.errors import UserError

from conftest import FIXTURES, nao_in_process, relative_error, require


def test_key_conversion_examples():
    assert convert_key("cells.0.ops.0.x_op.op.1.weight") == "cells.0.nodes.0.0.op.depthwise1.weight"
    assert (convert_key("cells.3.ops.4.y_op.op.7.running_var")
            == "cells.3.nodes.4.1.op.bn2.running_var")
    assert (convert_key("module.cells.7.maybe_calibrate_size.preprocess_x.path2.1.weight")
            == "cells.7.calibrate.preprocess0.conv2.weight")
    assert convert_key("auxiliary_head.conv1.weight") == "aux_head.conv1.weight"
    assert convert_key("stem0.4.bias") == "stem0.bn2.bias"


def test_released_file_loads_without_building_pickled_classes(released_file):
    path, fixture = released_file
    with pytest.raises(pickle.UnpicklingError, match="Namespace"):  # the safe loader refuses
        torch.load(path, weights_only=True)
    state_dict = load_released_checkpoint(path)
    assert set(state_dict) == set(fixture["state_dict"])
    arguments = released_arguments(read_checkpoint_payload(path))
    assert arguments["arch"] == fixture["arch"] and arguments["dataset"] == "cifar10"
    config = infer_network_config(state_dict)
    assert (config.skeleton, config.channels, config.layers, config.num_classes,
            config.aux_head) == ("cifar", 8, 1, 10, True)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "args": _Exploit(marker)}, path,
               pickle_protocol=pickle.HIGHEST_PROTOCOL)
    state = load_released_checkpoint(path)
    assert list(state) == ["w"]
    assert not marker.exists()


def test_corrupt_checkpoint_is_a_user_error(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    with pytest.raises(UserError, match="is not a readable PyTorch checkpoint .*pass an intact"):
        load_released_checkpoint(path)


def test_nao_convert_then_eval_reproduces_the_released_network(released_file, tmp_path,
                                                                 cifar_mini, capsys):
    path, fixture = released_file
    out = tmp_path / "converted.pt"
    status, printed, err = nao_in_process(capsys, "convert", str(path), str(out))
    assert status == 0, err
    assert "cifar C 8 N 1" in printed
    payload = torch.load(out, weights_only=True)
    assert payload["arch"].startswith("small:1 1 0 1")
    from naonet.compat.model_file import load_model

    for source in (path, out):  # the released file and the converted one give the same net
        network = load_model(source).network.eval()
        with torch.no_grad():
            logits = network(fixture["input"])[0]
        # the fixture README's tolerance: 1e-4 relative to the largest logit
        assert relative_error(logits, fixture["logits"]) < 1e-4
    status, printed, err = nao_in_process(capsys, "eval", str(out), "--data", str(cifar_mini),
                                          "--json", "--device", "cpu")
    assert status == 0, err
    assert '"images": 200' in printed


def test_a_file_that_records_no_data_set_takes_the_one_its_network_fits(tmp_path, capsys):
    """The released ImageNet weights, bare (no arguments saved): --dataset cifar10 would
    have written an ImageNet network labelled cifar10, which eval and predict then ran on
    32 px images; without --dataset the network's shape names the data set."""
    source = bare_weights(require(FIXTURES / "naonet_v2_imagenet_c8_l1.pt"), tmp_path)
    out = tmp_path / "converted.pt"
    status, _, err = nao_in_process(capsys, "convert", str(source), str(out), "--arch",
                                    "naonet-v2", "--dataset", "cifar10")
    assert status == 2 and not out.exists()
    assert ("holds a network for imagenet images with 1000 classes; cifar10 has cifar "
            "images with 10 classes: pass --dataset imagenet") in err
    status, printed, err = nao_in_process(capsys, "convert", str(source), str(out),
                                          "--arch", "naonet-v2")
    assert status == 0, err
    assert torch.load(out, weights_only=True)["config"]["dataset"] == "imagenet"


def bare_weights(fixture: Path, folder: Path) -> Path:
    """The fixture's weights alone, as a bare state_dict file (the fixture itself records
    its architecture and data set)."""
    bare = folder / f"bare-{fixture.name}"
    torch.save(torch.load(fixture, weights_only=True)["state_dict"], bare)
    return bare


def test_eval_takes_a_bare_released_cifar_file_as_convert_does(tmp_path, cifar_mini, capsys):
    source = bare_weights(require(FIXTURES / "naonet_v2_cifar_c8_l1.pt"), tmp_path)
    status, printed, err = nao_in_process(capsys, "eval", str(source), "--arch", "naonet-v2",
                                          "--data", str(cifar_mini), "--json",
                                          "--device", "cpu")
    assert status == 0, err
    assert '"dataset": "cifar10"' in printed and '"images": 200' in printed
    status, _, err = nao_in_process(capsys, "eval", str(source), "--arch", "naonet-v2",
                                    "--data", str(cifar_mini), "--dataset", "cifar100")
    assert status == 2 and "pass --dataset cifar10" in err


# (cell, C, N, classes, data set, bare): a naonet file, and a bare state_dict whose cell
# has only weightless edges (its size must come from the residual blocks)
NB201_FILES = [("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|"
                "nor_conv_3x3~1|nor_conv_1x1~2|", 8, 1, 10, "cifar10", False),
               ("|none~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|none~1|skip_connect~2|",
                8, 2, 100, "cifar100", True)]


@pytest.mark.parametrize("text, channels, cells, classes, dataset, bare", NB201_FILES)
def test_nao_convert_rewrites_a_nas_bench_201_network_file(tmp_path, capsys, text, channels,
                                                           cells, classes, dataset, bare):
    """Once an AttributeError (the NB201 config has no skeleton) after the file was
    written. The command line has no size flags: a bare state_dict's size comes from its
    weights."""
    from naonet.compat.model_file import LoadedModel, load_model, model_file_payload
    from naonet.spaces import NB201

    cell = NB201.parse(text)
    network = NB201.build_network(cell, NB201.network_config(channels, cells, classes))
    source, out = tmp_path / "nb201.pt", tmp_path / "converted.pt"
    torch.save(network.state_dict() if bare else model_file_payload(
        LoadedModel(network, cell, dataset, False), dataset), source)
    flags = ["--arch", cell.to_string(), "--dataset", dataset] if bare else []
    status, printed, err = nao_in_process(capsys, "convert", str(source), str(out), *flags)
    assert status == 0, err
    cells_said = {1: "1 cell", 2: "2 cells"}[cells]
    assert f"C {channels}, {cells_said} per stage, {classes} classes" in printed
    converted = load_model(out)
    assert converted.architecture == cell and converted.dataset == dataset
    torch.testing.assert_close(converted.network.state_dict(), network.state_dict(),
                               rtol=0, atol=0)


@pytest.mark.parametrize("prefix", ["", "module."])
def test_legacy_format_checkpoints_convert_like_their_zip_twins(released_file, tmp_path, prefix):
    """The authors' 2019 checkpoints predate PyTorch 1.6's zip format; DataParallel runs
    saved their keys with a ``module.`` prefix."""
    zipped, fixture = released_file
    payload = {"model": {prefix + key: value for key, value in fixture["state_dict"].items()},
               "args": argparse.Namespace(arch=fixture["arch"], dataset="cifar10"),
               "epoch": 600}
    legacy = tmp_path / "legacy.pt"
    torch.save(payload, legacy, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(legacy)
    from naonet.compat.model_file import load_model

    expected = load_model(zipped).network.eval()
    network = load_model(legacy).network.eval()
    with torch.no_grad():
        torch.testing.assert_close(network(fixture["input"])[0], expected(fixture["input"])[0],
                                   rtol=0, atol=0)
    assert released_arguments(read_checkpoint_payload(legacy))["arch"] == fixture["arch"]


def test_legacy_format_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil-legacy.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "args": _Exploit(marker)}, path,
               _use_new_zipfile_serialization=False)
    assert list(load_released_checkpoint(path)) == ["w"]
    assert not marker.exists()


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod."])
def test_a_state_dict_saved_from_a_wrapped_network_loads_in_every_space(tmp_path, prefix):
    """DDP's 'module.' reached only the NAONet renaming, and torch.compile's '_orig_mod.'
    nothing: such a file was 'no network's weights'."""
    from naonet.compat.model_file import load_model
    from naonet.models import NetworkConfig, build_network
    from naonet.spaces import NB201, named_architecture

    cell = NB201.parse("|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+"
                       "|none~0|nor_conv_1x1~1|skip_connect~2|")
    naonet = named_architecture("naonet-v2")
    for architecture, network in (
            (cell, NB201.build_network(cell, NB201.network_config(8, 1, 10))),
            (naonet, build_network(naonet, NetworkConfig(channels=8, layers=1)))):
        path = tmp_path / "wrapped.pt"
        torch.save({prefix + key: value for key, value in network.state_dict().items()}, path)
        loaded = load_model(path, arch=architecture.to_qualified_string())
        torch.testing.assert_close(loaded.network.state_dict(), network.state_dict(),
                                   rtol=0, atol=0)


def test_nao_convert_keeps_the_image_size_and_neither_command_writes_over_its_source(
        tmp_path, capsys):
    """nao convert dropped the size a network was trained at (a 128 px ImageNet-skeleton
    folder network then exported and evaluated at 32 px); nao export SOURCE SOURCE
    replaced the checkpoint with the exported model."""
    from naonet.compat.model_file import load_model
    from naonet.models import NetworkConfig, build_network
    from naonet.spaces import named_architecture

    architecture = named_architecture("naonet-v2")
    network = build_network(architecture, NetworkConfig(
        skeleton="imagenet", channels=8, layers=1, num_classes=3, aux_head=False))
    source = tmp_path / "last.pt"  # as nao train writes it: the whole training config
    torch.save({"format": 1, "model": network.state_dict(),
                "network": network.config.to_dict(),
                "arch": architecture.to_qualified_string(), "classes": ["a", "b", "c"],
                "config": {"dataset": "folder", "image_size": 128, "epochs": 1}}, source)
    out = tmp_path / "converted.pt"
    status, _, err = nao_in_process(capsys, "convert", str(source), str(out))
    assert status == 0, err
    converted = load_model(out)
    assert (converted.dataset, converted.image_size, converted.classes) == (
        "folder", 128, ["a", "b", "c"])
    before = source.read_bytes()
    for command, output in (("convert", source), ("export", source),
                            ("export", tmp_path / "." / "last.pt")):
        status, _, err = nao_in_process(capsys, command, str(source), str(output))
        assert status == 2 and "is the file being read; pass another output file" in err
    assert source.read_bytes() == before
