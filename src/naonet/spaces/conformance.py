"""Check that a search space keeps the protocol naonet's engine relies on.

:func:`check_space` runs a space through what the searches, the strategies, the
controller, the supernet and training do with it, on a few random architectures, and
returns a :class:`SpaceCheck`: every check passed, failed (one line: what went wrong, in
which member), or not run because a member it needs raises ``NotImplementedError`` (a
space may leave its networks or its controller encoding unwritten; the check names what
naonet cannot then do with it). ``nao check-space`` prints the same report.

The checks are the protocol's promises, not naonet's own spaces' particulars: a space of
one's own that passes them searches, trains and resumes as ``small`` does.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import math
import random
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from naonet.errors import UserError, error_in_brief
from naonet.spaces.protocol import PREFIX_SEPARATORS, PROTOCOL_MEMBERS, SearchSpace

PASSED, FAILED, NOT_WRITTEN, NOT_RUN = "passed", "failed", "not written", "not run"

# What naonet cannot do with a space whose member raises NotImplementedError.
NEEDED_FOR = {
    "encoding": "the nao strategy's controller (random and evolution search without it)",
    "build_network": "training and evaluating a found architecture (nao train, nao eval)",
    "build_supernet": "the one-shot search (nao search) and nao correlate --supernet",
    "network_config_from_weights": "reading a bare state_dict (nao eval, nao predict)",
    "parameter_count": "--max-params and nao info's counts",
    "multiply_adds": "--max-macs and nao info's counts",
}

SAMPLES = 8  # random architectures each check runs on
COVERAGE_DRAWS = 400  # draws that must meet every value of an entry of at most 10 values
CHANNELS, LAYERS, CLASSES, IMAGE_SIZE = 8, 1, 7, 16  # the networks' tiny size
DEEPER = 2  # cells per stage of a second network: counts must hold beyond one cell


class CheckFailed(Exception):
    """A check's promise does not hold (the message says which and where)."""


