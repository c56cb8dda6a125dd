"""The NAO controller: an LSTM encoder, a score predictor and an attention LSTM decoder.

Every size that depends on the search space (vocabulary, sequence length, how tokens
group into encoder steps, which tokens are legal where) is read from the space's
token encoding, so any space with such an encoding can be searched.

Shapes: ``N`` architectures, ``L`` tokens per architecture, ``S = L / tokens_per_step``
encoder steps, ``H`` hidden size, ``V`` vocabulary size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from naonet.controller.config import ControllerConfig
from naonet.errors import UserError
from naonet.spaces.encoding import SOS_TOKEN, SequenceEncoding

# Every parameter keeps PyTorch's default initialisation, as in the released controller
# (its decoder's Attention builds plain nn.Linear projections).


class Encoded(NamedTuple):
    """What the encoder produces for a batch of token sequences."""

    step_outputs: torch.Tensor  # [N, S, H], each step L2-normalised
    embedding: torch.Tensor  # [N, H], L2-normalised mean of the steps


def pool_steps(step_outputs: torch.Tensor) -> torch.Tensor:
    """The architecture embedding: L2-normalised mean of the per-step outputs."""
    return F.normalize(step_outputs.mean(dim=1), p=2, dim=-1)  # [N, H]


def _lstm(input_size: int, hidden_size: int, layers: int, dropout: float) -> nn.LSTM:
    # PyTorch applies LSTM dropout only between layers (and warns otherwise).
    return nn.LSTM(input_size, hidden_size, layers, batch_first=True,
                   dropout=dropout if layers > 1 else 0.0)


class ArchitectureEncoder(nn.Module):
    """Token embedding, grouping into steps, LSTM, per-step and pooled normalisation."""

    def __init__(self, vocab_size: int, tokens_per_step: int, config: ControllerConfig):
        super().__init__()
        self.tokens_per_step = tokens_per_step
        self.token_embedding = nn.Embedding(vocab_size, config.embedding_size)
        self.lstm = _lstm(tokens_per_step * config.embedding_size, config.hidden_size,
                          config.encoder_layers, config.encoder_dropout)

    def forward(self, tokens: torch.Tensor) -> Encoded:
        count, length = tokens.shape
        embedded = self.token_embedding(tokens)  # [N, L, E]
        # Consecutive tokens of one step (an (input, op) pair) become one LSTM input.
        steps = embedded.reshape(count, length // self.tokens_per_step, -1)  # [N, S, k E]
        outputs, _ = self.lstm(steps)  # [N, S, H]
        step_outputs = F.normalize(outputs, p=2, dim=-1)
        return Encoded(step_outputs, pool_steps(step_outputs))


class Predictor(nn.Module):
    """MLP (``mlp_layers`` hidden layers, 0 by default) and sigmoid: embedding -> score."""

    def __init__(self, config: ControllerConfig):
        super().__init__()
        width = config.hidden_size
        blocks = []
        for _ in range(config.mlp_layers):
            blocks.append(nn.Sequential(nn.Linear(width, config.mlp_hidden_size), nn.ReLU(),
                                        nn.Dropout(config.mlp_dropout)))
            width = config.mlp_hidden_size
        self.hidden = nn.Sequential(*blocks)
        self.output = nn.Linear(width, 1)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.output(self.hidden(embedding))).squeeze(-1)  # [N]


class Attention(nn.Module):
    """Dot-product attention with an input projection and a tanh output projection."""

    def __init__(self, size: int):
        super().__init__()
        self.query_projection = nn.Linear(size, size, bias=False)
        self.output_projection = nn.Linear(2 * size, size, bias=False)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """queries [N, T, H], memory [N, S, H] -> attended outputs [N, T, H]."""
        scores = torch.bmm(self.query_projection(queries), memory.transpose(1, 2))  # [N, T, S]
        context = torch.bmm(torch.softmax(scores, dim=-1), memory)  # [N, T, H]
        return torch.tanh(self.output_projection(torch.cat((context, queries), dim=-1)))


class ArchitectureDecoder(nn.Module):
    """LSTM over previous tokens, attention over the encoder steps, log-softmax."""

    def __init__(self, vocab_size: int, config: ControllerConfig):
        super().__init__()
        self.layers = config.decoder_layers
        self.token_embedding = nn.Embedding(vocab_size, config.hidden_size)
        self.lstm = _lstm(config.hidden_size, config.hidden_size, config.decoder_layers,
                          config.decoder_dropout)
        self.attention = Attention(config.hidden_size)
        self.output = nn.Linear(config.hidden_size, vocab_size)

    def initial_state(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(h, c) = (embedding, embedding) for every layer: [layers, N, H] each."""
        state = embedding.unsqueeze(0).expand(self.layers, -1, -1).contiguous()
        return state, state

    def forward(self, inputs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor],
                memory: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """inputs [N, T] previous tokens -> log-probabilities [N, T, V] and the new state."""
        outputs, state = self.lstm(self.token_embedding(inputs), state)  # [N, T, H]
        attended = self.attention(outputs, memory)  # [N, T, H]
        return F.log_softmax(self.output(attended), dim=-1), state


