"""The controller's token encoding of an NB201 space, derived from the space.

Each edge is one encoder step of two tokens, (source node, op), as in NAO's
(input, op) pairs: token 0 is SOS/EOS, source node ``i`` is token ``1 + i`` and op ``o``
is token ``1 + (num_nodes - 1) + o``. Edges come in the order of the string form, so an
architecture is ``2 x num_edges`` tokens (12 for NAS-Bench-201, vocabulary 9). The
source token of an edge is fixed by its position; it still gives the encoder the graph
structure, and the decoder is only allowed that one token there.
"""

from __future__ import annotations

import random

from naonet.spaces.encoding import LegalTokens
from naonet.spaces.nb201 import ZERO_OP, NB201Architecture, NB201Space


class NB201Encoding(LegalTokens):
    """(source, op) token pairs, one per edge."""

    tokens_per_step = 2

    def __init__(self, space: NB201Space):
        self.space = space
        self.source_offset = 1
        self.op_offset = 1 + (space.num_nodes - 1)
        self.vocab_size = self.op_offset + space.num_ops
        self.sequence_length = self.tokens_per_step * space.num_edges
        self._legal = [self._compute_legal(p) for p in range(self.sequence_length)]

    def _compute_legal(self, position: int) -> tuple[int, ...]:
        edge, is_op = divmod(position, self.tokens_per_step)
        if is_op:
            return tuple(range(self.op_offset, self.op_offset + self.space.num_ops))
        source, _ = self.space.edges[edge]
        return (self.source_offset + source,)


    def encode(self, architecture: NB201Architecture) -> list[int]:
        """The token sequence of a cell: (source node, operation) per edge."""
        architecture = self.space.as_architecture(architecture, "the controller")
        tokens = []
        for (source, _), op in zip(self.space.edges, architecture.ops):
            tokens += [self.source_offset + source, self.op_offset + op]
        return tokens

    def decode(self, tokens: list[int]) -> NB201Architecture:
        """The cell of a token sequence; a UserError names the first token that is not
        legal where it stands."""
        tokens = self.checked_tokens(tokens)
        ops = tokens[1::self.tokens_per_step]  # each step is (source, op)
        return self.space.architecture([token - self.op_offset for token in ops])

    def equivalent_variant(self, architecture: NB201Architecture, rng: random.Random
                           ) -> NB201Architecture:
        """The same function with the ops into an unused node re-drawn at random.

        A node whose outgoing edges are all ``none`` never reaches the output, so the
        ops on its incoming edges do not change the network; without such a node the
        architecture has no other equivalent form and is returned unchanged.
        """
        architecture = self.space.as_architecture(architecture, "equivalent_variant")
        if ZERO_OP not in self.space.op_names:
            return architecture
        ops = list(architecture.ops)
        for node in dead_nodes(architecture):
            for edge, (_, target) in enumerate(self.space.edges):
                if target == node:
                    ops[edge] = rng.randrange(self.space.num_ops)
        return self.space.architecture(ops)


def dead_nodes(architecture: NB201Architecture) -> list[int]:
    """Intermediate nodes from which no path of non-``none`` edges reaches the output."""
    reaches = architecture.space.reaches_output(architecture)
    return [node for node in range(1, len(reaches) - 1) if not reaches[node]]
