"""What every search space provides, the registry of spaces, and the shared integer coding.

A search space is one object from which everything about its architectures derives:
their text form, random draws and neighbours, the controller's token encoding, and the
networks (discrete and weight-sharing) that run them. The NAO cell spaces (``small``,
``middle``) and NAS-Bench-201 (``nb201``) implement :class:`SearchSpace`; the search
loop, the strategies, the samplers and the scorer only ever talk to this protocol.

Every space codes an architecture as a fixed-length list of integers whose entry ``i``
lies in ``[0, integer_limits()[i])`` independently of the others, so uniform sampling,
one-entry mutation and the size of the space are written once here
(:class:`IntegerCodedSpace`: a space of your own gets them by deriving from it).
"""

from __future__ import annotations

import itertools
import math
import operator
import random
import types
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from naonet.errors import UserError
from naonet.spaces import plugins

DEFAULT_SPACE = "small"  # the NAO-V2 paper's space: what a bare architecture string means


@runtime_checkable
class SearchSpace(Protocol):
    """The protocol of a search space (see the module docstring)."""

    name: str
    op_names: tuple[str, ...]
    final_size: tuple[int, int]  # (channels, layers) of the network a search delivers

    # ----------------------------------------------------------------- values
    def parse(self, text: str) -> Hashable:
        """An architecture from any of the space's text forms (UserError if malformed)."""

    def as_architecture(self, value, user: str = "this") -> Hashable:
        """``value`` if it is an architecture of this space, parsed if it is text, else a
        UserError naming what ``user`` takes (every method that takes an architecture
        reads its argument through this)."""

    def integer_limits(self) -> tuple[int, ...]:
        """Exclusive upper bound of every entry of the integer coding."""

    def from_integers(self, values: Sequence[int]) -> Hashable:
        """The architecture of an integer coding (validated)."""

    def to_integers(self, architecture) -> list[int]:
        """The integer coding of an architecture."""

    def encoding(self):
        """The controller's token encoding (a ``SequenceEncoding``)."""

    size: int  # how many architectures the space holds

    def sample(self, rng: random.Random) -> Hashable:
        """A uniformly random architecture, drawn from ``rng``."""

    def mutate(self, architecture, rng: random.Random) -> Hashable:
        """A random neighbour of ``architecture`` (one choice changed)."""

    def all_architectures(self) -> Iterator:
        """Every architecture of the space (sensible only for a small one)."""

    def canonical(self, architecture) -> Hashable:
        """One representative of the architectures that compute the same function as
        ``architecture``: two with equal canonical forms score alike in the supernet, so
        a search re-ranks or reports only one of them."""

    def training_options(self, dataset: str) -> str:
        """The ``nao train`` options that train a found architecture on ``dataset`` with
        the space's published recipe (a preset, and the size where it differs)."""

    def final_size_for(self, dataset: str) -> tuple[int, int]:
        """(channels, layers) of the network ``training_options(dataset)`` trains: the
        network whose costs a search's budget limits."""

    # ----------------------------------------------------------------- networks
    def network_config(self, channels: int, layers: int, num_classes: int = 10,
                       skeleton: str = "cifar", **regularisation: Any):
        """The config of the space's discrete network of that size."""

    def network_config_from_dict(self, values: dict):
        """The network config a checkpoint saved (its ``to_dict()``), read back."""

    def network_config_from_weights(self, state_dict: dict, **overrides: Any):
        """The network config a bare state_dict of the space's network was made with,
        read off its tensor names and shapes (``overrides`` that are not None win)."""

    def build_network(self, architecture, config):
        """The discrete network; ``forward(images)`` -> ``(logits, aux_logits or None)``."""

    def parameter_count(self, architecture, config) -> int:
        """Trainable parameters of the discrete network, without building it (an
        auxiliary head excluded, as published counts and ``count_parameters`` do)."""

    def multiply_adds(self, architecture, config, image_size: int = 32) -> int:
        """Multiply-adds (convolutions and linear layers) of one evaluation of the
        discrete network on one image of ``image_size`` pixels a side, without building
        it."""

    def build_supernet(self, channels: int, layers: int, num_classes: int = 10,
                       skeleton: str = "cifar", **regularisation: Any):
        """The weight-sharing network; ``forward(images, architecture)`` ->
        ``(logits, aux_logits or None)``, ``network_config()`` -> the discrete config of
        its size, ``set_training_progress(fraction)`` for drop path."""