class NotRun(Exception):
    """A check cannot run: what it needs failed or is not written."""


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, ``passed``/``failed``/``not written``/``not run``, and why."""

    name: str
    status: str
    detail: str = ""


@dataclass(frozen=True)
class SpaceCheck:
    """What :func:`check_space` found for one space."""

    space_name: str
    results: tuple[CheckResult, ...]

    @property
    def failures(self) -> list[CheckResult]:
        """The checks that failed."""
        return [result for result in self.results if result.status == FAILED]

    @property
    def ok(self) -> bool:
        """Whether no check failed and the foundations passed (checks not written, or not
        run for a part left unwritten, are no failure)."""
        return not self.failures and all(
            result.status == PASSED for result in self.results if result.name in FOUNDATIONS)

    def text(self) -> str:
        """The report: a line per check, then the verdict."""
        width = max(len(status) for status in (PASSED, FAILED, NOT_WRITTEN, NOT_RUN))
        lines = [f"search space {self.space_name!r}:"]
        for result in self.results:
            detail = f": {result.detail}" if result.detail else ""
            lines.append(f"  {result.status:<{width}}  {result.name}{detail}")
        counts = {status: sum(result.status == status for result in self.results)
                  for status in (PASSED, FAILED, NOT_WRITTEN, NOT_RUN)}
        summary = ", ".join(f"{count} {status}" for status, count in counts.items() if count)
        verdict = ("keeps the protocol" if self.ok
                   else "breaks the protocol; fix the members named above")
        lines.append(f"{summary}: the space {verdict}")
        return "\n".join(lines)


@dataclass
class Probe:
    """The space under check and what the checks share: its random architectures, drawn
    once (a failed draw makes every check that needs them 'not run')."""

    space: SearchSpace
    seed: int
    samples: int
    _draws: list | None = None
    _draw_error: str | None = None
    unwritten: set[str] = field(default_factory=set)
    _networks: dict = field(default_factory=dict)

    def rng(self, offset: int = 0) -> random.Random:
        return random.Random(self.seed * 1_000 + offset)

    def draws(self) -> list:
        if self._draws is None and self._draw_error is None:
            try:
                rng = self.rng()
                self._draws = [self.space.sample(rng) for _ in range(self.samples)]
            except Exception as error:  # noqa: BLE001 - the space's own code: any error
                self._draw_error = error_in_brief(error)
        if self._draw_error is not None:
            raise CheckFailed(f"sample raised {self._draw_error}")
        return self._draws

    def network(self, architecture, config):
        """``build_network(architecture, config)``, built once per check run."""
        key = (repr(architecture), repr(config))
        if key not in self._networks:
            self._networks[key] = self.call("build_network", architecture, config)
        return self._networks[key]

    def call(self, member: str, *args, **kwargs):
        """``space.member(*args)``; NotImplementedError means the member is not written."""
        try:
            return getattr(self.space, member)(*args, **kwargs)
        except NotImplementedError:
            self.unwritten.add(member)
            raise


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def expect_refusal(call: Callable[[], object], what: str) -> None:
    """``call()`` must raise a UserError, which the commands print as one line (``what``
    names the call and its input)."""
    try:
        call()
    except UserError:
        return
    except Exception as error:  # noqa: BLE001 - the space's own code: any error
        raise CheckFailed(f"{what} raised {error_in_brief(error, 300)}; raise a "
                          "naonet.errors.UserError, which the commands print as one "
                          "line") from None
    raise CheckFailed(f"{what} was taken; refuse it with a naonet.errors.UserError")


def short(value) -> str:
    """``value`` in a report's line: an architecture by its text form, else its repr, cut
    to 80 characters."""
    try:
        text = repr(value.to_qualified_string())
    except Exception:  # noqa: BLE001 - no architecture, or a broken one: its repr
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ----------------------------------------------------------------------- the checks
def check_members(probe: Probe) -> None:
    """The protocol's members are there, and its attributes hold what the engine reads."""
    space = probe.space
    missing = [name for name in PROTOCOL_MEMBERS if not hasattr(space, name)]
    expect(not missing, f"lacks {', '.join(missing)}")
    name = space.name
    expect(isinstance(name, str) and name.strip() == name and name
           and not any(mark in name for mark in (*PREFIX_SEPARATORS, " ")),
           f"name {short(name)} must be a word without ':', '|' or spaces (text forms "
           "start with it: 'NAME:...')")
    expect(isinstance(space.op_names, tuple) and all(isinstance(op, str)
                                                      for op in space.op_names),
           f"op_names must be a tuple of names, got {short(space.op_names)}")
    size = space.final_size
    expect(isinstance(size, tuple) and len(size) == 2 and all(
        type(value) is int and value > 0 for value in size),
        f"final_size must be (channels, layers), two positive ints, got {short(size)}")


def check_integer_coding(probe: Probe) -> None:
    """Every architecture is a fixed-length list of integers within ``integer_limits``,
    which ``from_integers`` reads back; ``size`` counts those lists."""
    space = probe.space
    limits = space.integer_limits()
    expect(len(limits) > 0 and all(type(high) is int and high > 0 for high in limits),
           f"integer_limits() must be positive ints, got {short(limits)}")
    expect(space.size == math.prod(limits),
           f"size is {space.size}, but the integer_limits() allow {math.prod(limits)}")
    for arch in probe.draws():
        values = space.to_integers(arch)
        expect(len(values) == len(limits) and all(
            type(value) is int and 0 <= value < high for value, high in zip(values, limits)),
            f"to_integers gave {short(values)}, outside integer_limits() {short(limits)}")
        again = space.from_integers(values)
        expect(again == arch, f"from_integers(to_integers(a)) gave another architecture for "
                              f"{short(arch)} (architectures compare by value: make them "
                              "frozen dataclasses)")


def check_coding_refusals(probe: Probe) -> None:
    """A coding outside the limits (a file's line, a decoder's slip) is refused at once,
    not built into a network that fails deep inside."""
    space = probe.space
    limits = space.integer_limits()
    values = space.to_integers(probe.draws()[0])
    for position, high in enumerate(limits):
        for wrong in (high, -1):
            coding = [*values[:position], wrong, *values[position + 1:]]
            expect_refusal(lambda coding=coding: space.from_integers(coding),
                           f"from_integers with entry {position} = {wrong} (outside "
                           f"0..{high - 1}, its integer_limits)")


