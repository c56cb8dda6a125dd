"""Search spaces, architecture values and their text forms."""

import random

import pytest
import torch

from naonet.controller.model import legal_token_mask
from naonet.errors import UserError
from naonet.spaces import (
    MIDDLE,
    SMALL,
    Architecture,
    CellSpaceEncoding,
    get_space,
    named_architecture,
    resolve_architecture,
)

from conftest import FIXTURES, require

NAONET_V2 = "1 1 0 1 2 4 0 0 0 0 2 1 0 0 0 2 0 3 0 0 0 2 0 2 2 2 1 0 0 0 0 1 0 0 0 3 0 0 0 1"


def random_architecture(space, rng):
    values = []
    for _ in range(2):
        for node in range(space.num_nodes):
            for _ in range(2):
                values += [rng.randrange(node + 2), rng.randrange(space.num_ops)]
    return Architecture.from_integers(values, space)


def test_naonet_v2_round_trips_through_every_text_form():
    arch = named_architecture("naonet-v2")
    assert arch.to_string() == NAONET_V2
    assert Architecture.parse(arch.to_qualified_string()) == arch
    assert Architecture.parse(arch.to_readable()) == arch
    assert Architecture.parse(NAONET_V2, "small") == arch
    assert arch.normal.loose_ends() == (3, 4, 5, 6)
    assert arch.reduction.loose_ends() == (3, 4, 5, 6)


@pytest.mark.parametrize("space", [SMALL, MIDDLE])
def test_random_architectures_round_trip(space):
    rng = random.Random(0)
    for _ in range(50):
        arch = random_architecture(space, rng)
        assert Architecture.parse(arch.to_qualified_string()) == arch
        assert Architecture.parse(arch.to_readable()) == arch
        assert hash(arch) == hash(Architecture.parse(str(arch)))


@pytest.mark.parametrize("text, fragment", [
    ("1 2 3", "has 3 integers"),
    ("1 1 0 1 2 4 0 0 0 0 2 1 0 0 0 2 0 3 0 0 0 2 0 2 2 2 1 0 0 0 0 1 0 0 0 3 0 0 0 9",
     "op 9, which is not in the 'small' space"),
    ("5 1 0 1 2 4 0 0 0 0 2 1 0 0 0 2 0 3 0 0 0 2 0 2 2 2 1 0 0 0 0 1 0 0 0 3 0 0 0 1",
     "node 0 of the normal cell (state 2 in nao info) reads input 5"),
    ("1 x 0 1", "non-integer entry 'x'"),
    # a space author's bare text reached the default space with no word of --space
    ("conv_5x5@0.5-identity@1", "or a name (an architecture of another space: write it as "
                                "NAME:..., or pass --space NAME)"),
    ("middle:" + NAONET_V2, "prefixed with the name of the 'middle' space"),
    ("small | normal: conv_9x9(0) + identity(1)", "lacks its reduction cell"),
    ("", "empty architecture"),
])
def test_malformed_architectures_give_one_line_errors(text, fragment):
    with pytest.raises(UserError) as error:
        Architecture.parse(text, "small")
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)


def test_unknown_op_name_in_readable_form():
    text = named_architecture("naonet-v2").to_readable().replace("max_pool_3x3", "conv_9x9")
    with pytest.raises(UserError, match="'conv_9x9' is not in the 'small' space"):
        Architecture.parse(text)


def test_registry_resolves_names_and_rejects_unknown_ones():
    assert resolve_architecture("naonet-v2") == named_architecture("naonet-v2")
    assert resolve_architecture("NAONet-V2") == named_architecture("naonet-v2")  # the paper's
    with pytest.raises(UserError, match="unknown architecture name 'naonet-v3'; use one of: "
                                        "naonet-v2, or give the architecture as integers or "
                                        "in its readable form"):
        resolve_architecture("naonet-v3")
    with pytest.raises(UserError, match="belongs to the 'small' space"):
        resolve_architecture("naonet-v2", "middle")


def test_encoding_matches_the_released_token_layout():
    fixture = torch.load(require(FIXTURES / "nao_controller_default.pt"), weights_only=True)
    encoding = CellSpaceEncoding("small")
    assert encoding.vocab_size == fixture["config"]["vocab_size"] == 12
    assert encoding.sequence_length == fixture["config"]["source_length"] == 40
    # The fixture's first encoder input is NAONet-V2.
    assert encoding.encode(named_architecture("naonet-v2")) == fixture["encoder_input"][0].tolist()
    for tokens in fixture["encoder_input"].tolist():
        assert encoding.encode(encoding.decode(tokens)) == tokens


@pytest.mark.parametrize("space", [SMALL, MIDDLE])
def test_encoding_legal_tokens_and_swap_augmentation(space):
    encoding = CellSpaceEncoding(space)
    rng = random.Random(1)
    mask = legal_token_mask(encoding)  # what the controller's decoder may emit
    for _ in range(20):
        arch = random_architecture(space, rng)
        tokens = encoding.encode(arch)
        assert all(mask[position, token] for position, token in enumerate(tokens))
        variant = encoding.equivalent_variant(arch, rng)
        for cell, twin in ((arch.normal, variant.normal), (arch.reduction, variant.reduction)):
            assert sorted(map(sorted_pair, cell.nodes)) == sorted(map(sorted_pair, twin.nodes))


def sorted_pair(node):
    return tuple(sorted([(node.input_a, node.op_a), (node.input_b, node.op_b)]))