class ControllerOutput(NamedTuple):
    predicted: torch.Tensor  # [N] predicted score in (0, 1)
    log_probs: torch.Tensor  # [N, L, V] teacher-forced reconstruction


class Controller(nn.Module):
    """NAO encoder-predictor-decoder for the token encoding of one search space."""

    def __init__(self, encoding: SequenceEncoding, config: ControllerConfig | None = None):
        super().__init__()
        self.encoding = encoding
        self.config = config or ControllerConfig()
        length, per_step = encoding.sequence_length, encoding.tokens_per_step
        if per_step < 1 or length % per_step:
            raise UserError(f"encoding sequence length {length} is not a multiple of its "
                            f"tokens_per_step {per_step}; fix the space's encoding")
        self.sos_token = getattr(encoding, "sos_token", SOS_TOKEN)
        self.encoder = ArchitectureEncoder(encoding.vocab_size, per_step, self.config)
        self.predictor = Predictor(self.config)
        self.decoder = ArchitectureDecoder(encoding.vocab_size, self.config)
        # Not saved in state_dict: it derives from the encoding; moves with .to().
        self.register_buffer("legal_mask", legal_token_mask(encoding), persistent=False)

    # ----------------------------------------------------------------- architectures
    def to_tokens(self, architectures: Sequence) -> torch.Tensor:
        """Token tensor [N, L] of architectures, on the controller's device."""
        rows = [self.encoding.encode(architecture) for architecture in architectures]
        return torch.tensor(rows, dtype=torch.long, device=self.legal_mask.device)

    def from_tokens(self, tokens: torch.Tensor) -> list:
        """Architectures of a token tensor [N, L] (raises if a sequence is illegal)."""
        return [self.encoding.decode(row) for row in tokens.tolist()]

    # ----------------------------------------------------------------- computation
    def encode(self, tokens: torch.Tensor) -> Encoded:
        return self.encoder(tokens)

    def predict(self, embedding: torch.Tensor) -> torch.Tensor:
        """Predicted score [N] of architecture embeddings [N, H]."""
        return self.predictor(embedding)

    def forward(self, tokens: torch.Tensor) -> ControllerOutput:
        """Predicted scores and teacher-forced reconstruction log-probabilities."""
        encoded = self.encode(tokens)
        state = self.decoder.initial_state(encoded.embedding)
        log_probs, _ = self.decoder(self.teacher_forcing_input(tokens), state,
                                    encoded.step_outputs)
        return ControllerOutput(self.predict(encoded.embedding), log_probs)

    def teacher_forcing_input(self, tokens: torch.Tensor) -> torch.Tensor:
        """SOS followed by the target without its last token: [N, L]."""
        start = torch.full_like(tokens[:, :1], self.sos_token)
        return torch.cat((start, tokens[:, :-1]), dim=1)

    def legal_argmax(self, log_probs: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Most likely legal token at each position: [N, T, V] -> [N, T].

        ``start`` is the sequence position of the first of the T steps.
        """
        legal = self.legal_mask[start:start + log_probs.shape[1]]  # [T, V]
        return log_probs.masked_fill(~legal, float("-inf")).argmax(dim=-1)

    def decode_greedy(self, encoded: Encoded) -> torch.Tensor:
        """Greedy decoding restricted to legal tokens: always a valid sequence [N, L]."""
        state = self.decoder.initial_state(encoded.embedding)
        token = torch.full((encoded.embedding.shape[0], 1), self.sos_token, dtype=torch.long,
                           device=encoded.embedding.device)  # [N, 1]
        tokens = []
        for position in range(self.encoding.sequence_length):
            log_probs, state = self.decoder(token, state, encoded.step_outputs)  # [N, 1, V]
            token = self.legal_argmax(log_probs, start=position)  # [N, 1]
            tokens.append(token)
        return torch.cat(tokens, dim=1)


def legal_token_mask(encoding: SequenceEncoding) -> torch.Tensor:
    """Boolean [L, V]: True where the encoding allows a token at a position."""
    mask = torch.zeros(encoding.sequence_length, encoding.vocab_size, dtype=torch.bool)
    for position in range(encoding.sequence_length):
        legal = list(encoding.legal_tokens(position))
        if not legal:
            raise UserError(f"encoding allows no token at position {position}; fix the "
                            "space's encoding")
        mask[position, legal] = True
    return mask
