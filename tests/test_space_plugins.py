"""Spaces of one's own: offered by an installed package through the ``naonet.spaces``
entry points (tests/plugin_package stands for one), found by every command, and refused
with one line where they are malformed or where a command cannot handle them."""

from __future__ import annotations

import json
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
def fresh_registry(monkeypatch):
    """naonet's registry as before any entry point was read, restored afterwards."""
    from naonet.spaces import plugins, protocol

    monkeypatch.setattr(protocol, "_SPACES", dict(protocol._SPACES))
    for name, value in (("_state", "unloaded"), ("_failures", {}), ("_offered_by", {}),
                        ("_clashes", {})):
        monkeypatch.setattr(plugins, name, value)


@pytest.fixture
def installed_plugin(fresh_registry, monkeypatch):
    """The example package on the import path, as if installed."""
    monkeypatch.syspath_prepend(str(PACKAGE))
    yield
    for name in PLUGIN_MODULES:
        sys.modules.pop(name, None)


def install_package(folder: Path, entry_points: str, modules: dict[str, str]) -> None:
    """Write a package as pip would leave it: its modules and a dist-info folder that
    lists its ``naonet.spaces`` entry points."""
    info = folder / f"{folder.name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {folder.name}\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(f"[naonet.spaces]\n{entry_points}")
    for name, code in modules.items():
        (folder / f"{name}.py").write_text(code)


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


def test_the_example_packages_spaces_pass_the_conformance_check(installed_plugin):
    """The package docs/library.md points to keeps the protocol check_space checks (its
    chain space failed it: from_integers took codings outside its limits)."""
    from naonet.spaces import check_space

    cell3, chain = check_space("cell3"), check_space("chain")
    assert {result.status for result in cell3.results} == {"passed"}, cell3.text()
    assert chain.ok, chain.text()
    assert [result.name for result in chain.results if result.status == "not written"] == [
        "controller encoding", "network", "supernet"]


def test_nao_info_in_a_fresh_process_finds_and_counts_a_packages_space():
    """A space registered in Python never reached the command line: a package's space
    is found by ``nao`` itself; a space of no known shape is counted by its protocol."""
    path = os.pathsep.join(filter(None, [str(PACKAGE), os.environ.get("PYTHONPATH")]))
    result = run_nao("info", CHAIN_TEXT, timeout=600, env={"PYTHONPATH": path})
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


def test_a_few_shot_supernets_copies_take_a_plain_classs_architectures(installed_plugin):
    """The copies were made with a deep copy of the space: a space of one's own that
    compares by identity then refused its own architectures in them ('another space
    object of that name'), from the second round of a few-shot search on."""
    import torch
    from torch import nn

    from naonet.spaces import get_space
    from naonet.supernet import FewShotSupernet

    chain = get_space("chain")

    class Holder(nn.Module):  # what a supernet does with an architecture: read it
        def __init__(self):
            super().__init__()
            self.space, self.scale = chain, nn.Parameter(torch.ones(()))

        def forward(self, images, architecture):
            coding = self.space.to_integers(self.space.as_architecture(architecture))
            return images * self.scale + coding[1], None

    few_shot = FewShotSupernet(Holder, position=0, choices=2)
    few_shot.split()
    second_copy = chain.parse("chain:identity-identity-conv3x3")
    assert few_shot.part_of(second_copy) == 1
    assert few_shot(torch.zeros(1), second_copy)[0].item() == 1.0
    assert few_shot.parts[1].space is chain


