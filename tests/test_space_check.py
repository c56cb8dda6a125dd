"""``naonet.spaces.check_space`` and ``nao check-space``: a space that keeps the protocol
passes; each broken promise fails its own check, with a line that names the member and
leaves the other checks passing; a member left unwritten is named with what it disables.

The broken spaces are a small NAO cell space with one defect planted each (none is
registered: the registry stays as the other tests expect it)."""

from __future__ import annotations

import random
import sys
from dataclasses import asdict, dataclass

import pytest

from naonet.errors import UserError
from naonet.spaces import CellSearchSpace, IntegerCodedSpace
from naonet.spaces.conformance import (
    NETWORK_CHECKS,
    NOT_RUN,
    NOT_WRITTEN,
    PASSED,
    check_space,
)
from naonet.spaces.protocol import without_space_prefix

from conftest import nao_in_process

FIELDS = dict(op_names=("sep_conv_3x3", "identity", "avg_pool_3x3"), num_nodes=2,
              final_size=(8, 1))


def probe_space(kind: type = CellSearchSpace, name: str = "probe"):
    return kind(name=name, **FIELDS)


class StuckMutation(CellSearchSpace):
    def mutate(self, architecture, rng):
        return self.as_architecture(architecture)


class GlobalRandomSampling(CellSearchSpace):
    def sample(self, rng):
        return super().sample(random.Random())  # ignores the rng it is given


class ValueErrorParse(CellSearchSpace):
    def parse(self, text):
        if not text.strip():
            raise ValueError("empty")
        return super().parse(text)


class MiscountedParameters(CellSearchSpace):
    def parameter_count(self, architecture, config):
        return super().parameter_count(architecture, config) + 1


class MistypedRecipe(CellSearchSpace):
    def training_options(self, dataset):
        return "--preset naonet-v2-cifar10 --epoch 10"


class CopiedOnDeepCopy(CellSearchSpace):
    """Compares by identity, and a deep copy is another object (the few-shot failure)."""

    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __deepcopy__(self, memo):
        copy = object.__new__(type(self))
        object.__setattr__(copy, "__dict__", dict(self.__dict__))
        return copy


class FunctionChangingCanonical(CellSearchSpace):
    """A canonical form that is idempotent but sets the first branch's operation to 0:
    another function, which a search would report in the architecture's place."""

    def canonical(self, architecture):
        values = self.to_integers(architecture)
        values[1] = 0
        return self.from_integers(values)


class LogitsOnlySupernet(CellSearchSpace):
    def build_supernet(self, *args, **kwargs):
        supernet = super().build_supernet(*args, **kwargs)
        forward = supernet.forward
        supernet.forward = lambda images, architecture: forward(images, architecture)[0]
        return supernet


class MiscountedBeyondOneCell(CellSearchSpace):
    """Counts right at one cell per stage only (a stage's count times the layers)."""

    def parameter_count(self, architecture, config):
        return super().parameter_count(architecture, config) + (config.layers > 1)


class UncheckedCoding(CellSearchSpace):
    """Takes any integers, folding them into range: a file's bad line builds a network."""

    def from_integers(self, values):
        return super().from_integers([value % high for value, high in
                                      zip(values, self.integer_limits())])


@dataclass(frozen=True)
class Pair:
    """An architecture of the pair space: two choices."""

    space: PairSpace
    choices: tuple

    def to_string(self) -> str:
        return "-".join(str(choice) for choice in self.choices)

    def to_qualified_string(self) -> str:
        return f"{self.space.name}:{self.to_string()}"