def check_architectures(probe: Probe) -> None:
    """What the engine reads off an architecture: hashable (pools are sets), ``.space``
    is this space (it refuses another's by it), ``to_qualified_string()`` text that names
    the space."""
    from naonet.spaces.protocol import without_space_prefix

    space = probe.space
    for arch in probe.draws():
        kind = type(arch).__name__
        expect(hasattr(arch, "space"), f"sample returned a {kind}, which has no .space: an "
                                       "architecture holds the space that made it in .space")
        owner = arch.space
        expect(owner is space or owner == space,
               f"an architecture's .space is {short(owner)}, not the space that made it "
               "(that very object, or one equal to it)")
        try:
            hash(arch)
        except TypeError as error:
            raise CheckFailed(f"an architecture ({kind}) is not hashable ({error}): pools "
                              "are sets and dicts; hold tuples, not lists") from None
        text = arch.to_qualified_string()
        expect(isinstance(text, str), "to_qualified_string() must return text")
        # files hold this form, and the registry reads each line by the space it names
        expect(without_space_prefix(text, space.name) != text
               or getattr(space, "claims", lambda _: False)(text),
               f"to_qualified_string() gave {short(text)}, which names no space: start it "
               f"with '{space.name}:', or give the space a claims(text) that owns the form")
        expect(space.as_architecture(arch) == arch, "as_architecture refused one of its own "
                                                    "architectures")


def check_sampling(probe: Probe) -> None:
    """The same seed draws the same architectures (resume and seeds rely on it), and the
    draws meet every value of each entry (a search can reach every architecture)."""
    space = probe.space
    rng = probe.rng()
    again = [space.sample(rng) for _ in range(probe.samples)]
    expect(again == probe.draws(), "sample draws other architectures from an equal "
                                   "random.Random; draw only from the rng it is given")
    limits = space.integer_limits()
    seen = [set() for _ in limits]
    rng = probe.rng(1)
    for _ in range(COVERAGE_DRAWS):
        for position, value in enumerate(space.to_integers(space.sample(rng))):
            seen[position].add(value)
    # an entry of at most 10 values misses one in 400 uniform draws with odds below 1e-17
    missed = [position for position, high in enumerate(limits)
              if high <= 10 and len(seen[position]) < high]
    if missed:
        raise CheckFailed(f"{COVERAGE_DRAWS} draws never met some of the {limits[missed[0]]} "
                          f"values of entry {missed[0]}: sample does not reach them")


def check_text_forms(probe: Probe) -> None:
    """``parse`` reads back every text form the engine writes, with or without the
    ``NAME:`` / ``NAME |`` prefix; malformed text is a UserError."""
    from naonet.spaces.protocol import get_space, parse_architecture, space_names

    space = probe.space
    registered = space.name in space_names() and get_space(space.name) == space
    for arch in probe.draws():
        forms = [arch.to_qualified_string()]
        if hasattr(arch, "to_string"):  # bare, and under either prefix the docs name
            forms += [arch.to_string(), f"{space.name}:{arch.to_string()}",
                      f"{space.name} | {arch.to_string()}"]
        for text in forms:
            expect(parsed(space.parse, text) == arch,
                   f"parse({short(text)}) gave another architecture")
        if registered:
            text = arch.to_qualified_string()
            expect(parsed(parse_architecture, text) == arch,
                   f"naonet.spaces.parse_architecture({short(text)}) gave another "
                   "architecture: another registered space claims the form")
    for malformed in ("", "?-not an architecture-?"):
        expect_refusal(lambda malformed=malformed: space.parse(malformed),
                       f"parse({malformed!r})")


def parsed(parse: Callable, text: str):
    """``parse(text)``, or a failed check naming the text it could not read."""
    try:
        return parse(text)
    except Exception as error:  # noqa: BLE001 - the space's own code: any error
        raise CheckFailed(f"parse({short(text)}) raised {error_in_brief(error, 300)}") \
            from None


def expect_member(probe: Probe, value, who: str) -> None:
    """``value`` (what ``who`` returned) is an architecture of the space: its coding lies
    within the limits and reads back as it (``as_architecture`` alone passes anything
    whose ``.space`` is the space)."""
    space = probe.space
    owner = getattr(value, "space", None)
    expect(owner is space or owner == space,
           f"{who} returned {short(value)}, no architecture of the space")
    try:
        values = space.to_integers(value)
        inside = len(values) == len(space.integer_limits()) and all(
            0 <= v < high for v, high in zip(values, space.integer_limits()))
        again = space.from_integers(values) if inside else None
    except Exception as error:  # noqa: BLE001 - the space's own code: any error
        raise CheckFailed(f"{who} returned {short(value)}, whose coding does not read back "
                          f"({error_in_brief(error)})") from None
    expect(inside and again == value, f"{who} returned {short(value)}, outside the space's "
                                      "coding")