def test_a_searchs_training_command_trains_the_size_its_budget_counted(installed_plugin,
                                                                       capsys):
    """A space whose recipe names no size (the chain's '--epochs 10') was trained at
    nao train's default C 36, N 6, where a budget counted its final_size (C 8, N 3): the
    printed command broke the budget the search held. training_recipe makes the options
    of that command (search.loop.training_command), of nao train's note on another
    space's preset and of the note on unused options."""
    from dataclasses import replace

    from naonet.spaces import SMALL, get_space
    from naonet.spaces.protocol import training_recipe

    chain = get_space("chain")
    assert training_recipe(chain, "cifar10") == "--epochs 10 --channels 8 --layers 3"
    status, out, err = nao_in_process(capsys, "train", *training_recipe(chain, "cifar10")
                                      .split(), "--arch", CHAIN_TEXT, "--print-config")
    assert status == 0, err
    assert "channels: 8\n" in out and "layers: 3\n" in out
    # a recipe of the space's own size is left as it is
    assert training_recipe(SMALL, "cifar10") == "--preset naonet-v2-cifar10"
    assert training_recipe(SMALL, "imagenet") == "--preset naonet-v2-imagenet"
    assert training_recipe(replace(SMALL, final_size=(20, 3)), "cifar10") == \
        "--preset naonet-v2-cifar10 --channels 20 --layers 3"
    # a recipe it cannot read is left for nao train to refuse (it was a KeyError), and
    # --flag=value reads as --flag value
    for options in ("--preset no-such-recipe", "--channels abc"):
        odd = type("Odd", (), {"training_options": lambda self, dataset, o=options: o,
                               "final_size_for": lambda self, dataset: (8, 3)})()
        assert training_recipe(odd, "cifar10") == options
    written = type("Written", (), {
        "training_options": lambda self, dataset: "--preset=naonet-v2-cifar10",
        "final_size_for": lambda self, dataset: (36, 6)})()
    assert training_recipe(written, "folder", 7) == "--preset=naonet-v2-cifar10 --cutout 3"


def test_the_ranking_experiment_refuses_another_space_as_such(installed_plugin, capsys,
                                                               tmp_path):
    """A space of fewer than 1,000 architectures was refused for --seed-pool-size, an
    option nao correlate does not take."""
    status, out, err = nao_in_process(capsys, "correlate", "--supernet", "--space", "chain",
                                      "--reference", "table:x.csv", "--data", str(tmp_path))
    assert status == 2 and err == ("nao correlate: error: a table evaluator searches the "
                                   "nb201 space, not 'chain'; pass --space nb201\n")


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


VARIANT = """
from naonet.spaces import NB201Space, get_space, register_space
{before}
SPACE = NB201Space(name={name!r}, op_names=("none", "nor_conv_3x3"{ops}))
"""


def test_two_offers_of_one_name_a_class_and_a_plugin_that_looks_spaces_up(
        fresh_registry, monkeypatch, tmp_path):
    """Two packages offering 'tiny': the first Python listed silently won. A class where
    a space goes ended in a TypeError. A package that looked a space up while a program
    imported it lost its own space for the whole process."""
    from naonet.spaces import NB201Space, get_space, register_space, space_names

    for folder, entries, modules in (
            ("first_pkg", "tiny = first_tiny:SPACE\n",
             {"first_tiny": VARIANT.format(before="", name="tiny", ops="")}),
            ("second_pkg", "tiny = second_tiny:SPACE\nklass = second_tiny:NB201Space\n",
             {"second_tiny": VARIANT.format(before="", name="tiny",
                                            ops=', "skip_connect"')}),
            ("looking_pkg", "looking = looking_up:SPACE\n",
             {"looking_up": VARIANT.format(before='BASE = get_space("small")',
                                           name="looking", ops="")})):
        install_package(tmp_path / folder, entries, modules)
        monkeypatch.syspath_prepend(str(tmp_path / folder))
    modules = ("first_tiny", "second_tiny", "looking_up")
    try:
        import looking_up  # noqa: F401 - a program imports the package before any lookup

        with pytest.raises(UserError) as raised:
            get_space("tiny")
        assert str(raised.value) in [
            f"the search space 'tiny' is offered twice: by the entry point tiny = {a}:SPACE, "
            f"and by the naonet.spaces entry point tiny = {b}:SPACE; uninstall one of the "
            "packages, or rename one of the spaces"
            for a, b in (("first_tiny", "second_tiny"), ("second_tiny", "first_tiny"))]
        assert "tiny" not in space_names()  # listed, then refused
        with pytest.raises(UserError, match="unknown search space 'other'; use one of: "
                                            "looking, middle, nb201, small; "):
            get_space("other")
        with pytest.raises(UserError, match="unknown search space 'other'; .*the "
                                            "naonet.spaces entry point klass = second_tiny:"
                                            r"NB201Space did not load \(UserError: NB201Space "
                                            r"is a class; register an instance of it "
                                            r"\(NB201Space\(\)\)\)"):
            get_space("other")
        assert get_space("looking").name == "looking"  # loaded again once its module was
        # a program's own space of a name a package took is refused where it registers
        with pytest.raises(UserError, match="a search space named 'looking' is registered "
                                            "already"):
            register_space(NB201Space(name="looking", op_names=("none", "skip_connect")))
    finally:
        for name in modules:
            sys.modules.pop(name, None)


