"""One NAO round, the step every NAO search repeats: fit the controller to the scored
architectures, then generate new ones from the best.

The one-shot NAO-V2 search (:mod:`naonet.search.loop`, scores from the supernet) and
NAO over any evaluator (:mod:`naonet.strategies.nao`, for example a benchmark table)
both call :func:`nao_round`. What differs between them is a field of
:class:`RoundConfig`, with the defaults of each use documented where it is built:

* ``score_transform``: the controller learns the scores themselves (``raw``; the
  training min-max normalises them, as released) or their ranks (``rank``: a few
  broken architectures then cannot squeeze every good one into a sliver of [0, 1]);
* ``fresh_controller``: re-initialise the controller every round, or keep training one
  (released);
* ``fill``: what happens when the decoder finds fewer new architectures than asked up to
  the largest step size: nothing (released: the round is short), random new ones,
  ``mutation``: new one-entry mutations of the best architectures (taken in turn), which
  keeps a round near the top when a budget turns many decoded proposals down, or
  ``predicted``: of ``PREDICTED_FILL_FACTOR`` times as many such mutations, the ones the
  round's predictor scores highest (the controller still chooses what is evaluated).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from naonet.analysis.correlation import average_ranks
from naonet.controller.generation import RELEASED_MAX_LAMBDA, generate_architectures
from naonet.controller.model import Controller
from naonet.controller.training import ControllerReport, train_controller
from naonet.errors import UserError
from naonet.options import check_field_types, flag_name
from naonet.spaces.protocol import sample_unseen

SCORE_TRANSFORMS = ("raw", "rank")
FILLS = ("none", "random", "mutation", "predicted")
PREDICTED_FILL_FACTOR = 10  # mutations drawn per missing architecture for 'predicted'
MAX_FILL_MUTATIONS = 10_000  # mutations tried before a mutation fill gives up (a tiny space)


@dataclass(frozen=True)
class RoundConfig:
    """What one NAO round learns from and what it generates (defaults: the released
    NAO-V2 search)."""

    seed_count: int = 100  # generate from the best this many
    new_count: int = 300  # new architectures asked of the decoder
    max_lambda: int = RELEASED_MAX_LAMBDA  # largest step size tried
    score_transform: str = "raw"
    fresh_controller: bool = False
    fill: str = "none"

    def __post_init__(self) -> None:
        check_field_types(self)
        # named by the flags of the searches that set them (the one-shot search's
        # --new-architectures and the table search's --candidates-per-round are checked
        # before a round is configured)
        for name, least in (("seed_count", 1), ("new_count", 0), ("max_lambda", 1)):
            if getattr(self, name) < least:
                raise UserError(f"{flag_name(name)} must be >= {least}, got "
                                f"{getattr(self, name)}")
        if self.score_transform not in SCORE_TRANSFORMS:
            raise UserError(f"unknown score transform {self.score_transform!r}; use one of: "
                            f"{', '.join(SCORE_TRANSFORMS)}")
        if self.fill not in FILLS:
            raise UserError(f"unknown fill {self.fill!r}; use one of: {', '.join(FILLS)}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RoundOutcome:
    """The controller after the round, what it generated, and how it trained."""

    controller: Controller
    new: list  # new architectures, generated ones first, then any fill
    generated: int  # how many of ``new`` the decoder found
    lambda_reached: int
    report: ControllerReport
    rejected: int = 0  # decoded architectures over the search's budget
    generate_seconds: float = 0.0  # of the round's time, what generation took


def nao_round(controller: Controller | None, make_controller: Callable[[], Controller],
              space, architectures: Sequence, scores: Sequence[float], config: RoundConfig,
              train_config, seed: int, rng: random.Random | None = None,
              progress: bool = False) -> RoundOutcome:
    """Fit the controller to ``scores`` (higher is better) and generate from the best.

    ``make_controller()`` builds a fresh controller (the first round, or every round
    with ``fresh_controller``); ``rng`` draws the fills.
    """
    if controller is None or config.fresh_controller:
        controller = make_controller()
    # Text forms become architectures first: the fill-ups compare them with new ones.
    architectures = [controller.encoding.space.as_architecture(architecture, "nao_round")
                     for architecture in architectures]
    targets = transform_scores(list(scores), config.score_transform)
    report = train_controller(controller, architectures, targets, train_config, seed=seed,
                              progress=progress)
    best_first = sorted(range(len(scores)), key=lambda i: -scores[i])  # stable on ties
    seeds = [architectures[i] for i in best_first[:config.seed_count]]
    # A space with a budget (constraints.FeasibleSpace) says which architectures fit it.
    accept = getattr(space, "feasible", None)
    started = time.perf_counter()
    result = generate_architectures(controller, seeds, known=architectures,
                                    count=config.new_count, max_lambda=config.max_lambda,
                                    accept=accept)
    new = list(result.architectures)
    if config.fill != "none" and len(new) < config.new_count:
        known, missing = set(architectures) | set(new), config.new_count - len(new)
        rng = rng or random.Random(seed)
        if config.fill == "mutation":
            new += mutations_new(space, seeds, known, missing, rng)
        elif config.fill == "predicted":
            new += best_predicted(controller, mutations_new(
                space, seeds, known, missing * PREDICTED_FILL_FACTOR, rng), missing)
        new += random_new(space, known, config.new_count - len(new), rng)
    return RoundOutcome(controller, new, len(result.architectures), result.lambda_reached,
                        report, result.rejected, time.perf_counter() - started)


def mutations_new(space, parents: Sequence, known: set, count: int,
                  rng: random.Random) -> list:
    """Up to ``count`` one-entry mutations of ``parents`` (best first, taken in turn),
    none of them in ``known`` (a space with a budget mutates within it)."""
    found: list = []
    for attempt in range(MAX_FILL_MUTATIONS):
        if len(found) == count or not parents:
            break
        child = space.mutate(parents[attempt % len(parents)], rng)
        if child not in known:
            known.add(child)
            found.append(child)
    return found


def best_predicted(controller: Controller, candidates: Sequence, count: int) -> list:
    """The ``count`` of ``candidates`` with the highest predicted score (stable on ties)."""
    if len(candidates) <= count:
        return list(candidates)
    predicted = controller.predict_architectures(candidates).tolist()
    order = sorted(range(len(candidates)), key=lambda i: -predicted[i])
    return [candidates[i] for i in order[:count]]


def random_new(space, known: set, count: int, rng: random.Random) -> list:
    """``count`` uniformly random architectures, none of them in ``known``."""
    found: list = []
    for _ in range(count):
        architecture = sample_unseen(space, known.__contains__, rng)
        if architecture is None:
            break  # the space is (nearly) exhausted
        known.add(architecture)
        found.append(architecture)
    return found


def transform_scores(scores: list[float], transform: str) -> list[float]:
    """The controller's training targets: the scores, or their ranks (ties averaged)."""
    if transform == "raw":
        return list(scores)
    return (average_ranks(np.asarray(scores, dtype=float)) - 1.0).tolist()  # 0-based
