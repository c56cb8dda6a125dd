"""Training the controller on a pool of scored architectures, and its two quality measures.

Loss: ``mse_weight * MSE(predicted, target) + nll_weight * NLL(reconstruction)`` with
targets the pool's scores min-max normalised to [0, 1]. The pool is split into a
training and a validation part; the training part is augmented with equivalent
variants of its architectures (same network, other token sequence). Reported: the
predictor's pairwise accuracy and the greedy reconstruction's Hamming distance on the
validation part.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from naonet.analysis.correlation import pairwise_accuracy
from naonet.controller.config import ControllerTrainConfig
from naonet.controller.model import Controller
from naonet.errors import UserError
from naonet.runtime import small_kernel_threads
from naonet.seeding import caller_random_state_kept
from naonet.stopping import raise_if_stopped
from naonet.text import progress_bars_wanted


@dataclass(frozen=True)
class ControllerReport:
    """Outcome of one controller training."""

    train_loss: float  # mean loss of the last epoch
    train_mse: float
    train_nll: float
    loss_history: tuple[float, ...]  # mean loss of every epoch
    pairwise_accuracy: float  # on the validation part; nan with fewer than 2 architectures
    hamming_distance: float  # mean differing tokens of greedy reconstructions
    num_train: int  # after augmentation
    num_valid: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Split:
    train_tokens: torch.Tensor  # [N_train, L]
    train_targets: torch.Tensor  # [N_train]
    valid_tokens: torch.Tensor  # [N_valid, L]
    valid_targets: torch.Tensor  # [N_valid]


def train_controller(controller: Controller, architectures: Sequence, scores: Sequence[float],
                     config: ControllerTrainConfig, seed: int, progress: bool = False
                     ) -> ControllerReport:
    """Train ``controller`` in place on scored architectures (higher score = better).

    Deterministic given ``seed`` on the CPU: the split, the augmentation, the batch order
    and dropout all draw from generators seeded here (the global RNG state is restored).
    With ``valid_fraction`` 0 the metrics are measured on the (unaugmented) pool.
    """
    _check_pool(architectures, scores)
    if not isinstance(config, ControllerTrainConfig):
        raise UserError(f"train_controller takes a ControllerTrainConfig, got a "
                        f"{type(config).__name__}; pass ControllerTrainConfig() for the "
                        "defaults")
    space = controller.encoding.space  # text forms are read, other spaces refused
    architectures = [space.as_architecture(architecture, "train_controller")
                     for architecture in architectures]
    rng = random.Random(seed)
    split = _split_pool(controller, architectures, normalise_scores(scores), config, rng)
    with caller_random_state_kept(), \
            controller_execution(controller, config.batch_size) as shards:
        torch.manual_seed(seed)  # dropout draws from the global generator
        batch_order = torch.Generator().manual_seed(seed)
        optimizer = controller_optimizer(controller, config)
        history, last = [], (math.nan, math.nan, math.nan)
        epochs = tqdm(range(config.epochs), desc="controller",
                      disable=not progress_bars_wanted(progress),
                      leave=False)
        for _ in epochs:
            raise_if_stopped()  # a Ctrl-C its handler's exception failed to deliver
            last = train_epoch(controller, optimizer, split, config, batch_order, shards)
            history.append(last[0])
            epochs.set_postfix(loss=f"{last[0]:.4f}")
        accuracy, distance = evaluate_controller(controller, split.valid_tokens,
                                                 split.valid_targets)
    return ControllerReport(last[0], last[1], last[2], tuple(history), accuracy, distance,
                            len(split.train_tokens), len(split.valid_tokens))


def controller_optimizer(controller: Controller, config: ControllerTrainConfig
                         ) -> torch.optim.Adam:
    """Adam as released, updating all parameters in one multi-tensor pass (the same
    arithmetic as PyTorch's per-parameter loop, its default on the CPU, in fewer
    kernels)."""
    return torch.optim.Adam(controller.parameters(), lr=config.learning_rate,
                            weight_decay=config.weight_decay, foreach=True)


def train_epoch(controller: Controller, optimizer: torch.optim.Optimizer, split: _Split,
                config: ControllerTrainConfig, generator: torch.Generator,
                shards: StepShards | None = None) -> tuple[float, float, float]:
    """One pass over the shuffled training part: mean (loss, mse, nll) per architecture."""
    controller.train()
    count = len(split.train_tokens)
    order = torch.randperm(count, generator=generator).to(split.train_tokens.device)
    totals = torch.zeros(3, device=split.train_tokens.device)
    for start in range(0, count, config.batch_size):
        batch = order[start:start + config.batch_size]
        losses = train_step(controller, optimizer, split.train_tokens[batch],
                            split.train_targets[batch], config, shards)
        totals += losses * len(batch)
    return tuple((totals / count).tolist())


def train_step(controller: Controller, optimizer: torch.optim.Optimizer, tokens: torch.Tensor,
               targets: torch.Tensor, config: ControllerTrainConfig,
               shards: StepShards | None = None) -> torch.Tensor:
    """One optimizer step; returns the detached (loss, mse, nll). With ``shards`` the
    batch's gradient is computed in parts side by side (see :class:`StepShards`)."""
    optimizer.zero_grad(set_to_none=True)
    if shards is not None and shards.splits(len(tokens)):
        losses = shards.backward(tokens, targets, config)
    else:
        losses = batch_losses(controller, tokens, targets, config, len(tokens))
        losses[0].backward()
    torch.nn.utils.clip_grad_norm_(controller.parameters(), config.grad_clip)
    optimizer.step()
    return losses.detach()


