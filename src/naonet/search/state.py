"""What a search carries from step to step, and its atomic checkpoint.

The search advances through phases; each round is ``train`` (the supernet, epoch by
epoch), ``score`` (the whole pool) and, except in the last round, ``controller``
(train it, generate new architectures). After the last round comes ``rerank``
(architecture by architecture, epoch by epoch), then ``done``. The checkpoint is
written after every supernet epoch, every re-rank epoch (re-rank trainings run in
worker processes: every training) and every phase, so a killed search reruns at most
one epoch (one training).

Every random stream that a step draws from is seeded from ``(seed, phase, round,
epoch)`` when the step starts (:func:`naonet.seeding.derive_seed`), so a resumed search
draws exactly what the uninterrupted one drew.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from naonet.errors import UserError
from naonet.seeding import capture_rng_state
from naonet.spaces import SearchSpace
from naonet.training.checkpoint import (
    START_OVER,
    atomic_save,
    check_same_processes,
    check_same_run,
    load_checkpoint,
    restoring,
)

CHECKPOINT_FORMAT = 1

TRAIN, SCORE, CONTROLLER, RERANK, DONE = "train", "score", "controller", "rerank", "done"
PHASES = (TRAIN, SCORE, CONTROLLER, RERANK, DONE)

# Options that may change between a search and its resumption: they change how it runs,
# not what it computes (device and threads only through the order of floating-point sums;
# not --pipeline: the two pipelines draw their augmentations differently).
RESUMABLE_CHANGES = {"workers", "log_every", "device", "output", "data", "download",
                     "plot", "host_allocator", "rerank_processes", "threads",
                     # read before the first checkpoint only; for the reports only (a
                     # run folder's config.yaml names both by their absolute paths)
                     "seed_pool_file", "reference"}


@dataclass
class PoolEntry:
    """One architecture of the pool and everything the search learned about it."""

    architecture: object  # an architecture of the search's space
    born: int  # the round whose child pool it belonged to
    # the supernet's score at the latest round, higher is better: validation accuracy as a
    # fraction, or minus the mean cross-entropy (SearchConfig.score_metric 'loss')
    score: float = math.nan
    # The latest controller's predicted (normalised) score; for architectures of the last
    # round, the prediction of the controller that generated them.
    prediction: float = math.nan
    rerank: float = math.nan  # validation top-1 (a fraction) after training from scratch
    scores: dict[int, float] = field(default_factory=dict)  # round -> supernet score
    # each re-rank training's validation top-1 so far (``rerank`` is their mean)
    rerank_runs: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"arch": self.architecture.to_qualified_string(), "born": self.born,
                "score": json_number(self.score), "prediction": json_number(self.prediction),
                "rerank": json_number(self.rerank),
                "scores": {str(r): s for r, s in self.scores.items()},
                "rerank_runs": list(self.rerank_runs)}

    @classmethod
    def from_dict(cls, values: dict, space: SearchSpace) -> PoolEntry:
        return cls(space.parse(values["arch"]), values["born"],
                   _float(values["score"]), _float(values["prediction"]),
                   _float(values["rerank"]),
                   {int(r): s for r, s in values["scores"].items()},
                   list(values.get("rerank_runs", [])))


@dataclass
class SearchState:
    """The search's position and pool; plain values only (saved in the checkpoint)."""

    round: int = 0
    phase: str = TRAIN
    epoch: int = 0  # epochs finished within the phase (supernet or current re-rank)
    pool: list[PoolEntry] = field(default_factory=list)  # scored so far, best first
    children: list = field(default_factory=list)  # trained this round
    child_predictions: list[float] = field(default_factory=list)  # by the generating controller
    # re-rank trainings finished (each architecture of the top trains rerank_repeats
    # times, one after the other)
    rerank_index: int = 0
    rounds_log: list[dict] = field(default_factory=list)  # one summary per round
    # the round's last supernet epoch (checkpointed: a resumed round still reports it)
    supernet_loss: float = math.nan
    supernet_top1: float = math.nan  # a fraction
    timings: dict[str, float] = field(default_factory=dict)  # wall seconds per phase
    # the timings' sum when the round began: the round's seconds add up over the
    # processes that worked on it (None: a checkpoint from before it was kept)
    round_started_at: float | None = None
    # the latencies timed of the pool and the child pool, by CostMeter key: a resumed or
    # rerun search reports and judges the figures it ran with, not a new timing
    latencies: dict[str, dict] = field(default_factory=dict)
    # where random draws never meet the budget, the architectures random draws walk from
    # (FeasibleSpace.footholds): a resumed search walks on from the same
    footholds: list[str] = field(default_factory=list)

    def architectures(self) -> list:
        return [entry.architecture for entry in self.pool]

    def to_dict(self) -> dict:
        return {"round": self.round, "phase": self.phase, "epoch": self.epoch,
                "pool": [entry.to_dict() for entry in self.pool],
                "children": [arch.to_qualified_string() for arch in self.children],
                "child_predictions": self.child_predictions,
                "rerank_index": self.rerank_index, "rounds_log": self.rounds_log,
                "supernet_loss": json_number(self.supernet_loss),
                "supernet_top1": json_number(self.supernet_top1),
                "timings": dict(self.timings), "round_started_at": self.round_started_at,
                "latencies": dict(self.latencies), "footholds": list(self.footholds)}

    @classmethod
    def from_dict(cls, values: dict, space: SearchSpace) -> SearchState:
        if values["phase"] not in PHASES:
            raise UserError(f"search checkpoint has unknown phase {values['phase']!r}; it was "
                            "written by another version: start a new --output")
        return cls(values["round"], values["phase"], values["epoch"],
                   [PoolEntry.from_dict(entry, space) for entry in values["pool"]],
                   [space.parse(text) for text in values["children"]],
                   list(values["child_predictions"]), values["rerank_index"],
                   list(values["rounds_log"]), _float(values.get("supernet_loss")),
                   _float(values.get("supernet_top1")), dict(values.get("timings", {})),
                   values.get("round_started_at"), dict(values.get("latencies", {})),
                   list(values.get("footholds", [])))