def test_a_package_offering_one_of_naonets_names_leaves_naonets_space_working(
        fresh_registry, monkeypatch, tmp_path, capsys):
    """From a space author's trial: a package offering a space named 'small' refused the
    name everywhere, and every nao command, --help included, ended in a traceback (the
    defaults name naonet's small). naonet's name stays naonet's; the offer is the load
    failure named where a space is not found."""
    from naonet.spaces import SMALL, CellSearchSpace, get_space, register_space, space_names

    install_package(tmp_path / "clash_pkg", "mine = clash_small:SPACE\n",
                    {"clash_small": VARIANT.format(before="", name="small", ops="")})
    monkeypatch.syspath_prepend(str(tmp_path / "clash_pkg"))
    try:
        assert get_space("small") is SMALL and "small" in space_names()
        status, out, _ = nao_in_process(capsys, "info", "naonet-v2")
        assert status == 0 and "4,387,654" in out
        with pytest.raises(UserError, match="unknown search space 'other'; .*the naonet.spaces "
                                            "entry point mine = clash_small:SPACE did not "
                                            r"load \(UserError: a search space named 'small' "
                                            "is naonet's own; give yours another name"):
            get_space("other")
        with pytest.raises(UserError, match="a search space named 'small' is naonet's own"):
            register_space(CellSearchSpace(name="small", op_names=("identity",)))
    finally:
        sys.modules.pop("clash_small", None)


def test_a_refused_resume_names_each_option_as_the_flag_that_sets_it():
    """The ranking experiment's refusal named --sample-size (nao correlate takes
    --archs) and wrote lists as Python lists."""
    from naonet.options import flag_text
    from naonet.search.config import SearchConfig
    from naonet.search.ranking import RankingConfig, check_same_experiment

    assert flag_text("lr", 1e-5) == "--lr 1e-05"
    assert flag_text("nesterov", False) == "--no-nesterov"
    assert flag_text("max_params", None) == "--max-params none"
    assert flag_text("arch", "|nor_conv_3x3~0|") == "--arch '|nor_conv_3x3~0|'"
    assert flag_text("top_k", [5, 10]) == "--top-k 5,10"
    assert flag_text("sample_size", 100, "archs") == "--archs 100"

    def saved(**fields):
        config = RankingConfig(search=SearchConfig(space="nb201"), reference="table:t.csv",
                               **fields)
        return json.loads(json.dumps(config.to_dict()))

    with pytest.raises(UserError) as raised:
        check_same_experiment(saved(), saved(sample_size=50, samplings=("uniform",)),
                              Path("runs/rank"))
    assert str(raised.value) == (
        "runs/rank belongs to a ranking experiment with --archs 100, not --archs 50 (and "
        "--samplings uniform,balanced, not --samplings uniform); rerun with its options to "
        "resume it, or pass another --output, or delete the folder to start over")
