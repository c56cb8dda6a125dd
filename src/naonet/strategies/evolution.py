"""Regularized evolution (Real et al. 2019): tournament selection, mutation, and the
oldest member of the population dies each step."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from naonet.errors import UserError
from naonet.options import check_field_types
from naonet.strategies.base import (
    Evaluator,
    SearchSpace,
    Seen,
    query_random,
    sample_new,
    search_inputs,
)


@dataclass(frozen=True)
class EvolutionConfig:
    """Population size P, tournament size S, and how hard to look for an unseen child."""

    population_size: int = 10
    sample_size: int = 3
    # A child already queried costs nothing on a table, which would let evolution re-add
    # old members for free; so mutate again until the child is new (else draw at random).
    mutation_tries: int = 50

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.population_size < 1 or not 1 <= self.sample_size <= self.population_size:
            raise UserError(f"evolution needs 1 <= --sample-size ({self.sample_size}) <= "
                            f"--population-size ({self.population_size})")


def regularized_evolution(space: SearchSpace, evaluator: Evaluator, seed: int,
                          config: EvolutionConfig | None = None) -> None:
    """Evolve a population until the evaluator's budget is spent."""
    space, config, seed = search_inputs(space, evaluator, seed, config, EvolutionConfig,
                                        "evolution")
    rng = random.Random(seed)
    query_random(space, evaluator, rng, config.population_size)
    population = deque(evaluator.history())  # (architecture, score), oldest first
    while not evaluator.exhausted:
        parent = tournament_winner(list(population), config.sample_size, rng)
        child = new_child(space, evaluator, parent, rng, config.mutation_tries)
        population.append((child, evaluator.query(child)))
        population.popleft()


def evolve_generation(space: SearchSpace, population: list[tuple], count: int,
                      rng: random.Random, config: EvolutionConfig, seen: Seen) -> list:
    """``count`` new children, each a mutation of the winner of a tournament of
    ``sample_size`` members of ``population`` ((architecture, score), the youngest
    members): regularized evolution proposing a whole generation at once, as the one-shot
    search scores a round's children together. Children join ``seen``."""
    children = []
    for _ in range(count):
        parent = tournament_winner(population, config.sample_size, rng)
        child = new_child(space, seen, parent, rng, config.mutation_tries)
        seen.add(child)
        children.append(child)
    return children


def tournament_winner(population: list[tuple], sample_size: int, rng: random.Random):
    """The best-scored architecture of ``sample_size`` members of ``population``
    ((architecture, score) pairs) drawn at random (all of them if it holds fewer)."""
    tournament = rng.sample(population, min(sample_size, len(population)))
    return max(tournament, key=lambda member: member[1])[0]


def new_child(space: SearchSpace, evaluator: Evaluator, parent, rng: random.Random,
              tries: int):
    """A mutation of ``parent`` not queried yet (a random new architecture if none is)."""
    for _ in range(tries):
        child = space.mutate(parent, rng)
        if not evaluator.known(child):
            return child
    return sample_new(space, evaluator, rng)
