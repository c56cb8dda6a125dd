"""NAO's predictor loop over an evaluator with a query budget (NAO on a benchmark table).

1. Query ``initial_queries`` random architectures.
2. Until the budget is spent: train the controller on every architecture queried so
   far with its validation score; move the embeddings of the ``seed_count`` best ones
   along the predictor's gradient and decode (lambda = 1, 2, ...) until
   ``candidates_per_round`` new architectures appear; query them.

Hidden choices of the loop are named options of :class:`NAOConfig`.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

from naonet.controller import (
    Controller,
    ControllerConfig,
    ControllerTrainConfig,
    generate_architectures,
    train_controller,
)
from naonet.errors import UserError
from naonet.strategies.base import Evaluator, SearchSpace, query_random, top_architectures

SCORE_TRANSFORMS = ("raw", "rank")


def table_controller_training() -> ControllerTrainConfig:
    """Controller training for small pools: no augmentation, no held-out part."""
    return ControllerTrainConfig(epochs=300, batch_size=50, valid_fraction=0.0,
                                 augment_factor=1)


@dataclass(frozen=True)
class NAOConfig:
    """Options of the NAO predictor loop."""

    initial_queries: int = 20
    candidates_per_round: int = 10
    seed_count: int = 10  # generate from the best this many architectures
    max_lambda: int = 50
    # 'rank': train on the rank of each score rather than the score, so a few broken
    # architectures (10% accuracy) do not squeeze all good ones into a sliver of [0, 1].
    score_transform: str = "rank"
    fresh_controller: bool = True  # re-initialise the controller every round
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    training: ControllerTrainConfig = field(default_factory=table_controller_training)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.initial_queries < 2:
            raise UserError(f"NAO needs at least 2 initial queries to train its controller, "
                            f"got {self.initial_queries}")
        if self.candidates_per_round < 1 or self.seed_count < 1:
            raise UserError("candidates per round and seed count must be >= 1")
        if self.score_transform not in SCORE_TRANSFORMS:
            raise UserError(f"unknown score transform {self.score_transform!r}; use one of: "
                            f"{', '.join(SCORE_TRANSFORMS)}")

    def to_dict(self) -> dict:
        return asdict(self)


def nao_search(space: SearchSpace, evaluator: Evaluator, seed: int,
               config: NAOConfig | None = None) -> None:
    """Run NAO's predictor loop until the evaluator's budget is spent."""
    config = config or NAOConfig()
    rng = random.Random(seed)
    query_random(space, evaluator, rng, config.initial_queries)
    controller = None
    round_index = 0
    while not evaluator.exhausted:
        if controller is None or config.fresh_controller:
            controller = new_controller(space, config, seed * 1000 + round_index)
        fit_controller(controller, evaluator, config, seed * 1000 + round_index)
        count = min(config.candidates_per_round, evaluator.remaining)
        candidates = propose(controller, evaluator, config, count)
        for architecture in candidates:
            evaluator.query(architecture)
        # The decoder may find no new architecture at any step size; random ones keep
        # the loop going (and make progress) rather than stall.
        query_random(space, evaluator, rng, count - len(candidates))
        round_index += 1


def new_controller(space: SearchSpace, config: NAOConfig, seed: int) -> Controller:
    """A freshly initialised controller (initialisation fixed by ``seed``)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Controller(space.encoding(), config.controller).to(config.device)


def fit_controller(controller: Controller, evaluator: Evaluator, config: NAOConfig,
                   seed: int) -> None:
    """Train the controller on every architecture queried so far."""
    history = evaluator.history()
    architectures = [architecture for architecture, _ in history]
    scores = transform_scores([score for _, score in history], config.score_transform)
    train_controller(controller, architectures, scores, config.training, seed=seed)


def propose(controller: Controller, evaluator: Evaluator, config: NAOConfig,
            count: int) -> tuple:
    """Up to ``count`` new architectures generated from the best queried ones."""
    seeds = top_architectures(evaluator, config.seed_count)
    known = [architecture for architecture, _ in evaluator.history()]
    return generate_architectures(controller, seeds, known, count,
                                  max_lambda=config.max_lambda).architectures


def transform_scores(scores: list[float], transform: str) -> list[float]:
    """The controller's training targets: the scores, or their ranks (ties averaged)."""
    if transform == "raw":
        return list(scores)
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2
        start = end + 1
    return ranks
