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
from naonet.runtime import evaluating
from naonet.spaces.encoding import SOS_TOKEN, SequenceEncoding
from naonet.spaces.protocol import protocol_members

# Every parameter keeps PyTorch's default initialisation, as in the released controller
# (its decoder's Attention builds plain nn.Linear projections).
#
# The computation is the released one, rearranged to do less arithmetic (the parameters,
# their names and every output are the same, up to float rounding):
# * an LSTM whose inputs are token embeddings reads one-hot tokens instead, through its
#   input weights multiplied by the embedding table: its first matrix product shrinks
#   from the embedding width to the vocabulary size;
# * the attention projects its memory (the S encoder steps) instead of the T queries,
#   once per batch, so greedy decoding does not project it again at every position.


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


def one_hot_weights(lstm: nn.LSTM, embedding: nn.Embedding) -> list[torch.Tensor] | None:
    """The weights with which ``lstm`` reads one-hot tokens instead of their embeddings
    (see :func:`run_on_embeddings`); None when one-hot rows would be the wider input, or
    off the CPU (cuDNN wants the module's own weights, flattened once, and the saving
    is in arithmetic, which is not what limits these sizes on a GPU)."""
    table = embedding.weight  # [V, E]
    vocab, width = table.shape
    if vocab >= width or table.device.type != "cpu":
        return None
    weights = []
    for layer in range(lstm.num_layers):
        weights += [getattr(lstm, f"{kind}_l{layer}")
                    for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    first = weights[0]  # [4H, k E]
    weights[0] = torch.cat([first[:, i:i + width] @ table.t()
                            for i in range(0, lstm.input_size, width)], dim=1)  # [4H, k V]
    return weights


def run_on_embeddings(lstm: nn.LSTM, embedding: nn.Embedding, tokens: torch.Tensor,
                      state: tuple[torch.Tensor, torch.Tensor] | None = None,
                      weights: list[torch.Tensor] | None = None
                      ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """``lstm`` over the embeddings of ``tokens`` [N, T * k] grouped k to a step.

    Equal to ``lstm(embedding(tokens).reshape(N, T, k * E), state)``. The first layer's
    input product ``W_ih [4H, k E] @ x`` is taken as ``(W_ih @ blockdiag(table^T))
    [4H, k V] @ one_hot(tokens)``: with a vocabulary smaller than the embedding width
    that is less arithmetic, and the gradients reach both factors exactly. ``weights``:
    :func:`one_hot_weights`, computed once by a caller that runs many short steps.
    """
    weights = weights if weights is not None else one_hot_weights(lstm, embedding)
    count = tokens.shape[0]
    if weights is None:
        inputs = embedding(tokens).reshape(count, -1, lstm.input_size)
        return lstm(inputs, state)
    vocab = embedding.num_embeddings
    inputs = F.one_hot(tokens, vocab).to(weights[0].dtype).reshape(
        count, -1, weights[0].shape[1])  # [N, T, k V]
    if state is None:
        zeros = inputs.new_zeros(lstm.num_layers, count, lstm.hidden_size)
        state = (zeros, zeros)
    # nn.LSTM's own forward insists on its input width; the op it calls does not.
    outputs, hidden, cell = torch.lstm(inputs, state, weights, True, lstm.num_layers,
                                       lstm.dropout, lstm.training, False, True)
    return outputs, (hidden, cell)


class ArchitectureEncoder(nn.Module):
    """Token embedding, grouping into steps, LSTM, per-step and pooled normalisation."""

    def __init__(self, vocab_size: int, tokens_per_step: int, config: ControllerConfig):
        super().__init__()
        self.tokens_per_step = tokens_per_step
        self.token_embedding = nn.Embedding(vocab_size, config.embedding_size)
        self.lstm = _lstm(tokens_per_step * config.embedding_size, config.hidden_size,
                          config.encoder_layers, config.encoder_dropout)

    def forward(self, tokens: torch.Tensor) -> Encoded:
        # Consecutive tokens of one step (an (input, op) pair) are one LSTM input.
        outputs, _ = run_on_embeddings(self.lstm, self.token_embedding, tokens)  # [N, S, H]
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


def fast_tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh(x) as 2 sigmoid(2x) - 1 (equal to float rounding): PyTorch's CPU tanh took
    7x the time of its sigmoid on this machine."""
    return torch.sigmoid(2.0 * x).mul(2.0).sub(1.0)


class AttentionMemory(NamedTuple):
    """The encoder steps as the attention reads them (see :meth:`Attention.memory`)."""

    keys: torch.Tensor  # [N, S, H]
    values: torch.Tensor  # [N, S, H]


class Attention(nn.Module):
    """Dot-product attention with an input projection and a tanh output projection:
    ``tanh(W_o [softmax((W_q q) M^T) M ; q])`` for queries q and memory M."""

    def __init__(self, size: int):
        super().__init__()
        self.query_projection = nn.Linear(size, size, bias=False)
        self.output_projection = nn.Linear(2 * size, size, bias=False)

    def memory(self, steps: torch.Tensor) -> AttentionMemory:
        """Project the memory [N, S, H] once: ``(W_q q) . m = q . (W_q^T m)`` and
        ``W_o[:, :H] (sum_s a_s m_s) = sum_s a_s (W_o[:, :H] m_s)``."""
        size = steps.shape[-1]
        keys = F.linear(steps, self.query_projection.weight.t())
        values = F.linear(steps, self.output_projection.weight[:, :size])
        return AttentionMemory(keys, values)

    def forward(self, queries: torch.Tensor, memory: AttentionMemory) -> torch.Tensor:
        """queries [N, T, H] -> attended outputs [N, T, H]."""
        scores = torch.bmm(queries, memory.keys.transpose(1, 2))  # [N, T, S]
        context = torch.bmm(torch.softmax(scores, dim=-1), memory.values)  # [N, T, H]
        size = queries.shape[-1]
        return fast_tanh(context + F.linear(queries, self.output_projection.weight[:, size:]))


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
                memory: AttentionMemory, weights: list[torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """inputs [N, T] previous tokens -> log-probabilities [N, T, V] and the new state;
        ``memory`` is ``attention.memory(encoder step outputs)``, ``weights`` optionally
        ``one_hot_weights(lstm, token_embedding)`` (computed once for many calls)."""
        outputs, state = run_on_embeddings(self.lstm, self.token_embedding, inputs,
                                           state, weights)  # [N, T, H]
        attended = self.attention(outputs, memory)  # [N, T, H]
        # The logits as [N, V, T]: the log-softmax over V then runs along contiguous
        # positions (on the CPU 20x faster than along a last dimension of a dozen
        # tokens); the result is returned as its [N, T, V] view.
        logits = torch.matmul(self.output.weight, attended.transpose(1, 2)) \
            + self.output.bias.unsqueeze(-1)  # [N, V, T]
        return F.log_softmax(logits, dim=1).transpose(1, 2), state


class ControllerOutput(NamedTuple):
    """What the controller computes for a batch of token sequences."""
    predicted: torch.Tensor  # [N] predicted score in (0, 1)
    log_probs: torch.Tensor  # [N, L, V] teacher-forced reconstruction


ENCODING_MEMBERS = protocol_members(SequenceEncoding)  # what the controller uses of one


class Controller(nn.Module):
    """NAO encoder-predictor-decoder for the token encoding of one search space."""

    def __init__(self, encoding: SequenceEncoding, config: ControllerConfig | None = None):
        super().__init__()
        if isinstance(encoding, str):  # a space's name
            from naonet.spaces import get_space

            encoding = get_space(encoding)
        if not hasattr(encoding, "sequence_length") and callable(
                getattr(encoding, "encoding", None)):
            encoding = encoding.encoding()  # given the space: its encoding
        missing = [name for name in ENCODING_MEMBERS if not hasattr(encoding, name)]
        if missing:
            raise UserError(f"the controller's encoding lacks what the SequenceEncoding "
                            f"protocol asks for: {', '.join(missing)}")
        if not callable(getattr(encoding.space, "as_architecture", None)):
            raise UserError("the controller's encoding.space must be the space it encodes "
                            "(the controller reads architectures and their text with its "
                            f"as_architecture), got {type(encoding.space).__name__}")
        if config is not None and not isinstance(config, ControllerConfig):
            raise UserError(f"the controller takes a ControllerConfig, got a "
                            f"{type(config).__name__}; pass ControllerConfig(...)")
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
        """Step outputs and embedding of token sequences [N, L] (``Encoded``)."""
        return self.encoder(tokens)

    def predict(self, embedding: torch.Tensor) -> torch.Tensor:
        """Predicted score [N] of architecture embeddings [N, H]."""
        return self.predictor(embedding)

    @torch.no_grad()
    def predict_architectures(self, architectures: Sequence) -> torch.Tensor:
        """Predicted score [N] of each architecture, in eval mode (no dropout)."""
        if not architectures:
            return torch.zeros(0, device=self.legal_mask.device)
        with evaluating(self):
            return self.predict(self.encode(self.to_tokens(architectures)).embedding)

    def forward(self, tokens: torch.Tensor) -> ControllerOutput:
        """Predicted scores and teacher-forced reconstruction log-probabilities."""
        encoded = self.encode(tokens)
        state = self.decoder.initial_state(encoded.embedding)
        memory = self.decoder.attention.memory(encoded.step_outputs)
        log_probs, _ = self.decoder(self.teacher_forcing_input(tokens), state, memory)
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
        memory = self.decoder.attention.memory(encoded.step_outputs)
        weights = one_hot_weights(self.decoder.lstm, self.decoder.token_embedding)
        tokens = []
        for position in range(self.encoding.sequence_length):
            log_probs, state = self.decoder(token, state, memory, weights)  # [N, 1, V]
            token = self.legal_argmax(log_probs, start=position)  # [N, 1]
            tokens.append(token)
        return torch.cat(tokens, dim=1)


def legal_token_mask(encoding: SequenceEncoding) -> torch.Tensor:
    """Boolean [L, V]: True where the encoding allows a token at a position."""
    mask = torch.zeros(encoding.sequence_length, encoding.vocab_size, dtype=torch.bool)
    sos = getattr(encoding, "sos_token", SOS_TOKEN)
    for position in range(encoding.sequence_length):
        legal = list(encoding.legal_tokens(position))
        if not legal:
            raise UserError(f"encoding allows no token at position {position}; fix the "
                            "space's encoding")
        wrong = [token for token in legal
                 if not 0 <= token < encoding.vocab_size or token == sos]
        if wrong:  # the decoder would index past its vocabulary, or emit the start token
            raise UserError(f"encoding allows token {wrong[0]} at position {position}; "
                            f"a position's tokens lie in 0..{encoding.vocab_size - 1} (its "
                            f"vocab_size is {encoding.vocab_size}) and are not {sos}, the "
                            "token that starts every sequence; fix the space's encoding")
        mask[position, legal] = True
    return mask
