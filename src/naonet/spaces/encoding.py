"""Token encoding of architectures for the controller, derived from the search space.

Everything the encoder-predictor-decoder controller needs is here and nowhere else:
vocabulary size, sequence length, how tokens group into encoder steps, which tokens are
legal at each position, and the symmetry used to augment training data. Any space that
provides an encoding with this interface (``SequenceEncoding``) can be searched by NAO.

For a NAO cell space with B nodes and K ops (released layout):
token 0 is SOS/EOS, input id ``i`` is token ``i + 1`` and op ``o`` is token
``1 + (B + 1) + o``; an architecture is ``2 cells x B nodes x (input, op, input, op)``.
"""

from __future__ import annotations

import random
from typing import Protocol

from naonet.errors import UserError
from naonet.spaces.architecture import CELL_TYPES, Architecture
from naonet.spaces.cell_space import (
    BRANCHES_PER_NODE,
    INPUT_SLOT,
    INTEGERS_PER_BRANCH,
    CellSearchSpace,
    get_cell_space,
)

SOS_TOKEN = 0


class SequenceEncoding(Protocol):
    """What a search space offers the controller: each architecture as a sequence of
    ``sequence_length`` tokens from ``0 .. vocab_size - 1``. Token ``sos_token`` (an
    optional attribute; :data:`SOS_TOKEN`, 0, without it) starts every sequence the
    decoder writes, so no position may allow it."""

    space: object  # the SearchSpace it encodes: reads text forms, refuses other spaces'
    vocab_size: int  # the start token included
    sequence_length: int  # a multiple of tokens_per_step
    tokens_per_step: int  # consecutive tokens the encoder concatenates into one step

    def legal_tokens(self, position: int) -> tuple[int, ...]:
        """The tokens the decoder may write at ``position`` (at least one)."""

    def encode(self, architecture) -> list[int]:
        """The tokens of an architecture of ``space``."""

    def decode(self, tokens: list[int]):
        """The architecture of a sequence of legal tokens (UserError if there is none)."""

    def equivalent_variant(self, architecture, rng: random.Random):
        """An architecture that computes what ``architecture`` computes, drawn from
        ``rng`` (the architecture itself where the space has no symmetry): the controller
        trains on such variants (``augment_factor`` copies of the pool)."""


class LegalTokens:
    """What every encoding derives from its table ``_legal`` of legal tokens per position
    (with ``sequence_length`` and ``vocab_size``)."""

    _legal: list[tuple[int, ...]]
    sequence_length: int
    vocab_size: int

    def legal_tokens(self, position: int) -> tuple[int, ...]:
        """The tokens that may stand at ``position`` of a sequence."""
        return self._legal[position]

    def checked_tokens(self, tokens: list[int]) -> list[int]:
        """``tokens`` as ints, or a UserError naming the first that is not legal where
        it stands (or the wrong length): what every ``decode`` starts with."""
        tokens = [int(token) for token in tokens]
        if len(tokens) != self.sequence_length:
            raise UserError(f"token sequence has {len(tokens)} tokens, expected "
                            f"{self.sequence_length}")
        for position, token in enumerate(tokens):
            if token not in self._legal[position]:
                raise UserError(f"token {token} is not legal at position {position} "
                                f"(legal: {list(self._legal[position])})")
        return tokens


class CellSpaceEncoding(LegalTokens):
    """The released NAO token layout for a :class:`CellSearchSpace`."""

    tokens_per_step = INTEGERS_PER_BRANCH  # (input, op) pairs, as the released format

    def __init__(self, space: str | CellSearchSpace):
        self.space = get_cell_space(space)
        self.input_offset = 1
        self.op_offset = 1 + (self.space.num_nodes + 1)
        self.vocab_size = self.op_offset + self.space.num_ops
        self.sequence_length = self.space.integers_per_architecture
        self._legal = [self._compute_legal(p) for p in range(self.sequence_length)]

    # ----------------------------------------------------------------- layout
    def _position_role(self, position: int) -> tuple[int, bool]:
        """(node index within its cell, whether the position holds an input id)."""
        within_cell = position % self.space.integers_per_cell
        tokens_per_node = self.tokens_per_step * BRANCHES_PER_NODE
        return (within_cell // tokens_per_node,
                within_cell % self.tokens_per_step == INPUT_SLOT)

    def _compute_legal(self, position: int) -> tuple[int, ...]:
        node, is_input = self._position_role(position)
        if is_input:
            count = self.space.num_candidate_inputs(node)
            return tuple(range(self.input_offset, self.input_offset + count))
        return tuple(range(self.op_offset, self.op_offset + self.space.num_ops))


    # ----------------------------------------------------------------- conversion
    def encode(self, architecture: Architecture) -> list[int]:
        """The token sequence of an architecture of the space (a node's input and
        operation tokens in coding order)."""
        architecture = self.space.as_architecture(architecture, "the controller")
        tokens = []
        for position, value in enumerate(architecture.to_integers()):
            _, is_input = self._position_role(position)
            tokens.append(value + (self.input_offset if is_input else self.op_offset))
        return tokens

    def decode(self, tokens: list[int]) -> Architecture:
        """The architecture of a token sequence; a UserError names the first token that
        is not legal where it stands."""
        values = []
        for position, token in enumerate(self.checked_tokens(tokens)):
            _, is_input = self._position_role(position)
            values.append(token - (self.input_offset if is_input else self.op_offset))
        return Architecture.from_integers(values, self.space)

    # ----------------------------------------------------------------- augmentation
    def equivalent_variant(self, architecture: Architecture, rng: random.Random
                           ) -> Architecture:
        """Swap the two branches of one random node in each cell (same function)."""
        architecture = self.space.as_architecture(architecture, "equivalent_variant")
        cells = []
        for cell_type in CELL_TYPES:
            cell = architecture.cells()[cell_type]
            nodes = list(cell.nodes)
            index = rng.randrange(len(nodes))
            nodes[index] = nodes[index].swapped()
            cells.append(type(cell)(tuple(nodes)))
        return Architecture(architecture.space, cells[0], cells[1])


def encoding_for(space) -> SequenceEncoding:
    """The controller encoding of a space (by name or object)."""
    from naonet.spaces.protocol import get_space

    return get_space(space).encoding()