def batch_losses(controller: Controller, tokens: torch.Tensor, targets: torch.Tensor,
                 config: ControllerTrainConfig, batch_size: int) -> torch.Tensor:
    """(loss, mse, nll) of ``tokens``' share of a batch of ``batch_size``: the batch's
    means when ``tokens`` is the whole batch, a part's sums divided by the batch's
    counts otherwise (so the parts' values add up to the batch's)."""
    predicted, log_probs = controller(tokens)  # [B], [B, L, V]
    mse = F.mse_loss(predicted, targets, reduction="sum") / batch_size
    # [N, V, L] against [N, L]: the decoder's log-probabilities in their stored layout.
    nll = F.nll_loss(log_probs.transpose(1, 2), tokens, reduction="sum") / (
        batch_size * tokens.shape[1])
    loss = config.mse_weight * mse + config.nll_weight * nll
    return torch.stack((loss, mse, nll))


MIN_SHARD = 32  # architectures; smaller matrix products lose more than a core gains


class StepShards:
    """Computes a step's gradient in up to ``threads`` parts side by side, one thread
    each, and adds the parts' gradients in a fixed order.

    The CPU runs the controller's small kernels best on one thread each
    (``runtime.small_kernel_threads``); this puts the other cores to work on other rows
    of the batch instead. The sum of the parts' gradients is the batch's gradient (up to
    float rounding), and a run is deterministic. Not used when dropout is active (the
    parts would draw from one generator in an unfixed order) or with one thread.
    """

    def __init__(self, controller: Controller, threads: int, batch_size: int):
        self.controller = controller
        self.parts = min(threads, batch_size // MIN_SHARD)
        self.active = self.parts > 1 and not _draws_dropout(controller)
        self.pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> StepShards:
        if self.active:
            self.pool = ThreadPoolExecutor(self.parts, thread_name_prefix="controller")
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    def splits(self, rows: int) -> bool:
        """Whether a batch of ``rows`` is computed in parts (each part at least
        ``MIN_SHARD`` rows; an epoch's short last batch may be whole)."""
        return self.active and rows >= self.parts * MIN_SHARD

    def backward(self, tokens: torch.Tensor, targets: torch.Tensor,
                 config: ControllerTrainConfig) -> torch.Tensor:
        """Set every parameter's gradient for the batch; returns its (loss, mse, nll)."""
        parameters = list(self.controller.parameters())

        def part(rows: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
            torch.set_num_threads(1)  # OpenMP's thread count is per calling thread
            losses = batch_losses(self.controller, tokens[rows], targets[rows], config,
                                  len(tokens))
            return (torch.autograd.grad(losses[0], parameters, allow_unused=True),
                    losses.detach())

        rows = torch.arange(len(tokens), device=tokens.device).tensor_split(self.parts)
        results = list(self.pool.map(part, rows))
        for index, parameter in enumerate(parameters):
            gradient = None
            for gradients, _ in results:
                if gradients[index] is not None:
                    gradient = gradients[index] if gradient is None else \
                        gradient + gradients[index]
            parameter.grad = gradient
        return sum((losses for _, losses in results[1:]), results[0][1])


@contextmanager
def controller_execution(controller: Controller, batch_size: int) -> Iterator[StepShards]:
    """How the controller's steps run on its device for the duration: one thread per
    kernel under passive waiting (``runtime.small_kernel_threads``), the freed cores
    computing parts of each batch side by side (the :class:`StepShards` yielded)."""
    with small_kernel_threads(controller.legal_mask.device) as threads, \
            StepShards(controller, threads, batch_size) as shards:
        yield shards


def _draws_dropout(controller: Controller) -> bool:
    return any(
        (isinstance(module, torch.nn.Dropout) and module.p > 0)
        or (isinstance(module, torch.nn.LSTM) and module.num_layers > 1 and module.dropout > 0)
        for module in controller.modules())


@torch.no_grad()
def evaluate_controller(controller: Controller, tokens: torch.Tensor, targets: torch.Tensor
                        ) -> tuple[float, float]:
    """(pairwise accuracy of the predictor, Hamming distance of greedy reconstruction)."""
    controller.eval()
    encoded = controller.encode(tokens)
    predicted = controller.predict(encoded.embedding)
    reconstructed = controller.decode_greedy(encoded)
    return (predictor_pairwise_accuracy(targets, predicted),
            hamming_distance(tokens, reconstructed))


def normalise_scores(scores: Sequence[float]) -> torch.Tensor:
    """Scores min-max normalised to [0, 1]; all 0.5 when every score is equal."""
    values = torch.tensor([float(score) for score in scores], dtype=torch.float64)
    if not torch.isfinite(values).all():
        raise UserError("architecture scores contain nan or inf; score every architecture "
                        "before training the controller")
    low, high = values.min(), values.max()
    if high == low:  # no ranking information: the middle of the range
        return torch.full_like(values, 0.5, dtype=torch.float32)
    return ((values - low) / (high - low)).float()


def predictor_pairwise_accuracy(targets: torch.Tensor, predicted: torch.Tensor) -> float:
    """The library's pairwise accuracy of the predictions against the targets; nan with
    fewer than 2 architectures or a non-finite value (a diverged predictor).

    The released code counts a pair tied in the targets as ordered alike when the
    predictions are ordered either way (``>=``); here such pairs are left out and a tie
    in the predictions counts one half, as everywhere in the library.
    """
    scores, reference = predicted.reshape(-1).tolist(), targets.reshape(-1).tolist()
    if len(scores) < 2 or not all(map(math.isfinite, scores + reference)):
        return math.nan
    return pairwise_accuracy(scores, reference)


def hamming_distance(tokens: torch.Tensor, other: torch.Tensor) -> float:
    """Mean number of positions where two token tensors [N, L] differ."""
    if len(tokens) == 0:
        return math.nan
    return (tokens != other).sum(dim=1).float().mean().item()


# --------------------------------------------------------------------------- data
def _check_pool(architectures: Sequence, scores: Sequence[float]) -> None:
    if len(architectures) != len(scores):
        raise UserError(f"{len(architectures)} architectures but {len(scores)} scores; give "
                        "one score per architecture")
    if len(architectures) < 2:
        raise UserError(f"the controller needs at least 2 scored architectures, got "
                        f"{len(architectures)}; score a larger pool")


def _split_pool(controller: Controller, architectures: list, targets: torch.Tensor,
                config: ControllerTrainConfig, rng: random.Random) -> _Split:
    """Shuffle, split train/valid, augment the training part; tensors on the device."""
    order = list(range(len(architectures)))
    rng.shuffle(order)
    num_valid = _num_valid(len(order), config.valid_fraction)
    train_index, valid_index = order[:len(order) - num_valid], order[len(order) - num_valid:]
    if not valid_index:
        valid_index = train_index
    train_archs = [architectures[i] for i in train_index]
    train_targets = [targets[i] for i in train_index]
    variants, variant_targets = [], []
    for _ in range(config.augment_factor - 1):
        for architecture, target in zip(train_archs, train_targets):
            variants.append(controller.encoding.equivalent_variant(architecture, rng))
            variant_targets.append(target)
    place = {"device": controller.legal_mask.device,
             "dtype": next(controller.parameters()).dtype}
    return _Split(
        controller.to_tokens(train_archs + variants),
        torch.stack(train_targets + variant_targets).to(**place),
        controller.to_tokens([architectures[i] for i in valid_index]),
        torch.stack([targets[i] for i in valid_index]).to(**place),
    )


def _num_valid(count: int, fraction: float) -> int:
    if fraction == 0:
        return 0
    # At least one validation and one training architecture.
    return min(max(1, int(count * fraction)), count - 1)