class IntegerCodedSpace:
    """Sampling, mutation and size for a space that provides ``integer_limits``,
    ``from_integers`` and ``to_integers``; operation lookups for one that names its
    operations in ``op_names``."""

    @property
    def num_ops(self) -> int:
        """How many operations the space names (``len(op_names)``)."""
        return len(self.op_names)

    def __deepcopy__(self, memo: dict):
        """The space itself: a space is a description no one changes, and a deep copy of a
        network that holds it (a few-shot supernet's copies) must still take the
        architectures of this space object, which equality alone does not tell for a
        space that compares by identity (a plain class of one's own)."""
        return self

    def op_index(self, name: str) -> int:
        """The index of an operation name, or a UserError naming the valid ones."""
        try:
            return self.op_names.index(name)
        except ValueError:
            raise UserError(f"operation {name!r} is not in the {self.name!r} space; use one "
                            f"of: {', '.join(self.op_names)}") from None

    @property
    def size(self) -> int:
        """How many integer codings the space holds (its number of architectures)."""
        return math.prod(self.integer_limits())

    def all_architectures(self) -> Iterator:
        """Every architecture of the space, codings in lexicographic order (only
        sensible for a small space such as NAS-Bench-201's 15,625)."""
        for values in itertools.product(*(range(high) for high in self.integer_limits())):
            yield self.from_integers(values)

    def as_architecture(self, value, user: str = "this"):
        """``value`` as an architecture of this space: one of its architectures passes
        through and its text form is parsed; anything else is a UserError that names
        what ``user`` takes and the space ``value`` belongs to."""
        if isinstance(value, str):
            return self.parse(value)
        space = getattr(value, "space", None)
        if space is self or space == self:
            return value
        if getattr(space, "name", None) == self.name:
            raise UserError(f"{user} takes architectures of this {self.name!r} space, got one "
                            f"of another space object of that name (a copy, or one defined "
                            "differently); use one space object for both")
        if hasattr(space, "name"):
            raise UserError(f"{user} takes architectures of the {self.name!r} space, got one "
                            f"of the {space.name!r} space; give it an architecture of "
                            f"get_space({self.name!r}), or work in the {space.name!r} space "
                            f"(get_space({space.name!r})) throughout")
        held = (f"whose .space is a {type(space).__name__}, not a space" if space is not None
                else "which has no .space")
        raise UserError(f"{user} takes an architecture of the {self.name!r} space or its "
                        f"text form, got an object of type {type(value).__name__}, {held}; "
                        f"read text with get_space({self.name!r}).parse (the architectures a "
                        "space makes hold the space object itself in .space)")

    def sample(self, rng: random.Random):
        """A uniformly random architecture (every entry drawn independently)."""
        _check_rng(rng)
        return self.from_integers([rng.randrange(high) for high in self.integer_limits()])

    def mutate(self, architecture, rng: random.Random):
        """A neighbour: one entry of the coding changed to another legal value."""
        _check_rng(rng)
        values = self.to_integers(self.as_architecture(architecture, "mutate"))
        limits = self.integer_limits()
        positions = [i for i, high in enumerate(limits) if high > 1]
        if not positions:
            raise UserError(f"the {self.name!r} space holds one architecture, which has no "
                            "neighbour to mutate to; give it a second choice somewhere")
        position = rng.choice(positions)
        # rng.choice of the other values, without listing them (a limit may be huge): the
        # same draw from the stream, so the same neighbour as it gave
        other = rng.randrange(limits[position] - 1)
        values[position] = other + (other >= values[position])
        return self.from_integers(values)

    def check_config(self, config):
        """``config`` if it is this space's network config, else a UserError."""
        expected = type(self.network_config_from_dict({}))
        if not isinstance(config, expected):
            raise UserError(f"the {self.name} network takes a {expected.__name__}, got a "
                            f"{type(config).__name__}; make it with "
                            f"get_space({self.name!r}).network_config(channels, layers)")
        return config


