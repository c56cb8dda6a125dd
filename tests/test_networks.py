"""Discrete networks: equivalence with the released code, parameter counts, behaviour."""

import json
import random

import pytest
import torch

from naonet.compat import convert_state_dict
from naonet.models import NetworkConfig, build_network, count_multiply_adds, count_parameters
from naonet.spaces import MIDDLE, SMALL, named_architecture

from conftest import FIXTURES, relative_error, require
from test_spaces import random_architecture

PUBLISHED = {
    "cifar10_C36_N6_aux": NetworkConfig(skeleton="cifar", channels=36, layers=6, num_classes=10),
    "imagenet_C52_N4_aux": NetworkConfig(skeleton="imagenet", channels=52, layers=4,
                                         num_classes=1000),
}


@pytest.mark.parametrize("name, skeleton", [("naonet_v2_cifar_c8_l1.pt", "cifar"),
                                            ("naonet_v2_imagenet_c8_l1.pt", "imagenet")])
def test_converted_released_weights_give_the_released_logits(name, skeleton):
    fixture = torch.load(require(FIXTURES / name), weights_only=True)
    config = fixture["config"]
    network = build_network(named_architecture("naonet-v2"), NetworkConfig(
        skeleton=skeleton, channels=config["channels"], layers=config["layers"],
        num_classes=config["num_classes"], aux_head=config["use_aux_head"]))
    assert fixture["arch"] == network.architecture.to_string()
    network.load_state_dict(convert_state_dict(fixture["state_dict"], network.state_dict()))
    network.eval()
    with torch.no_grad():
        logits, aux = network(fixture["input"])
    assert aux is None
    assert relative_error(logits, fixture["logits"]) < 1e-4  # the fixtures' README


@pytest.mark.parametrize("key", sorted(PUBLISHED))
def test_full_size_manifests_map_key_for_key(key):
    manifest = json.loads(require(FIXTURES / "naonet_v2_full_manifests.json").read_text())[key]
    network = build_network(named_architecture("naonet-v2"), PUBLISHED[key])
    released = {name: torch.empty(shape) for name, shape in manifest["keys"]}
    converted = convert_state_dict(released, network.state_dict())  # raises on any mismatch
    assert set(converted) == set(network.state_dict())
    assert count_parameters(network) == manifest["params_excl_aux"]
    assert count_parameters(network, include_aux=True) == manifest["params_total"]


def test_published_parameter_counts_are_exact():
    arch = named_architecture("naonet-v2")
    assert count_parameters(build_network(arch, PUBLISHED["cifar10_C36_N6_aux"])) == 4_387_654
    assert count_parameters(build_network(arch, PUBLISHED["imagenet_C52_N4_aux"])) == 7_026_850


@pytest.mark.parametrize("space", [SMALL, MIDDLE])
@pytest.mark.parametrize("skeleton, size", [("cifar", 32), ("imagenet", 224)])
def test_random_architectures_build_train_and_evaluate(space, skeleton, size):
    rng = random.Random(3)
    torch.manual_seed(0)
    for _ in range(3):
        arch = random_architecture(space, rng)
        network = build_network(arch, NetworkConfig(skeleton=skeleton, channels=8, layers=1,
                                                    num_classes=7, drop_path_keep_prob=0.7))
        network.set_training_progress(0.5)
        images = torch.randn(2, 3, size, size)
        logits, aux = network(images)
        assert logits.shape == (2, 7) and aux.shape == (2, 7)
        (logits.sum() + aux.sum()).backward()
        network.eval()
        logits, aux = network(images)
        assert logits.shape == (2, 7) and aux is None


def test_drop_path_drops_identity_unless_asked_to_spare_it():
    arch = named_architecture("naonet-v2")
    identity_branch = (1, 0)  # node 3 of the normal cell: identity(state 2)
    for exempt in (False, True):
        config = NetworkConfig(channels=8, layers=1, aux_head=False,
                               drop_path_exempts_pass_through=exempt)
        cell = build_network(arch, config).cells[-1]
        # The released HEAD drops every branch; the exemption is an option.
        assert cell.nodes[identity_branch[0]][identity_branch[1]].droppable is not exempt
        assert cell.nodes[0][0].droppable


