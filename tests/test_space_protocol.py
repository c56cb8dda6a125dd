"""Every registered search space keeps the protocol the search engine relies on.

One parametrised suite: a space that is registered (``small``, ``middle``, ``nb201`` or
one a user adds) must round-trip its text and integer forms, sample and mutate inside
the space, give the controller a token encoding it can decode, count the parameters of
the network it builds, and build a supernet with the outputs every other supernet has.
"""

from __future__ import annotations

import random

import pytest
import torch

from naonet.controller import (
    Controller,
    ControllerConfig,
    ControllerTrainConfig,
    generate_architectures,
    train_controller,
)
from naonet.errors import UserError
from naonet.models import count_parameters
from naonet.models.complexity import count_multiply_adds
from naonet.spaces import SearchSpace, get_space, space_names
from naonet.spaces.conformance import check_space

SPACES = space_names()
TINY = dict(channels=8, layers=1)


def test_the_paper_spaces_and_the_benchmark_are_registered():
    assert {"small", "middle", "nb201"} <= set(SPACES)
    assert get_space("nb201").size == 5 ** 6  # the benchmark's 15,625 cells


@pytest.fixture(params=SPACES)
def space(request) -> SearchSpace:
    return get_space(request.param)


def draws(space, count=12, seed=0):
    rng = random.Random(seed)
    return [space.sample(rng) for _ in range(count)]


def test_space_keeps_every_promise_of_the_protocol(space):
    """``naonet.spaces.check_space``, the check a space of one's own runs: text and
    integer forms round-trip, sampling is seeded and reaches every value, mutation
    changes one entry, canonical forms compute what they stand for, the controller's
    encoding decodes what it encodes, the networks count what they build and give the
    outputs every supernet gives (tests/test_space_check.py checks the checks)."""
    assert isinstance(space, SearchSpace)
    report = check_space(space, samples=12)
    assert {result.status for result in report.results} == {"passed"}, report.text()


def test_an_illegal_token_is_named_with_its_position(space):
    """A token not legal where it stands, or a sequence of the wrong length: a UserError
    that names the token and its position (it said "input -1" for a cell space)."""
    encoding = space.encoding()
    tokens = encoding.encode(draws(space)[0])
    for position in range(encoding.sequence_length):
        # a token of the vocabulary where it is not legal, else one outside it
        illegal = next((token for token in range(encoding.vocab_size)
                        if token not in encoding.legal_tokens(position)), -1)
        bad = [*tokens[:position], illegal, *tokens[position + 1:]]
        with pytest.raises(UserError, match=f"token {illegal} is not legal at position "
                                            f"{position} "):
            encoding.decode(bad)
    with pytest.raises(UserError, match=f"token sequence has {len(tokens) - 1} tokens"):
        encoding.decode(tokens[:-1])

def test_a_bare_state_dict_gives_back_the_config_it_was_made_with(space):
    """A plain state_dict (no saved config) is read off its weights, also for a cell
    whose operations are weightless where they can be."""
    config = space.network_config(channels=6, layers=2, num_classes=7)
    for arch in (*draws(space, count=3), space.from_integers(
            [0] * len(space.integer_limits()))):
        weights = space.build_network(arch, config).state_dict()
        assert space.network_config_from_weights(weights) == config
    assert space.network_config_from_weights(weights, num_classes=3).num_classes == 3


def test_multiply_adds_are_the_built_networks(space):
    skeletons = {"cifar": (32, 7, 33), "imagenet": (224, 57)}
    if space.name == "nb201":  # the benchmark has the CIFAR skeleton only
        skeletons.pop("imagenet")
    for skeleton, sizes in skeletons.items():
        config = space.network_config(**TINY, skeleton=skeleton)
        for arch in draws(space, count=3):
            with torch.device("meta"):
                network = space.build_network(arch, config)
            for size in sizes:
                assert space.multiply_adds(arch, config, size) == \
                    count_multiply_adds(network, (3, size, size))


@pytest.mark.parametrize("size", [7, 96])
def test_networks_train_on_odd_and_large_image_sizes(space, size):
    """Folder data at any --image-size: the auxiliary head's fixed 5x5 pooling and the
    benchmark's 2x2 shortcut pooling once failed on such sizes with a traceback."""
    torch.manual_seed(0)
    images = torch.randn(2, 3, size, size)
    supernet = space.build_supernet(**TINY)
    arch = draws(space, count=1)[0]
    config = space.network_config(**TINY)  # the cell spaces' default has the aux head
    network = space.build_network(arch, config).train()
    assert getattr(config, "aux_head", False) == (space.name != "nb201")
    for logits, aux in (network(images), supernet.train()(images, arch)):
        assert logits.shape == (2, 10) and torch.isfinite(logits).all()
        assert aux is None or aux.shape == (2, 10)


def other_space(space) -> SearchSpace:
    """A registered space of another kind than ``space`` (cell space <-> NAS-Bench-201)."""
    return get_space("small" if space.name == "nb201" else "nb201")


