"""Spaces of one's own: offered by an installed package through the ``naonet.spaces``
entry points (tests/plugin_package stands for one), found by every command, and refused
with one line where they are malformed or where a command cannot handle them."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest

from naonet.errors import UserError

from conftest import nao_in_process, run_nao

PACKAGE = Path(__file__).parent / "plugin_package"
PLUGIN_MODULES = ("naonet_example_spaces", "naonet_broken_spaces")
CHAIN_TEXT = "chain:conv3x3-identity-conv3x3"
# the chain network's parameters by hand: 3x3 stem (27 C), two 3x3 convolutions with
# bias (9 C^2 + C each), linear classifier (10 C + 10); C 8
CHAIN_PARAMETERS = 27 * 8 + 2 * (9 * 64 + 8) + 8 * 10 + 10


@pytest.fixture
def installed_plugin(monkeypatch):
    """The example package on the import path, as if installed; naonet's registry as
    before any entry point was read, restored afterwards."""
    from naonet.spaces import protocol

    monkeypatch.syspath_prepend(str(PACKAGE))
    monkeypatch.setattr(protocol, "_SPACES", dict(protocol._SPACES))
    monkeypatch.setattr(protocol, "_plugin_failures", {})
    monkeypatch.setattr(protocol, "_plugins_loaded", False)
    yield
    for name in PLUGIN_MODULES:
        sys.modules.pop(name, None)


def test_the_spaces_an_installed_package_offers_are_found_by_name_and_text(installed_plugin):
    from naonet.spaces import get_space, parse_architecture, space_names

    assert {"cell3", "chain"} <= set(space_names())
    chain = parse_architecture(CHAIN_TEXT)  # the prefix names a space only a plugin has
    assert chain.space is get_space("chain") and chain.ops == (0, 1, 0)
    cell = get_space("cell3").sample(random.Random(0))
    assert parse_architecture(cell.to_qualified_string()) == cell
    # a package that failed to load is named where its space is asked for
    with pytest.raises(UserError) as raised:
        get_space("graph")
    message = str(raised.value)
    assert message.startswith("unknown search space 'graph'; use one of: cell3, chain, ")
    assert message.endswith("the naonet.spaces entry point broken = naonet_broken_spaces did "
                            "not load (ImportError: naonet_broken_spaces needs the package "
                            "torch_geometric)")


def test_nao_info_in_a_fresh_process_finds_and_counts_a_packages_space():
    """A space registered in Python never reached the command line: a package's space
    is found by ``nao`` itself; a space of no known shape is counted by its protocol."""
    path = os.pathsep.join(filter(None, [str(PACKAGE), os.environ.get("PYTHONPATH")]))
    result = run_nao("info", CHAIN_TEXT, timeout=120, env={"PYTHONPATH": path})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"architecture: {CHAIN_TEXT}"
    assert lines[2].split()[:5] == ["cifar10,", "C", "8,", "N", "3"]
    assert lines[2].split()[5] == f"{CHAIN_PARAMETERS:,}"


def test_info_and_show_on_a_cell_space_of_ones_own(installed_plugin, capsys, tmp_path):
    """``nao info`` printed the NAONet-V2 sizes for any cell space, and crashed on a space
    that is neither a cell space nor NAS-Bench-201's; ``nao show`` too."""
    from naonet.models import NetworkConfig, build_network, count_parameters
    from naonet.spaces import get_space

    cell = get_space("cell3").sample(random.Random(1))
    status, out, err = nao_in_process(capsys, "info", cell.to_qualified_string())
    assert status == 0, err
    network = build_network(cell, NetworkConfig(channels=16, layers=2))
    row = next(line for line in out.splitlines() if line.startswith("cifar10, C 16, N 2"))
    assert row.split()[5] == f"{count_parameters(network):,}"
    status, out, err = nao_in_process(capsys, "show", cell.to_qualified_string(), "-o",
                                      str(tmp_path / "cell3.png"))
    assert status == 0 and (tmp_path / "cell3.png").stat().st_size > 0, err
    status, out, err = nao_in_process(capsys, "show", CHAIN_TEXT, "-o",
                                      str(tmp_path / "chain.png"))
    assert status == 2 and err == ("nao show: error: nao show draws NAO cells and "
                                   "NAS-Bench-201 cells, not architectures of the 'chain' "
                                   f"space; nao info '{CHAIN_TEXT}' prints it\n")
    status, out, err = nao_in_process(capsys, "info", CHAIN_TEXT, "--reference",
                                      "table:x.csv")
    assert status == 2 and "is an architecture of the chain space" in err


def test_search_refuses_an_unknown_space_before_printing_its_config(capsys):
    """--print-config printed a config with a space that the run then refused."""
    status, out, err = nao_in_process(capsys, "search", "--space", "chain",
                                      "--print-config")
    assert status == 2 and out == ""
    assert err.startswith("nao search: error: unknown search space 'chain'; use one of:")


def test_malformed_spaces_of_ones_own_are_named_in_one_line():
    """From a trial as a space author: a bare KeyError, IndexError or an empty
    architecture, each from deep inside."""
    from naonet.models import NetworkConfig, build_network
    from naonet.spaces import CellSearchSpace, NB201Space
    from naonet.supernet import sample_architectures

    with pytest.raises(UserError, match="a cell space needs at least 1 node, got 0"):
        CellSearchSpace(name="empty", op_names=("identity",), num_nodes=0)
    with pytest.raises(UserError, match="op names must be distinct and non-empty"):
        CellSearchSpace(name="twice", op_names=("identity", "identity"))
    unknown = CellSearchSpace(name="unknown-op", op_names=("sep_conv_3x3", "conv_3x3"),
                              num_nodes=2)
    architecture = unknown.from_integers([0, 1, 1, 1] * 2 * 2)
    with pytest.raises(UserError, match="no NAO cell operation 'conv_3x3'; known: zero, "
                                        "identity, sep_conv_3x3"):
        build_network(architecture, NetworkConfig(channels=8, layers=1))
    single = NB201Space(name="one-op", op_names=("nor_conv_3x3",), num_nodes=3)
    with pytest.raises(UserError, match="the 'one-op' space holds one architecture, which "
                                        "has no neighbour"):
        single.mutate(single.sample(random.Random(0)), random.Random(0))
    with pytest.raises(UserError, match="cannot draw 2 distinct architectures of the "
                                        "'one-op' space, which holds 1;"):
        sample_architectures(single, 2, random.Random(0))