class PairSpace(IntegerCodedSpace):
    """A space of another shape than naonet's, with no networks and no encoding."""

    name, op_names, final_size = "pair", ("a", "b", "c"), (8, 1)
    architecture = Pair

    def integer_limits(self):
        return (3, 3)

    def from_integers(self, values):
        values = list(values)
        if len(values) != 2 or not all(0 <= value < 3 for value in values):
            raise UserError(f"a pair is two choices of 0..2, got {values}")
        return self.architecture(self, tuple(values))

    def to_integers(self, architecture):
        return list(self.as_architecture(architecture).choices)

    def parse(self, text):
        words = without_space_prefix(text.strip(), self.name).split("-")
        if len(words) != 2 or not all(word.isdigit() for word in words):
            raise UserError(f"a pair is written 'C-C', got {text!r}")
        return self.from_integers([int(word) for word in words])

    def canonical(self, architecture):
        return self.as_architecture(architecture)

    def training_options(self, dataset):
        return "--epochs 1"

    def final_size_for(self, dataset):
        return self.final_size

    def network_config(self, channels, layers, num_classes=10, skeleton="cifar", **rest):
        return PairConfig(channels, layers, num_classes)

    def network_config_from_dict(self, values):
        return PairConfig(**values)

    def unwritten(self, *args, **kwargs):
        raise NotImplementedError

    encoding = network_config_from_weights = build_network = build_supernet = unwritten
    parameter_count = multiply_adds = unwritten


@dataclass(frozen=True)
class PairConfig:
    channels: int = 8
    layers: int = 1
    num_classes: int = 10

    def to_dict(self):
        return asdict(self)

    def describe(self):
        return f"C {self.channels}"


class UnqualifiedPair(Pair):
    def to_qualified_string(self) -> str:
        return self.to_string()  # files could not tell its space


class ListPair(Pair):
    def __init__(self, space, choices):
        super().__init__(space, list(choices))  # a list: unhashable


class TupleSamplingPair(PairSpace):
    def sample(self, rng):
        return tuple(super().to_integers(super().sample(rng)))


class FailingCanonicalPair(PairSpace):
    def canonical(self, architecture):
        return self.op_names[7]


class FailingSample(PairSpace):
    def sample(self, rng):
        raise RuntimeError("no draws today")


class OutsideCanonical(PairSpace):
    """A canonical form with a choice outside the space, which as_architecture passes
    (its .space is the space)."""

    def canonical(self, architecture):
        return Pair(self, (0, 7))


class FailingForward(CellSearchSpace):
    def build_network(self, architecture, config):
        network = super().build_network(architecture, config)

        def forward(images):
            raise RuntimeError("shape mismatch")

        network.forward = forward
        return network


def pair_space(architecture=Pair, kind=PairSpace):
    space = kind()
    space.architecture = architecture
    return space


def statuses(report) -> dict[str, str]:
    return {result.name: result.status for result in report.results}


def failed(report) -> dict[str, str]:
    return {result.name: result.detail for result in report.failures}


def test_naonets_spaces_keep_every_promise():
    """The one test of the networks' checks on a well-made space (the registered spaces
    run the whole check in test_space_protocol)."""
    report = check_space(probe_space())
    assert set(statuses(report).values()) == {PASSED}, report.text()
    assert report.ok and report.text().endswith("16 passed: the space keeps the protocol")


@pytest.mark.parametrize("kind, check, detail", [
    (StuckMutation, "mutation", "mutate changed 0 entries of the coding, not one"),
    (GlobalRandomSampling, "sampling", "sample draws other architectures from an equal "
                                       "random.Random"),
    (ValueErrorParse, "text forms", "parse('') raised ValueError: empty; raise a "
                                    "naonet.errors.UserError"),
    (MistypedRecipe, "training recipe", "nao train refuses training_options('cifar10') "
                                        "'--preset naonet-v2-cifar10 --epoch 10': "
                                        "nao train: error: unrecognized arguments: --epoch"),
    (UncheckedCoding, "codings outside the limits",
     "from_integers with entry 0 = 2 (outside 0..1, its integer_limits) was taken; refuse it "
     "with a naonet.errors.UserError"),
])
def test_a_broken_promise_fails_its_own_check_alone(kind, check, detail):
    report = check_space(probe_space(kind), networks=False)
    assert list(failed(report)) == [check], report.text()
    assert failed(report)[check].startswith(detail)
    assert not report.ok and "breaks the protocol" in report.text()
    assert all(statuses(report)[name] == NOT_RUN for name in NETWORK_CHECKS)