def json_number(value: float) -> float | None:
    """JSON has no nan: missing values are null."""
    return None if value is None or math.isnan(value) else float(value)


def _float(value: float | None) -> float:
    return math.nan if value is None else float(value)


# ----------------------------------------------------------------------- checkpoint
def save_checkpoint(path: Path, state: SearchState, config_dict: dict, modules: dict,
                    classes: list[str] | None = None, world_size: int = 1,
                    training_images: int | None = None) -> None:
    """Write the state, the config, the data's classes and number of training images (a
    resume checks them; None: not checked), the number of processes and every module's
    ``state_dict`` atomically."""
    atomic_save({"format": CHECKPOINT_FORMAT, "state": state.to_dict(),
                 "config": config_dict, "classes": None if classes is None else list(classes),
                 "training_images": training_images,
                 "world_size": world_size,
                 "rng": capture_rng_state(),
                 **{name: module.state_dict() for name, module in modules.items()
                    if module is not None}}, path)


def load_search_checkpoint(path: Path, config_dict: dict, world_size: int = 1
                           ) -> dict | None:
    """The checkpoint of ``path`` if it exists and belongs to this search (run on
    ``world_size`` processes), else None."""
    if not path.exists():
        return None
    checkpoint = load_checkpoint(path, START_OVER)
    if checkpoint.get("format") != CHECKPOINT_FORMAT or "state" not in checkpoint:
        raise UserError(f"{path} is not a naonet search checkpoint; pass another --output")
    with restoring(path):
        check_resumable(checkpoint.get("config", {}), config_dict, path)
    check_same_processes(path, checkpoint.get("world_size"), world_size, "search")
    return checkpoint


# Options added after run folders were first written, with the value every search made
# before them ran with: a saved config without the key resumes only with that value.
ADDED_OPTIONS = {"strategy": "nao", "few_shot_split": None, "few_shot_after": 1,
                 "rerank_common_seeds": False, "rerank_turns": None, "rerank_repeats": 1}


def check_resumable(saved: dict, current: dict, path: Path) -> None:
    """A run folder resumes only the search it was made by."""
    check_same_run(saved, as_saved(saved, current), path, RESUMABLE_CHANGES, "search",
                   ADDED_OPTIONS)


def as_saved(saved: dict, current: dict) -> dict:
    """``current`` with the options that resolve alike written as ``saved`` has them (the
    pipeline as it resolves; a latency batch that no latency limit reads)."""
    from naonet.constraints import latency_batch_as_saved
    from naonet.data.registry import pipeline_as_saved

    return latency_batch_as_saved(saved, pipeline_as_saved(saved, current))