def check_mutation(probe: Probe) -> None:
    """``mutate`` gives a neighbour: an architecture of the space with one entry of its
    coding changed, the same for an equal rng."""
    space = probe.space
    if space.size == 1:
        raise NotRun("the space holds one architecture, which has no neighbour")
    for index, arch in enumerate(probe.draws()):
        neighbour = space.mutate(arch, probe.rng(10 + index))
        expect_member(probe, neighbour, "mutate")
        changed = sum(a != b for a, b in zip(space.to_integers(arch),
                                             space.to_integers(neighbour)))
        expect(changed == 1, f"mutate changed {changed} entries of the coding, not one")
        expect(space.mutate(arch, probe.rng(10 + index)) == neighbour,
               "mutate gives another neighbour for an equal random.Random; draw only from "
               "the rng it is given")


def check_canonical(probe: Probe) -> None:
    """``canonical`` gives an architecture of the space that is its own canonical form."""
    space = probe.space
    for arch in probe.draws():
        form = space.canonical(arch)
        expect_member(probe, form, "canonical")
        expect(space.canonical(form) == form, "canonical(canonical(a)) != canonical(a)")


def check_foreign_architectures(probe: Probe) -> None:
    """Another space's architecture is refused with a UserError, not used as one."""
    from naonet.spaces.protocol import get_space

    space = probe.space
    other = get_space("nb201" if space.name != "nb201" else "small")
    foreign = other.sample(random.Random(0))
    expect_refusal(lambda: space.as_architecture(foreign),
                   f"as_architecture of an architecture of the {other.name!r} space")
    expect_refusal(lambda: space.mutate(foreign, probe.rng()),
                   f"mutate of an architecture of the {other.name!r} space")


def check_training_recipe(probe: Probe) -> None:
    """``training_options`` are options ``nao train`` accepts, and ``final_size_for`` is
    the (channels, layers) of a network (a search prints the command they make)."""
    from naonet.data.registry import DATASETS
    from naonet.spaces.protocol import training_recipe

    space = probe.space
    refused = []
    for dataset in DATASETS:
        try:  # a space may refuse a data set it has no recipe for, with a UserError
            size = space.final_size_for(dataset)
            options = space.training_options(dataset)
        except UserError:
            refused.append(dataset)
            continue
        expect(isinstance(options, str), f"training_options({dataset!r}) must be text")
        expect(isinstance(size, tuple | list) and len(size) == 2 and all(
            type(value) is int and value > 0 for value in size),
            f"final_size_for({dataset!r}) must be (channels, layers), got {short(size)}")
        refusal = train_refuses(training_recipe(space, dataset))
        expect(refusal is None, f"nao train refuses training_options({dataset!r}) "
                                f"{short(options)}: {refusal}")
    expect(len(refused) < len(DATASETS), "training_options refuse every data set "
                                         f"({', '.join(DATASETS)}); give one a recipe")


def train_refuses(options: str) -> str | None:
    """Why ``nao train OPTIONS`` is refused at its flags, or None."""
    from naonet.cli.main import parse_command_line
    from naonet.training.config import field_names, resolve_config

    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            _, args = parse_command_line(["train", *shlex.split(options)])
        resolve_config(args.preset, {}, {name: getattr(args, name) for name in field_names()})
    except SystemExit:
        return errors.getvalue().strip().splitlines()[-1] if errors.getvalue() else "refused"
    except UserError as error:
        return str(error)
    return None


def check_network_config(probe: Probe) -> None:
    """A network config has ``num_classes``, ``to_dict()`` (what checkpoints save, which
    ``network_config_from_dict`` reads back) and ``describe()``."""
    space = probe.space
    config = space.network_config(CHANNELS, LAYERS, num_classes=CLASSES)
    expect(getattr(config, "num_classes", None) == CLASSES,
           f"network_config(num_classes={CLASSES}).num_classes is "
           f"{short(getattr(config, 'num_classes', None))}")
    saved = config.to_dict()
    expect(isinstance(saved, dict), "network config's to_dict() must return a dict")
    again = space.network_config_from_dict(saved)
    expect(again == config and type(again) is type(config),
           "network_config_from_dict(config.to_dict()) gave another config")
    expect(isinstance(config.describe(), str), "network config's describe() must be text")