@pytest.mark.parametrize("space, check, detail", [
    (pair_space(UnqualifiedPair), "architecture values",
     "to_qualified_string() gave '1-1', which names no space: start it with 'pair:'"),
    (pair_space(ListPair), "architecture values",
     "an architecture (ListPair) is not hashable (unhashable type: 'list')"),
    (pair_space(kind=TupleSamplingPair), "architecture values",
     "sample returned a tuple, which has no .space"),
    (pair_space(kind=FailingSample), "architecture values",
     "sample raised RuntimeError: no draws today"),
])
def test_a_broken_foundation_is_the_one_line_and_nothing_after_it_runs(space, check, detail):
    """From a space author's trial: these passed (or buried their cause under nine lines
    that each failed of it)."""
    report = check_space(space, networks=False)
    assert list(failed(report)) == [check], report.text()
    assert failed(report)[check].startswith(detail)
    assert not report.ok
    later = list(statuses(report))[list(statuses(report)).index(check) + 1:]
    assert {statuses(report)[name] for name in later} == {NOT_RUN}


def test_a_canonical_form_outside_the_space_fails():
    report = check_space(pair_space(kind=OutsideCanonical), networks=False)
    assert list(failed(report)) == ["canonical forms"]
    detail = failed(report)["canonical forms"]
    assert detail == "canonical returned 'pair:0-7', outside the space's coding"


def test_an_exception_names_the_member_that_raised_it():
    report = check_space(pair_space(kind=FailingCanonicalPair), networks=False)
    assert list(failed(report)) == ["canonical forms"]
    assert failed(report)["canonical forms"] == (
        "canonical (test_space_check.py, line "
        f"{FailingCanonicalPair.canonical.__code__.co_firstlineno + 1}, in canonical) raised "
        "IndexError: tuple index out of range")


def test_a_space_without_networks_passes_with_what_it_lacks_named():
    report = check_space(pair_space())
    assert report.ok, report.text()
    assert [result.name for result in report.results if result.status == NOT_WRITTEN] == [
        "controller encoding", "network", "supernet"]


@pytest.mark.parametrize("kind, check, detail", [
    (MiscountedParameters, "network counts", "parameter_count says "),
    (MiscountedBeyondOneCell, "network counts", "parameter_count says "),
    (CopiedOnDeepCopy, "supernet", "a deep copy of the space refuses its architectures"),
    (FailingForward, "network", "forward (test_space_check.py, line "),
    (FunctionChangingCanonical, "supernet", "canonical("),
    (LogitsOnlySupernet, "supernet", "the supernet must return (logits, aux_logits or "
                                     "None), got Tensor"),
])
def test_a_broken_network_promise_fails_its_own_check_alone(kind, check, detail):
    report = check_space(probe_space(kind))
    assert list(failed(report)) == [check], report.text()
    assert failed(report)[check].startswith(detail)


def test_a_bad_name_fails_first_and_runs_nothing_else():
    report = check_space(probe_space(name="my:space"), networks=False)
    assert list(failed(report)) == ["protocol members"]
    assert "must be a word without ':'" in failed(report)["protocol members"]
    assert set(list(statuses(report).values())[1:]) == {NOT_RUN}


class Unwritten(CellSearchSpace):
    """Leaves the controller encoding and the networks unwritten (as the example plugin
    package's chain space does): it can be searched with random or evolution only."""

    def encoding(self):
        raise NotImplementedError

    def build_network(self, architecture, config):
        raise NotImplementedError

    def build_supernet(self, *args, **kwargs):
        raise NotImplementedError


def test_unwritten_members_are_named_with_what_they_disable():
    report = check_space(probe_space(Unwritten))
    assert report.ok, report.text()
    status = statuses(report)
    assert [name for name, value in status.items() if value == NOT_WRITTEN] == [
        "controller encoding", "network", "supernet"]
    assert status["network config from weights"] == status["network counts"] == NOT_RUN
    details = {result.name: result.detail for result in report.results}
    assert details["supernet"] == ("build_supernet raises NotImplementedError; naonet needs "
                                   "it for the one-shot search (nao search) and nao "
                                   "correlate --supernet")
    assert report.text().endswith("11 passed, 3 not written, 2 not run: the space keeps "
                                  "the protocol")