CONTROLLER_STEPS = ControllerTrainConfig(epochs=1, batch_size=4, augment_factor=2)


def tiny_controller(space) -> Controller:
    torch.manual_seed(0)
    return Controller(space.encoding(), ControllerConfig(embedding_size=8, hidden_size=16))


def test_the_text_form_works_wherever_an_architecture_is_taken(space):
    """Every method that takes an architecture reads its text form as the architecture."""
    arch = draws(space, count=1, seed=5)[0]
    text, config = arch.to_string(), space.network_config(**TINY)
    assert space.as_architecture(text) == arch
    assert space.to_integers(text) == space.to_integers(arch)
    assert space.canonical(text) == space.canonical(arch)
    assert space.parameter_count(text, config) == space.parameter_count(arch, config)
    assert space.mutate(text, random.Random(1)) == space.mutate(arch, random.Random(1))
    assert space.encoding().encode(text) == space.encoding().encode(arch)
    from naonet.supernet import PoolSampler

    # a sampler knows no space: the qualified form names it
    assert PoolSampler([arch.to_qualified_string()], random.Random(0), "balanced",
                       space.network_config(**TINY)).pool == [arch]
    torch.manual_seed(0)
    supernet, images = space.build_supernet(**TINY).eval(), torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(supernet(images, text)[0], supernet(images, arch)[0])
    # the controller trains and generates on text forms as on the architectures
    pool = draws(space, count=6, seed=7)
    texts = [architecture.to_string() for architecture in pool]
    trained = {}
    for name, given in {"architectures": pool, "text": texts}.items():
        controller = tiny_controller(space)
        train_controller(controller, given, list(range(6)), CONTROLLER_STEPS, seed=0)
        trained[name] = generate_architectures(controller, given[:2], known=given,
                                               count=2).architectures
    assert trained["text"] == trained["architectures"]


def test_another_spaces_architecture_is_refused_by_name(space):
    """An architecture of another space, wherever it is given, is a one-line UserError
    naming both spaces (it used to be an AttributeError deep inside)."""
    from naonet.errors import UserError

    foreign = draws(other_space(space), count=1)[0]
    config, supernet = space.network_config(**TINY), space.build_supernet(**TINY)
    calls = {
        "mutate": lambda: space.mutate(foreign, random.Random(0)),
        "parameter_count": lambda: space.parameter_count(foreign, config),
        "multiply_adds": lambda: space.multiply_adds(foreign, config),
        "build_network": lambda: space.build_network(foreign, config),
        "canonical": lambda: space.canonical(foreign),
        "the controller": lambda: space.encoding().encode(foreign),
        "the supernet": lambda: supernet(torch.randn(2, 3, 16, 16), foreign),
        "train_controller": lambda: train_controller(tiny_controller(space), [foreign] * 2,
                                                     [0.0, 1.0], CONTROLLER_STEPS, seed=0),
        "generate_architectures": lambda: generate_architectures(  # its known ones
            tiny_controller(space), draws(space, count=1), known=[foreign], count=1),
    }
    for user, call in calls.items():
        with pytest.raises(UserError, match=f"{user} takes architectures of the "
                                            f"'{space.name}' space, got one of the "
                                            f"'{foreign.space.name}' space"):
            call()
    with pytest.raises(UserError, match="the architecture is .* the "
                                        f"'{foreign.space.name}' space but the "
                                        f"'{space.name}' space was asked for"):
        space.parse(foreign.to_qualified_string())


def test_naonets_build_network_builds_any_spaces_network(space):
    """``naonet.build_network``, the top-level name, refused NAS-Bench-201's cells."""
    import naonet

    arch, config = draws(space, count=1)[0], space.network_config(**TINY)
    torch.manual_seed(0)
    built = naonet.build_network(arch, config)
    torch.manual_seed(0)
    expected = space.build_network(arch, config)
    assert type(built) is type(expected)
    assert count_parameters(built) == count_parameters(expected) == \
        space.parameter_count(arch, config)
    fewer_classes = naonet.build_network(arch, config, num_classes=3)
    assert fewer_classes(torch.randn(2, 3, 16, 16))[0].shape == (2, 3)


def test_another_spaces_network_config_and_a_bad_rng_are_refused(space):
    from naonet.errors import UserError

    arch = draws(space, count=1)[0]
    foreign_config = other_space(space).network_config(**TINY)
    with pytest.raises(UserError, match=f"got a {type(foreign_config).__name__}; make it "
                                        f"with get_space\\('{space.name}'\\).network_config"):
        space.build_network(arch, foreign_config)
    with pytest.raises(UserError, match="takes an architecture of the .* or its text form, "
                                        "got an object of type int"):
        space.canonical(7)
    with pytest.raises(UserError, match="sampling takes a random.Random, got an object of "
                                        "type int; pass random.Random"):
        space.sample(0)