def check_encoding(probe: Probe) -> None:
    """The controller accepts the encoding, which decodes what it encodes; illegal or
    short token sequences are UserErrors."""
    from naonet.controller import Controller, ControllerConfig

    space = probe.space
    encoding = probe.call("encoding")
    Controller(encoding, ControllerConfig(embedding_size=4, hidden_size=4))  # its checks
    expect(encoding.space == space, "encoding().space is not the space it encodes")
    for index, arch in enumerate(probe.draws()):
        tokens = encoding.encode(arch)
        expect(len(tokens) == encoding.sequence_length,
               f"encode gave {len(tokens)} tokens, sequence_length is "
               f"{encoding.sequence_length}")
        for position, token in enumerate(tokens):
            expect(token in encoding.legal_tokens(position),
                   f"encode wrote token {token} at position {position}, which "
                   f"legal_tokens({position}) does not allow")
        expect(encoding.decode(tokens) == arch, "decode(encode(a)) gave another "
                                                "architecture")
        variant = encoding.equivalent_variant(arch, probe.rng(20 + index))
        expect_member(probe, variant, "equivalent_variant")
        expect(encoding.decode(encoding.encode(variant)) == variant,
               "decode(encode(v)) gave another architecture for an equivalent_variant v")
    expect_refusal(lambda: encoding.decode(tokens[:-1]),
                   "decode of a sequence one token short")
    expect_refusal(lambda: encoding.decode([*tokens[:-1], encoding.vocab_size]),
                   f"decode of a sequence ending in token {encoding.vocab_size} (its "
                   "vocab_size)")


def tiny_config(probe: Probe):
    return probe.space.network_config(CHANNELS, LAYERS, num_classes=CLASSES)


def deeper_config(probe: Probe):
    return probe.space.network_config(CHANNELS, DEEPER, num_classes=CLASSES)


def images():
    import torch

    return torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))


def check_outputs(outputs, who: str) -> None:
    expect(isinstance(outputs, tuple) and len(outputs) == 2,
           f"{who} must return (logits, aux_logits or None), got {type(outputs).__name__}")
    logits, aux = outputs
    expect(tuple(logits.shape) == (2, CLASSES),
           f"{who}'s logits have shape {tuple(logits.shape)}, expected (2, {CLASSES}) for 2 "
           f"images and {CLASSES} classes")
    if aux is not None:
        expect(tuple(aux.shape) == (2, CLASSES),
               f"{who}'s aux_logits have shape {tuple(aux.shape)}, expected (2, {CLASSES})")


def check_network(probe: Probe) -> None:
    """The discrete network: ``.config``, ``(logits, aux)`` outputs, and the parameters
    and multiply-adds the space counts without building it."""
    import torch


    config = tiny_config(probe)
    for arch in probe.draws()[:3]:
        network = probe.network(arch, config)
        expect(isinstance(network, torch.nn.Module), "build_network must return an "
                                                     "nn.Module")
        expect(getattr(network, "config", None) == config,
               "the network's .config is not the config it was built from")
        with torch.no_grad():
            check_outputs(network.eval()(images()), "the network")


def check_counts(probe: Probe) -> None:
    """The parameters and multiply-adds the space counts without building the network
    are the built network's, at one and at two cells per stage (a count that holds for
    one cell per stage only would pass at the tiny size alone)."""
    from naonet.models import count_parameters
    from naonet.models.complexity import count_multiply_adds

    config, deeper = tiny_config(probe), deeper_config(probe)
    first, *others = probe.draws()[:3]
    cases = [(first, deeper), (first, config), *((arch, config) for arch in others)]
    unwritten = []
    for arch, size in cases:
        network = probe.network(arch, size)
        for member, built in (
                ("parameter_count", lambda network=network: count_parameters(network)),
                ("multiply_adds", lambda network=network: count_multiply_adds(
                    network, (3, IMAGE_SIZE, IMAGE_SIZE)))):
            if member in unwritten:
                continue
            try:
                counted = probe.call(member, arch, size, *(
                    (IMAGE_SIZE,) if member == "multiply_adds" else ()))
            except NotImplementedError:
                unwritten.append(member)
                continue
            expected = built()
            expect(counted == expected, f"{member} says {counted} for a network of "
                                        f"{short(size)}, the built network has {expected}"
                                        + (" (its auxiliary head left out)"
                                           if member == "parameter_count" else ""))
    if unwritten:
        raise NotImplementedError  # the members are in probe.unwritten