def test_a_class_or_a_bad_sample_count_is_refused():
    with pytest.raises(UserError, match=r"CellSearchSpace is a class; check an instance"):
        check_space(CellSearchSpace)
    with pytest.raises(UserError, match="samples must be a positive int, got 0"):
        check_space("nb201", samples=0)


def test_nao_check_space_reports_and_sets_its_exit_status(tmp_path, monkeypatch, capsys):
    """A space of one's own in a module of the current folder, checked before packaging."""
    (tmp_path / "my_spaces.py").write_text(
        "from naonet.spaces import CellSearchSpace\n"
        "class Stuck(CellSearchSpace):\n"
        "    def mutate(self, architecture, rng):\n"
        "        return architecture\n"
        f"GOOD = CellSearchSpace(name='mine', **{FIELDS!r})\n"
        f"STUCK = Stuck(name='stuck', **{FIELDS!r})\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the command puts the folder first
    monkeypatch.delitem(sys.modules, "my_spaces", raising=False)
    status, out, _ = nao_in_process(capsys, "check-space", "my_spaces:GOOD", "--no-networks")
    assert status == 0 and out.splitlines()[0] == "search space 'mine':"
    assert out.rstrip().endswith("12 passed, 4 not run: the space keeps the protocol")
    status, out, _ = nao_in_process(capsys, "check-space", "my_spaces:STUCK",
                                    "--no-networks")
    assert status == 1
    assert "  failed       mutation: mutate changed 0 entries" in out
    for argument, message in [
            ("nosuch", "unknown search space 'nosuch'; use one of: "),
            ("my_spaces:MISSING", "the module my_spaces has no 'MISSING'"),
            ("elsewhere:SPACE", "no module named 'elsewhere' in "),
            (":SPACE", "':SPACE' is not MODULE:NAME"),
            ("my_spaces.py:GOOD", "'my_spaces.py:GOOD' names a file; name its module: "
                                  "my_spaces:GOOD")]:
        status, out, err = nao_in_process(capsys, "check-space", argument)
        assert status == 2 and out == ""
        assert len(err.splitlines()) == 1 and message in err
    sys.modules.pop("my_spaces", None)


def test_an_architecture_holding_no_space_object_is_named_so():
    """It said 'which has no .space' of an architecture whose .space was the space's
    name, and 'defined differently' of an identical copy of the space."""
    from types import SimpleNamespace

    space = pair_space()
    with pytest.raises(UserError, match="got an object of type SimpleNamespace, whose .space "
                                        "is a str, not a space; "):
        space.as_architecture(SimpleNamespace(space="pair"))
    with pytest.raises(UserError, match=r"another space object of that name \(a copy, or "):
        space.as_architecture(Pair(pair_space(), (0, 1)))


class HugePair(PairSpace):
    """A first choice of 10**12 values: mutate listed them all, and the check hung."""

    def integer_limits(self):
        return (10 ** 12, 3)

    def from_integers(self, values):
        values = list(values)
        if len(values) != 2 or not all(0 <= v < high for v, high in
                                       zip(values, self.integer_limits())):
            raise UserError(f"a huge pair is two choices within the limits, got {values}")
        return self.architecture(self, tuple(values))


def test_a_space_of_huge_limits_is_checked_and_mutated_at_once():
    assert check_space(pair_space(kind=HugePair), networks=False).ok
    space = pair_space(kind=HugePair)
    neighbour = space.mutate(space.from_integers([5, 1]), random.Random(3))
    assert sum(a != b for a, b in zip(neighbour.choices, (5, 1))) == 1


def test_mutation_draws_the_neighbour_rng_choice_of_the_other_values_drew():
    """The draw that replaced listing the other values takes the same neighbour from the
    same random stream (searches seeded before it find what they found)."""
    from naonet.spaces import get_space

    space = get_space("nb201")
    for seed in range(40):
        arch, rng, reference = space.sample(random.Random(seed)), random.Random(seed), \
            random.Random(seed)
        values = space.to_integers(arch)
        position = reference.choice(range(len(values)))
        expected = list(values)
        expected[position] = reference.choice([v for v in range(space.integer_limits()[
            position]) if v != values[position]])
        assert space.to_integers(space.mutate(arch, rng)) == expected
        assert rng.random() == reference.random()  # the stream goes on alike