def test_what_a_library_caller_writes_naturally_works_or_says_what_to_write():
    """From a trial as a library user: each of these once ended in an AttributeError, a
    ValueError from deep inside, or a silently replaced built-in space."""
    from dataclasses import replace

    from naonet.controller import Controller
    from naonet.spaces import get_space, register_space
    from naonet.spaces.nb201 import NB201

    # the space where its encoding goes
    for given in (NB201, "nb201"):
        assert Controller(given).encoding.sequence_length == Controller(
            NB201.encoding()).encoding.sequence_length
    # a text form where an architecture goes
    cell = NB201.sample(random.Random(0))
    for space in (NB201, get_space("small")):
        text = space.sample(random.Random(1)).to_string()
        assert space.encoding().equivalent_variant(text, random.Random(2)).space is space
    with pytest.raises(UserError, match="has no edge 3 -> 2"):
        cell.edge_op(3, 2)
    with pytest.raises(UserError, match="op index 9 is not in the nb201 space"):
        type(cell)(NB201, (9,) * 6)
    # a built-in name is not silently taken over
    with pytest.raises(UserError, match="a search space named 'small' is naonet's own; "
                                        "give yours another name"):
        register_space(replace(get_space("small"), final_size=(20, 3)))
    assert register_space(get_space("small")) is get_space("small")  # the same: a no-op


@pytest.mark.parametrize("member", ["training_options", "size", "sample", "mutate"])
def test_a_space_without_every_member_of_the_protocol_is_refused_when_registered(member):
    """A search of it would otherwise fail at its very end (its training command), or at
    its start with an AttributeError (the strategies draw, mutate and count)."""
    from naonet.spaces import get_space, register_space

    class WithoutOneMember:
        def __getattr__(self, name):
            if name == member:
                raise AttributeError(name)
            return getattr(get_space("small"), name)

    with pytest.raises(UserError, match="lacks what the SearchSpace protocol asks for: "
                                        f"{member}$"):
        register_space(WithoutOneMember())


@pytest.fixture
def own_registry(monkeypatch):
    """The registry as it is, restored after the test (spaces it registers go)."""
    from naonet.spaces import protocol

    monkeypatch.setattr(protocol, "_SPACES", dict(protocol._SPACES))


def test_a_cell_architectures_entries_are_integers():
    """0.5 or True once made an architecture that no text form reads back and that
    failed with a TypeError when built; NumPy's and a tensor's integers are taken."""
    import numpy as np

    for bad in ([0.5] * 40, [True] * 40, torch.zeros(40), np.zeros(40, dtype=bool)):
        with pytest.raises(UserError, match="'small'-space architecture's entries are "
                                            "integers, got"):
            SMALL.from_integers(bad)
    arch = SMALL.parse(NAONET_V2)
    for given in (np.array(arch.to_integers()), torch.tensor(arch.to_integers())):
        built = SMALL.from_integers(given)
        assert built == arch and hash(built) == hash(arch)
        assert {type(value) for value in built.to_integers()} == {int}
    # NAS-Bench-201's cells by the same rule (0.5 was taken as op 0, True as op 1)
    nb201 = get_space("nb201")
    for bad in ([0.5] * 6, [True] * 6):
        with pytest.raises(UserError, match="an nb201 architecture's ops are integers, got"):
            nb201.from_integers(bad)
    cell = nb201.from_integers(torch.tensor([1, 2, 3, 4, 0, 1]))
    assert cell == nb201.from_integers([1, 2, 3, 4, 0, 1]) and type(cell.ops[0]) is int


def test_a_space_object_reads_its_own_text(own_registry):
    """A cell space parsed through the registry: an unregistered one could not read its
    own text, and after a replacement the old object read the new one's architectures."""
    from naonet.spaces import CellSearchSpace, register_space

    first = register_space(CellSearchSpace(name="two-node", op_names=("sep_conv_3x3",
                                                                      "identity"),
                                           num_nodes=2))
    register_space(CellSearchSpace(name="two-node", op_names=("identity", "sep_conv_3x3"),
                                   num_nodes=2), replace=True)
    unregistered = CellSearchSpace(name="unregistered", op_names=("identity",
                                                                  "sep_conv_3x3"),
                                   num_nodes=2)
    for space in (first, unregistered):
        arch = space.sample(random.Random(1))
        for text in (arch.to_qualified_string(), arch.to_readable(), arch.to_string()):
            parsed = space.parse(text)
            assert parsed == arch and parsed.space is space


def test_a_variant_of_nb201_names_itself_in_files(own_registry):
    """The benchmark's form is NAS-Bench-201's: a registered variant's cells were read
    back as nb201 cells (silently, or refused with advice that pointed the wrong way)."""
    from naonet.spaces import NB201Space, parse_architecture, register_space
    from naonet.supernet import PoolSampler

    variant = register_space(NB201Space(name="nb201-three-ops",
                                        op_names=("none", "nor_conv_3x3", "skip_connect")))
    cell = variant.architecture([1, 1, 0, 2, 1, 1])
    text = cell.to_qualified_string()
    assert text == f"nb201-three-ops:{cell.to_string()}"
    assert parse_architecture(text) == cell and variant.parse(text) == cell
    assert PoolSampler([text], random.Random(0)).pool == [cell]
    nb201_cell = get_space("nb201").sample(random.Random(0))
    assert nb201_cell.to_qualified_string() == nb201_cell.to_string()  # the benchmark's own