def check_weights(probe: Probe) -> None:
    """``network_config_from_weights`` reads the config off a network's state_dict."""
    arch = probe.draws()[0]
    for config in (tiny_config(probe), deeper_config(probe)):
        try:
            weights = probe.network(arch, config).state_dict()
        except NotImplementedError:
            raise NotRun("needs build_network") from None
        read = probe.call("network_config_from_weights", weights)
        expect(read == config, "network_config_from_weights read another config off the "
                               f"state_dict of a network of {short(config)}: {short(read)}")


def check_supernet(probe: Probe) -> None:
    """The supernet: ``(logits, aux)`` for any architecture and its text, a gradient for
    training, ``network_config()``, ``set_training_progress``; a deep copy of the space
    (a few-shot supernet's copies) takes its architectures; canonical forms compute what
    the architectures they stand for compute."""
    import torch

    space = probe.space
    torch.manual_seed(probe.seed)
    supernet = probe.call("build_supernet", CHANNELS, LAYERS, num_classes=CLASSES)
    expect(isinstance(supernet, torch.nn.Module), "build_supernet must return an nn.Module")
    config = supernet.network_config()
    expect(type(config) is type(tiny_config(probe)),
           f"the supernet's network_config() is a {type(config).__name__}, not the space's "
           "network config")
    expect(getattr(config, "num_classes", None) == CLASSES,
           f"the supernet's network_config() has num_classes "
           f"{short(getattr(config, 'num_classes', None))}, the supernet {CLASSES}")
    supernet.set_training_progress(0.5)
    arch = probe.draws()[0]
    # a few-shot supernet's copies are deep copies, holding deep copies of the space
    try:
        copy.deepcopy(space).as_architecture(arch)
    except Exception:  # noqa: BLE001 - the space's own code: any error
        raise CheckFailed("a deep copy of the space refuses its architectures (a few-shot "
                          "supernet's copies hold one); define __deepcopy__ returning the "
                          "space itself, as IntegerCodedSpace does") from None
    outputs = supernet.train()(images(), arch)
    check_outputs(outputs, "the supernet")
    outputs[0].sum().backward()
    expect(any(parameter.grad is not None for parameter in supernet.parameters()),
           "the supernet's logits have no gradient in its parameters")
    supernet.eval()
    with torch.no_grad():
        # a sampler's pool and a file's lines reach it as text
        text = arch.to_qualified_string()
        expect(torch.equal(supernet(images(), text)[0], supernet(images(), arch)[0]),
               f"the supernet computes otherwise for the text form {short(text)}; read it "
               "with the space's as_architecture")
        for candidate in probe.draws():
            form = space.canonical(candidate)
            if form == candidate:
                continue  # the same architecture: the same function
            # float sums in another order: a few float32 roundings of O(1) logits
            same = torch.allclose(supernet(images(), form)[0],
                                  supernet(images(), candidate)[0], rtol=1e-4, atol=1e-5)
            expect(same, f"canonical({short(candidate)}) computes another function in the "
                         "supernet: a search would hide the architecture behind it")


CHECKS: tuple[tuple[str, Callable[[Probe], None]], ...] = (
    ("protocol members", check_members),
    ("architecture values", check_architectures),
    ("integer coding", check_integer_coding),
    ("codings outside the limits", check_coding_refusals),
    ("sampling", check_sampling),
    ("text forms", check_text_forms),
    ("mutation", check_mutation),
    ("canonical forms", check_canonical),
    ("another space's architectures", check_foreign_architectures),
    ("training recipe", check_training_recipe),
    ("network config", check_network_config),
    ("controller encoding", check_encoding),
    ("network", check_network),
    ("network counts", check_counts),
    ("network config from weights", check_weights),
    ("supernet", check_supernet),
)


NETWORK_CHECKS = ("network", "network counts", "network config from weights", "supernet")
# checks that test what another check's part built: not run unless that one passed
NEEDS = {"network counts": "network", "network config from weights": "network"}
# what every later check builds on: when one fails, the later ones are not run
FOUNDATIONS = ("protocol members", "architecture values", "integer coding")


