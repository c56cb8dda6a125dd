"""Generating new architectures by moving seed embeddings towards a higher predicted score.

The seeds are encoded once; the gradient of the predicted score with respect to the
per-step encoder outputs is taken once (it does not depend on the step size). For
step size lambda = 1, 2, 3, ... the outputs move ``lambda * gradient`` upward, are
re-normalised and pooled into a new embedding, and the decoder greedily decodes all
seeds in one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from naonet.controller.model import Controller, Encoded, pool_steps
from naonet.errors import UserError
from naonet.runtime import evaluating, small_kernel_threads

# The released loop stops once the step size exceeds its max_step_size 50, after
# generating with it: step sizes 1 .. 51 are tried.
RELEASED_MAX_LAMBDA = 51


@dataclass(frozen=True)
class GenerationResult:
    """New architectures in the order found, the last step size tried, and how many new
    decoded architectures ``accept`` turned down (over a search's budget)."""

    architectures: tuple
    lambda_reached: int
    rejected: int = 0


def generate_architectures(controller: Controller, seeds: Sequence, known: Iterable,
                           count: int, max_lambda: int = RELEASED_MAX_LAMBDA,
                           accept: Callable[[object], bool] | None = None) -> GenerationResult:
    """Up to ``count`` architectures that are neither ``known`` nor generated twice (and
    that ``accept`` accepts, when given: the step size grows past rejected ones).

    Step sizes 1 .. ``max_lambda`` (by default the released search's 51) are
    tried in turn until ``count`` are found; within a
    step size the seeds are taken in order.
    """
    if count < 0:
        raise UserError(f"cannot generate {count} architectures; ask for 0 or more")
    if max_lambda < 1:
        raise UserError(f"max_lambda must be >= 1, got {max_lambda}")
    if count == 0:
        return GenerationResult((), 0)
    if not seeds:
        raise UserError("no seed architectures to generate from; pass the top of the pool")
    space = controller.encoding.space  # known ones may be given in text form
    seen = {space.as_architecture(architecture, "generate_architectures")
            for architecture in known}
    with small_kernel_threads(controller.legal_mask.device):
        return _generate(controller, seeds, seen, count, max_lambda, accept)


def _generate(controller: Controller, seeds: Sequence, seen: set, count: int,
              max_lambda: int, accept: Callable[[object], bool] | None) -> GenerationResult:
    found: list = []
    rejected = 0
    step_outputs, gradient = score_gradient(controller, controller.to_tokens(seeds))
    for step_size in range(1, max_lambda + 1):
        sequences = shifted_sequences(controller, step_outputs, gradient, step_size)
        for architecture in controller.from_tokens(sequences):
            if architecture in seen:
                continue
            seen.add(architecture)
            if accept is not None and not accept(architecture):
                rejected += 1
                continue
            found.append(architecture)
            if len(found) == count:
                return GenerationResult(tuple(found), step_size, rejected)
    return GenerationResult(tuple(found), max_lambda, rejected)


def score_gradient(controller: Controller, tokens: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-step encoder outputs [N, S, H] and d(predicted score)/d(outputs) [N, S, H]."""
    with evaluating(controller), torch.no_grad():
        step_outputs = controller.encode(tokens).step_outputs
    # The score depends on the outputs only through pooling and the predictor, so the
    # gradient is taken from there on (parameters need not require grad).
    with evaluating(controller), torch.enable_grad():
        step_outputs = step_outputs.detach().requires_grad_(True)
        predicted = controller.predict(pool_steps(step_outputs))  # [N]
        (gradient,) = torch.autograd.grad(predicted.sum(), step_outputs)
    return step_outputs.detach(), gradient


@torch.no_grad()
def shifted_sequences(controller: Controller, step_outputs: torch.Tensor,
                      gradient: torch.Tensor, step_size: float) -> torch.Tensor:
    """Greedy decoding [N, L] of outputs moved ``step_size * gradient`` upward."""
    moved = F.normalize(step_outputs + step_size * gradient, p=2, dim=-1)  # [N, S, H]
    with evaluating(controller):
        return controller.decode_greedy(Encoded(moved, pool_steps(moved)))