def test_drop_path_grows_with_progress():
    arch = named_architecture("naonet-v2")
    network = build_network(arch, NetworkConfig(channels=8, layers=1, keep_prob=1.0,
                                                drop_path_keep_prob=0.5, aux_head=False))
    network.train()
    cell = network.cells[-1]
    # The released rule: keep = 1 - progress * depth * (1 - drop_path_keep_prob).
    network.set_training_progress(1.0)
    assert network.drop_path_rate.item() == pytest.approx(0.5)
    assert cell.depth_ratio == pytest.approx(1.0)
    network.set_training_progress(0.0)
    images = torch.randn(4, 3, 32, 32)
    torch.manual_seed(0)
    first = network(images)[0]
    torch.manual_seed(1)
    # No drop path at progress 0: only batch statistics matter, and they are identical
    # (the same input through the same kernels: bit for bit)
    assert torch.equal(first, network(images)[0])
    network.set_training_progress(1.0)
    outputs = {tuple(network(images)[0].flatten().tolist()) for _ in range(4)}
    assert len(outputs) > 1


def test_multiply_adds_of_a_single_convolution():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    model = torch.nn.Sequential(conv, torch.nn.Flatten(), torch.nn.Linear(8 * 16 * 16, 5))
    expected = 8 * 16 * 16 * 3 * 3 * 3 + 8 * 16 * 16 * 5
    assert count_multiply_adds(model, (3, 16, 16)) == expected


def test_network_config_rejects_bad_values():
    from naonet.errors import UserError

    with pytest.raises(UserError, match="--channels must be an even number"):
        NetworkConfig(channels=7)
    with pytest.raises(UserError, match="unknown network skeleton"):
        NetworkConfig(skeleton="mnist")


def test_factorized_reduce_is_the_released_pair_of_stride_2_convolutions():
    """Every other pixel through a stride-1 1x1 conv is the released stride-2 1x1 conv:
    the same products, summed over the 8 input channels (a different kernel may order
    the sum differently: a bound of 8 roundings of the largest sum of magnitudes)."""
    import torch.nn.functional as F

    from naonet.models.operations import FactorizedReduce

    torch.manual_seed(0)
    reduce = FactorizedReduce(8, 8).eval()
    for size in (31, 32):  # odd: the shifted path's last row and column are padding
        x = torch.randn(2, 8, size, size)
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        released = [F.conv2d(x, reduce.conv1.weight, stride=2),
                    F.conv2d(shifted, reduce.conv2.weight, stride=2)]
        magnitude = torch.cat([F.conv2d(x.abs(), reduce.conv1.weight.abs(), stride=2),
                               F.conv2d(shifted.abs(), reduce.conv2.weight.abs(), stride=2)], 1)
        with torch.no_grad():
            ours = torch.cat([reduce.conv1(x[:, :, ::2, ::2]),
                              reduce.conv2(shifted[:, :, ::2, ::2])], 1)
            assert torch.equal(reduce(x), reduce.bn(ours))
        bound = 8 * torch.finfo(torch.float32).eps * magnitude.max()
        assert (ours - torch.cat(released, 1)).abs().max() <= bound


CHANNELS_LAST_REDUCE = """
import torch
from naonet.models.operations import FactorizedReduce
reduce = FactorizedReduce(8, 8).to(memory_format=torch.channels_last)
for _ in range(3):
    x = torch.randn(32, 8, 48, 48).contiguous(memory_format=torch.channels_last)
    reduce(x.requires_grad_()).sum().backward()
print("ok")
"""


def test_a_channels_last_reduction_on_48_pixel_images_trains():
    """PyTorch's CPU weight gradient of a channels-last 1x1 stride-2 conv with 8 input
    channels corrupts memory at 48 px; the search on a user's 48-px folder died with a
    segmentation fault. Run apart: a fault here must fail this test, not end pytest."""
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", CHANNELS_LAST_REDUCE],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-500:]