def check_space(space: SearchSpace | str, samples: int = SAMPLES, seed: int = 0,
                networks: bool = True) -> SpaceCheck:
    """Run every check on ``space`` (an object or a registered name) with ``samples``
    random architectures drawn from ``seed``. Its networks are built at C 8, one cell
    per stage, 7 classes, on two 16 px images, on the CPU: seconds for naonet's spaces
    (``networks=False`` leaves them out: the rest takes milliseconds)."""
    from naonet.spaces.protocol import get_space

    if isinstance(space, str):
        space = get_space(space)
    if isinstance(space, type):
        raise UserError(f"{space.__name__} is a class; check an instance of it "
                        f"({space.__name__}())")
    if type(samples) is not int or samples < 1:
        raise UserError(f"check_space's samples must be a positive int, got {samples!r}")
    import torch

    if type(seed) is not int:
        raise UserError(f"check_space's seed must be an int, got {seed!r}")
    probe = Probe(space, seed, samples)
    with torch.random.fork_rng(devices=[]):  # the caller's torch stream stays as it was
        results = run_checks(probe, networks)
    return SpaceCheck(getattr(space, "name", type(space).__name__), tuple(results))


def run_checks(probe: Probe, networks: bool) -> list[CheckResult]:
    """Every check of :data:`CHECKS` in order, minding the foundations, what each check
    needs, and ``networks``."""
    results: list[CheckResult] = []
    for name, check in CHECKS:
        status = {result.name: result.status for result in results}
        broken = [done for done in FOUNDATIONS if status.get(done, PASSED) != PASSED]
        needed = NEEDS.get(name)
        if broken:  # every later check would fail of it too, burying its line
            results.append(CheckResult(name, NOT_RUN, f"needs {broken[0]}"))
        elif not networks and name in NETWORK_CHECKS:
            results.append(CheckResult(name, NOT_RUN, "networks left out"))
        elif needed is not None and status[needed] != PASSED:
            results.append(CheckResult(name, NOT_RUN, f"needs {needed}"))
        else:
            results.append(run_check(name, check, probe))
    return results


def run_check(name: str, check: Callable[[Probe], None], probe: Probe) -> CheckResult:
    probe.unwritten = set()  # the members this check finds unwritten
    try:
        check(probe)
    except CheckFailed as failure:
        return CheckResult(name, FAILED, str(failure))
    except NotRun as reason:
        return CheckResult(name, NOT_RUN, str(reason))
    except NotImplementedError as error:
        members = sorted(probe.unwritten)
        if not members:  # a member the protocol asks to be written
            return CheckResult(name, FAILED, f"{raised_where(error)} raised "
                                             "NotImplementedError; write it")
        return CheckResult(name, NOT_WRITTEN, unwritten_text(members))
    except Exception as error:  # noqa: BLE001 - the space's own code: any error
        return CheckResult(name, FAILED, f"{raised_where(error)} raised "
                                         f"{error_in_brief(error, 300)}")
    return CheckResult(name, PASSED)


def unwritten_text(members: list[str]) -> str:
    """What naonet cannot do without ``members``, which raise NotImplementedError."""
    if len(members) == 1:
        return (f"{members[0]} raises NotImplementedError; naonet needs it for "
                f"{NEEDED_FOR[members[0]]}")
    needs = "; ".join(f"{member} for {NEEDED_FOR[member]}" for member in members)
    return f"{', '.join(members)} raise NotImplementedError; naonet needs {needs}"


def raised_where(error: BaseException) -> str:
    """The call a check made that raised ``error``, and where it raised: ``name (file,
    line N)``, read off its traceback (the first frame past this module's, and the
    last)."""
    import traceback

    frames = traceback.extract_tb(error.__traceback__)
    ours = [index for index, frame in enumerate(frames) if frame.filename == __file__]
    called = frames[ours[-1] + 1:] if ours else frames
    # torch's module call machinery stands between the check and a network's forward
    torch_folder = str(Path(importlib.util.find_spec("torch").origin).parent)
    named = [frame for frame in called if not frame.filename.startswith(torch_folder)]
    if not named:
        return "the check"
    last = called[-1]
    return (f"{named[0].name} ({Path(last.filename).name}, line {last.lineno}, in "
            f"{last.name})")