def config_from_fields(config_type: type, values: dict, network: str):
    """``config_type(**values)``, or a UserError naming the unknown fields and the known
    ones (``network`` names the network in the message)."""
    from dataclasses import fields

    known = [field.name for field in fields(config_type)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UserError(f"unknown network option(s) {', '.join(unknown)} for the {network} "
                        f"network; use its config's fields: {', '.join(known)}")
    return config_type(**values)


def preset_size(preset: str) -> tuple[int, int]:
    """(channels, layers) of a ``nao train`` preset's network."""
    from naonet.training.config import PRESETS

    return PRESETS[preset]["channels"], PRESETS[preset]["layers"]


def preset_options(preset: str, size: tuple[int, int]) -> str:
    """``--preset PRESET``, with ``--channels`` and ``--layers`` where ``size`` (channels,
    layers) is not the preset's own."""
    options = f"--preset {preset}"
    if preset_size(preset) != tuple(size):
        options += f" --channels {size[0]} --layers {size[1]}"
    return options


def training_recipe(space: SearchSpace, dataset: str, image_size: int = 0) -> str:
    """The ``nao train`` options that train a found architecture of ``space`` on
    ``dataset`` (images of ``image_size`` px; 0: the data set's own): the space's
    ``training_options``, fitted to the images (:func:`fitted_to_images`), with
    ``--channels`` and ``--layers`` added where those options alone would train another
    size than ``final_size_for(dataset)``, the network whose costs a search's budget
    counted (a space of one's own whose options name no size would otherwise train
    ``nao train``'s default C 36, N 6). Options that name an unknown preset or a size
    that is no integer are left as they are, for ``nao train`` to refuse."""
    options = space.training_options(dataset)
    size = tuple(space.final_size_for(dataset))
    trained = options_size(options)
    if trained is not None and trained != size:
        options += f" --channels {size[0]} --layers {size[1]}"
    return fitted_to_images(options, image_size)


def option_values(options: str) -> dict[str, str]:
    """``--flag value`` and ``--flag=value`` pairs of a ``nao train`` command line."""
    import shlex

    words = shlex.split(options)
    values = dict(zip(words, words[1:]))  # "--flag value" (and harmless other pairs)
    values.update(word.split("=", 1) for word in words if word.startswith("--") and "=" in word)
    return values


def options_size(options: str) -> tuple[int, int] | None:
    """(channels, layers) of the network ``nao train OPTIONS`` trains: the preset's, or
    the training default's, unless the options set them; None where they name an
    unknown preset or a size that is no integer."""
    from naonet.training.config import PRESETS, TrainConfig

    given = option_values(options)
    preset = given.get("--preset")
    if preset is not None and preset not in PRESETS:
        return None
    channels, layers = (preset_size(preset) if preset is not None
                        else (TrainConfig.channels, TrainConfig.layers))
    try:
        return int(given.get("--channels", channels)), int(given.get("--layers", layers))
    except ValueError:
        return None


def fitted_to_images(options: str, image_size: int) -> str:
    """A space's ``training_options`` for images of ``image_size`` px (0: the data set's
    own): ``--cutout`` added where the recipe's cutout square would hide every image
    whole (``nao train`` refuses it), the square scaled as the recipe's is to its data
    set's images (16 of 32 px: 3 of 7)."""
    from naonet.data.registry import cutout_hides_images, get_dataset_spec
    from naonet.training.config import PRESETS, resolve_config

    given = option_values(options)
    preset = given.get("--preset")
    if not image_size or preset not in PRESETS or "--cutout" in given:
        return options
    recipe = resolve_config(preset)
    if not cutout_hides_images(recipe.cutout, image_size):
        return options
    recipe_size = get_dataset_spec(recipe.dataset).image_size
    return f"{options} --cutout {max(1, recipe.cutout * image_size // recipe_size)}"


def is_boolean(value) -> bool:
    """Whether ``value`` is a truth value: Python's, or NumPy's or torch's (a dtype of
    bool), which pass as numbers (True as 1) but mean none."""
    return isinstance(value, bool) or "bool" in str(getattr(value, "dtype", ""))


def plain_integers(values, what: str, fix: str) -> list[int]:
    """``values`` as plain ints (NumPy's and a tensor's integers included), or a UserError
    saying ``what`` takes integers and ``fix``: 0.5 or True would make an architecture
    that no text form reads back."""
    values = list(values)
    if all(type(value) is int for value in values):
        return values
    plain = []
    for value in values:
        try:
            if is_boolean(value):
                raise TypeError
            plain.append(operator.index(value))
        except TypeError:
            raise UserError(f"{what} are integers, got {value!r}; {fix}") from None
    return plain


def _check_rng(rng) -> None:
    if not (hasattr(rng, "randrange") and hasattr(rng, "choice")):  # random.Random's API
        raise UserError("sampling takes a random.Random, got an object of type "
                        f"{type(rng).__name__}; pass random.Random(seed)")


# ----------------------------------------------------------------------- registry
_SPACES: dict[str, SearchSpace] = {}
_NAONET_SPACES: set[str] = set()  # the names of naonet's own spaces


MAX_UNSEEN_DRAWS = 10_000  # random draws for one unseen architecture before listing them
# A space of at most this many architectures may be listed whole (NAS-Bench-201's 15,625).
ENUMERABLE_SIZE = 100_000


def sample_unseen(space: SearchSpace, is_known: Callable[[object], bool], rng: random.Random,
                  tries: int = MAX_UNSEEN_DRAWS):
    """A uniformly random architecture of ``space`` that ``is_known`` rejects; None when
    there is none. After ``tries`` random draws found none, a space small enough to list
    is listed and one of its unseen architectures drawn (an exhaustive search of
    NAS-Bench-201 reaches its last cells); a larger one gives None."""
    for _ in range(tries):
        architecture = space.sample(rng)
        if not is_known(architecture):
            return architecture
    if space.size > ENUMERABLE_SIZE:
        return None
    unseen = [architecture for architecture in space.all_architectures()
              if not is_known(architecture)]
    return rng.choice(unseen) if unseen else None


def protocol_members(protocol: type) -> tuple[str, ...]:
    """The attributes and public methods a ``Protocol`` class asks for, sorted."""
    return tuple(sorted({*protocol.__annotations__, *(
        name for name, value in vars(protocol).items()
        if callable(value) and not name.startswith("_"))}))


PROTOCOL_MEMBERS = protocol_members(SearchSpace)  # what every space has


def register_space(space: SearchSpace, replace: bool = False) -> SearchSpace:
    """Add a space to the registry (for example a cell space with another node count).
    A name already taken by another space is refused unless ``replace``: the files and
    architecture names that name it would otherwise change meaning without a word. The
    spaces installed packages offer are loaded first, so a name one of them takes is
    refused too."""
    plugins.load_space_plugins()
    return _add(space, replace)


def add_to_registry(space: SearchSpace) -> SearchSpace:
    """:func:`register_space` for naonet's own spaces, registered as ``naonet.spaces`` is
    imported (without loading the installed packages' spaces: theirs import it, and load
    later). Their names stay theirs: a package's offer of one is refused."""
    _NAONET_SPACES.add(space.name)
    return _add(space)


def _add(space: SearchSpace, replace: bool = False) -> SearchSpace:
    if isinstance(space, type):
        raise UserError(f"{space.__name__} is a class; register an instance of it "
                        f"({space.__name__}())")
    missing = [name for name in PROTOCOL_MEMBERS if not hasattr(space, name)]
    if missing:
        raise UserError(f"the space {getattr(space, 'name', space)!r} lacks what the "
                        f"SearchSpace protocol asks for: {', '.join(missing)}")
    taken = _SPACES.get(space.name)
    if taken is not None and taken != space and not replace:
        plugins.note_clash(space.name)
        if space.name in _NAONET_SPACES:
            raise UserError(f"a search space named {space.name!r} is naonet's own; give "
                            "yours another name")
        raise UserError(f"a search space named {space.name!r} is registered already; give "
                        "yours another name (or pass replace=True)")
    _SPACES[space.name] = space
    plugins.note_registered(space.name)
    return space


def registered_spaces() -> Mapping[str, SearchSpace]:
    """Every registered space by name (read-only): naonet's, those registered in this
    process, and those the installed packages offer under the ``naonet.spaces`` entry
    points (:mod:`naonet.spaces.plugins`, loaded on the first call)."""
    if not plugins.loaded():  # every parse looks here: no lock once they are loaded
        plugins.load_space_plugins()
    return types.MappingProxyType(_SPACES)


def get_space(name: str | SearchSpace | None = None) -> SearchSpace:
    """Look a space up by name (None: the default space); a space object passes through."""
    if name is None:
        name = DEFAULT_SPACE
    if not isinstance(name, str):
        return name
    spaces = registered_spaces()
    if plugins.clash(name):
        raise UserError(plugins.clash(name))
    if name not in spaces:
        plugins.retry_failed()
    if name in spaces:
        return spaces[name]
    raise UserError(f"unknown search space {name!r}; use one of: "
                    f"{', '.join(space_names())}{plugins.failures_text()}")


def space_names() -> list[str]:
    """Names of every registered space, sorted (naonet's, this process's, and those
    installed packages offer), but for a name two packages offer, which is refused where
    it is asked for."""
    return sorted(name for name in registered_spaces() if not plugins.clash(name))


def parse_architecture(text: str, space: str | SearchSpace | None = None):
    """An architecture of any registered space from its text form.

    ``space`` is the expected space; without it the text says which: a ``name:`` or
    ``name |`` prefix, or a form only one space writes (the benchmark form
    ``|op~0|+...`` of NAS-Bench-201); else it is read in the default space.
    """
    stripped = text.strip()
    if space is None:
        space = named_space(stripped)[0]  # None: the default space
    return get_space(space).parse(stripped)  # each space refuses another space's text


def named_space(text: str) -> tuple[str | None, bool]:
    """The registered space that ``text`` names: ``(name, True)`` for a ``name:`` or
    ``name |`` prefix, ``(name, False)`` for a form only that space writes, else
    ``(None, False)``."""
    prefix = _prefix_space(text.strip())
    if prefix is not None:
        return prefix, True
    return _claiming_space(text.strip()), False


def check_text_space(text: str, space: SearchSpace) -> None:
    """A UserError if ``text`` names a space other than ``space`` (see
    :func:`named_space`); a form ``space`` claims as well is its own (a variant of
    NAS-Bench-201's space writes the benchmark's form too)."""
    said, prefixed = named_space(text)
    if said is None or said == space.name:
        return
    if not prefixed and getattr(space, "claims", lambda _: False)(text):
        return
    raise space_mismatch(said, space.name, prefixed)


def space_mismatch(said: str, wanted: str, prefixed: bool) -> UserError:
    """The error for text of the ``said`` space where the ``wanted`` one was asked for."""
    how = "prefixed with the name of" if prefixed else "written in the form of"
    fix = "drop the prefix or pass" if prefixed else "drop --space, or pass"
    return UserError(f"the architecture is {how} the {said!r} space but the {wanted!r} space "
                     f"was asked for; {fix} --space {said} (in Python, use "
                     f"get_space({said!r}))")


# What may follow a space's name at the start of an architecture's text: small:1 2 ...,
# small | normal: ..., nb201:|nor_conv_3x3~0|+...
PREFIX_SEPARATORS = (":", "|")


def without_space_prefix(text: str, name: str) -> str:
    """``text`` without a leading ``name:`` or ``name |`` (as :func:`named_space` reads
    them)."""
    for separator in PREFIX_SEPARATORS:
        head, found, rest = text.partition(separator)
        if found and head.strip() == name:
            return rest.strip()
    return text


def _prefix_space(text: str) -> str | None:
    for separator in PREFIX_SEPARATORS:
        head = text.split(separator, 1)[0].strip()
        if separator in text and head in registered_spaces():
            return head
    return None


def _claiming_space(text: str) -> str | None:
    claimed = [name for name, space in registered_spaces().items()
               if getattr(space, "claims", lambda _: False)(text)]
    return claimed[0] if claimed else None
