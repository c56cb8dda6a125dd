"""The paper's ranking experiment: how well does a weight-sharing supernet, trained with
uniform or balanced architecture sampling, rank architectures against ground truth?

For each sampling: a fresh supernet (same initialisation, same data order) is trained
for ``supernet_epochs`` epochs on the whole space of a benchmark table, one sampled
architecture per step, with the search's own engine (the space's supernet,
:class:`~naonet.supernet.PoolSampler`, :func:`~naonet.training.train_one_epoch`, the
search's optimizer and schedule); a fixed random sample of the table is scored on the
search's fixed scoring batches (:func:`~naonet.search.scoring.score_pool`) and
compared with the table. Every ``score_every`` epochs the sample is scored too, which
gives Kendall's tau against the training budget in one run. Beside it stands the
trivial baseline that every ranking must beat: the parameter count of each cell.

Given a checkpoint path, the experiment saves its state after every epoch (the samplings
finished; the supernet, optimizer and schedule of the one in training) and a rerun on
it resumes after the last epoch saved, to the same scores: as in the search, every
epoch's architecture draws, data order and (on the in-memory device pipeline, the
CIFAR default) augmentation are fixed by (seed, epoch).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from naonet import options
from naonet.analysis.correlation import CorrelationReport, correlate
from naonet.data import build_data
from naonet.distributed import init_distributed
from naonet.errors import UserError
from naonet.files import as_json_holds
from naonet.nb201 import DEFAULT_METRIC, BenchmarkTable, metric_column
from naonet.options import check_field_types
from naonet.runtime import (
    FastPaths,
    check_worker_count,
    keep_cpu_threads,
    to_memory_format,
    use_cpu_threads,
)
from naonet.search.config import SearchConfig, field_names
from naonet.search.scoring import build_scoring_data, score_pool
from naonet.search.state import ADDED_OPTIONS, RESUMABLE_CHANGES, as_saved
from naonet.search.supernet_training import (
    build_optimizer,
    search_fast_paths,
    start_schedule,
    train_supernet_epoch,
    wrap_for_training,
)
from naonet.seeding import caller_random_state_kept, derive_seed
from naonet.spaces import get_space
from naonet.supernet import SAMPLING_WEIGHTS, PoolSampler
from naonet.training import Precision
from naonet.training.checkpoint import (
    START_OVER,
    atomic_save,
    check_run_classes,
    check_run_images,
    check_same_processes,
    check_same_run,
    load_checkpoint,
    restoring,
)
from naonet.training.engine import EpochStats, GradientHolders

TRAIN_ON = ("space", "sample")
CHECKPOINT_NAME = "ranking_state.pt"
CHECKPOINT_FORMAT = 1
# The table may move with the data (another machine's path): the sample drawn from it is
# checked instead.
RESUMABLE_EXPERIMENT_CHANGES = {"reference"}
# The search options the experiment never reads: it trains one supernet once, with one
# cosine cycle, and scores a sample of the table; the loop's rounds and seed pool, the
# strategies, the controller, the re-rank, the budgets, the plots and the progress bars'
# figures are the search's. `nao correlate` refuses their flags; a config file (a
# search's config.yaml) may hold them, and a folder resumes whatever they say.
UNREAD_SEARCH_OPTIONS = frozenset(
    ("rounds", "seed_pool_size", "seed_pool_file", "new_architectures", "top_seeds",
     "strategy", "population_size", "sample_size", "score_transform", "fresh_controller",
     "fill", "max_lambda", "restart_schedule", "reinit_supernet", "few_shot_after",
     "max_params", "max_macs", "max_latency_ms", "latency_batch", "plot", "log_every",
     *(name for name in field_names() if name.startswith(("controller_", "rerank_")))))
# Two more the experiment sets itself, from --samplings and --train-on (compared as those)
SET_BY_THE_EXPERIMENT = frozenset(("sampling", "supernet_pool"))


# the experiment's own options (beside its search recipe): each config field with the
# name of the command-line flag that sets it
EXPERIMENT_FLAGS = {"sample_size": "archs", "samplings": "samplings", "metric": "metric",
                    "train_on": "train_on", "score_every": "score_every"}


@dataclass(frozen=True)
class RankingConfig:
    """The experiment: the supernet recipe (a search config), the reference table, the
    architectures scored and the samplings compared."""

    search: SearchConfig
    reference: str  # the benchmark table CSV
    sample_size: int = 100  # architectures scored and compared with the table
    samplings: tuple[str, ...] = ("uniform", "balanced")
    metric: str = DEFAULT_METRIC  # the table column the scores are compared with
    top_k: tuple[int, ...] = (5, 10)
    score_every: int = 0  # also score the sample every this many epochs (0: at the end)
    # what the supernet samples its training paths from: the whole space of the table,
    # or only the scored sample (as a search trains on the pool it will score)
    train_on: str = "space"

    def __post_init__(self) -> None:
        check_field_types(self)
        options.check_names(self.samplings, tuple(SAMPLING_WEIGHTS), "--samplings")
        if self.train_on not in TRAIN_ON:
            raise UserError(f"--train-on must be one of: {', '.join(TRAIN_ON)}, got "
                            f"{self.train_on!r}")
        if self.sample_size < 2:
            raise UserError(f"{options.flag_name(EXPERIMENT_FLAGS['sample_size'])} must be "
                            f">= 2 to rank anything, got {self.sample_size}")
        if self.score_every < 0:
            raise UserError(f"--score-every must be >= 0, got {self.score_every}")
        if not self.reference:
            raise UserError("the ranking experiment needs a benchmark table: --reference "
                            "table:PATH")
        if self.search.few_shot_split is not None:
            raise UserError("the ranking experiment trains one supernet; leave out "
                            "--few-shot-split (or pass --few-shot-split none)")
        metric_column(self.metric)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BudgetPoint:
    """Kendall's tau of the supernet's scores after ``epochs`` epochs."""

    epochs: int
    images: int  # training images seen up to here, by every process
    kendall_tau: float
    seconds: float
    scores: list[float] = field(default_factory=list)  # of the sample, at this point


@dataclass
class SamplingResult:
    """Scores of the sample by a supernet trained with one sampling (while it trains: the
    scores and report of its last scored point, None before the first)."""

    sampling: str
    scores: list[float]
    report: CorrelationReport | None
    losses: list[float] = field(default_factory=list)  # mean training loss per epoch
    curve: list[BudgetPoint] = field(default_factory=list)
    seconds: float = 0.0
    images: int | None = 0  # trained so far (None: a checkpoint from before the count)

    def copy(self) -> SamplingResult:
        return replace(self, scores=list(self.scores), losses=list(self.losses),
                       curve=list(self.curve))

    def to_state(self) -> dict:
        """Everything but the report, which the scores and the reference give back."""
        return {"sampling": self.sampling, "scores": list(self.scores),
                "losses": list(self.losses), "curve": [asdict(point) for point in self.curve],
                "seconds": self.seconds, "images": self.images}

    @classmethod
    def from_state(cls, state: dict, reference: list[float], top_k: tuple[int, ...]
                   ) -> SamplingResult:
        """The saved result, every statistic computed again against ``reference`` (a
        moved table is checked only by the sample it gives)."""
        scores = [float(score) for score in state["scores"]]
        curve = [BudgetPoint(**point) for point in state["curve"]]
        for point in curve:
            point.kendall_tau = correlate(point.scores, reference, top_k).kendall_tau
        return cls(state["sampling"], scores,
                   correlate(scores, reference, top_k) if scores else None,
                   [float(loss) for loss in state["losses"]], curve, float(state["seconds"]),
                   state.get("images"))


@dataclass
class RankingResult:
    """What a ranking experiment measured: the sample, its reference values and
    parameter counts, and each sampling's scores and correlations."""
    architectures: list  # the sample, in scoring order
    reference: list[float]  # the table's metric of each
    parameter_counts: list[int]  # of each one's benchmark-size network
    parameter_report: CorrelationReport  # the trivial baseline: rank by parameter count
    samplings: list[SamplingResult]
    scoring_images: int  # the held-out images each architecture is scored on


def sample_table_cells(table: BenchmarkTable, count: int, seed: int) -> list:
    """A fixed random sample of the table's architectures (the same for every recipe)."""
    if count > len(table):
        raise UserError(f"cannot score {count} architectures; the table has {len(table)}")
    return random.Random(seed).sample(list(table.architectures), count)


def benchmark_parameter_counts(table: BenchmarkTable, architectures: list) -> list[int]:
    """Parameter counts of the benchmark's own networks (its size: the space's final)."""
    space = table.space
    config = space.network_config(*space.final_size)
    return [space.parameter_count(arch, config) for arch in architectures]


@keep_cpu_threads()  # search.threads is the experiment's; the caller gets its own back
@caller_random_state_kept()  # and so are the global random streams it seeds
def run_ranking_experiment(config: RankingConfig, table: BenchmarkTable,
                           log: Callable[[str], None] = lambda line: None,
                           progress: Callable[[RankingResult], None] | None = None,
                           checkpoint: Path | None = None) -> RankingResult:
    """Train one supernet per sampling and compare its scores with the table.

    ``progress`` receives the result so far after every scoring point (the samplings
    finished, then the one in training up to its last point), so that a caller can keep
    what a run stopped at its time limit has measured; on the main process only.
    ``checkpoint``: the file the state is saved to after every epoch and resumed from
    (None: neither). ``log`` too is called on the main process only."""
    search = config.search
    context = init_distributed(search.device)
    if not context.is_main:
        log = lambda line: None  # noqa: E731 - one process reports
    use_cpu_threads(search.threads, context.device)
    check_worker_count(search.workers)
    space = get_space(search.space)
    if space != table.space:
        raise UserError(f"the table is of the {table.space.name!r} space; pass --space "
                        f"{table.space.name}")
    paths = search_fast_paths(search, context.device)
    data = build_data(search.data_config(), context.device, seed=search.seed,
                      rank=context.rank, world_size=context.world_size,
                      channels_last=paths.channels_last)
    if data.valid is None:
        raise UserError("the experiment scores on held-out images; pass --valid-size N")
    architectures = sample_table_cells(table, config.sample_size, search.seed)
    reference = [table.value(arch, metric_column(config.metric)) for arch in architectures]
    counts = benchmark_parameter_counts(table, architectures)
    scoring = build_scoring_data(data.valid, search.eval_batch_size, search.eval_batches,
                                 search.scoring, derive_seed(search.seed, "scoring-data"),
                                 context)
    parameter_report = correlate(counts, reference, config.top_k)
    saved = ExperimentCheckpoint(checkpoint, config, architectures, context.is_main,
                                 data.classes, context.world_size, data.training_images)
    results = saved.finished(reference, config.top_k)

    def report_point(partial: SamplingResult) -> None:
        if progress is not None and context.is_main:
            progress(RankingResult(architectures, reference, counts, parameter_report,
                                   [*results, partial], scoring.images_per_architecture))

    if len(results) == len(config.samplings):
        log(f"every sampling finished in {checkpoint}: its results")
    pool = list(table.architectures if config.train_on == "space" else architectures)
    for sampling in config.samplings[len(results):]:
        trainer = SupernetTrainer(replace(search, sampling=sampling), space, data, context,
                                  pool, paths)
        resumed = saved.resume(trainer, sampling, reference, config.top_k)
        if resumed is not None:
            log(f"{sampling}: resumed after epoch {len(resumed.losses)}/"
                f"{search.supernet_epochs} from {checkpoint}")
        results.append(trainer.run(
            config, architectures, reference, scoring, log, report_point, resumed,
            epoch_done=lambda partial, trainer=trainer: saved.save(results, partial, trainer)))
        saved.save(results)
    return RankingResult(architectures, reference, counts, parameter_report, results,
                         scoring.images_per_architecture)


class ExperimentCheckpoint:
    """The experiment's state in one file, written (by the main process) after every
    epoch: the samplings finished, and the one in training with its supernet, optimizer
    and schedule. It belongs to one experiment: another config, or another sample of
    the table, or data of other classes or another number of training images, is
    refused."""

    def __init__(self, path: Path | None, config: RankingConfig, architectures: list,
                 writes: bool, classes: list[str] | None = None, world_size: int = 1,
                 training_images: int | None = None):
        self.path, self.writes, self.world_size = path, writes, world_size
        self.training_images = training_images
        self.config = as_json_holds(config.to_dict())
        self.names = [arch.to_string() for arch in architectures]
        self.classes = None if classes is None else list(classes)
        self.state = self._load() if path is not None and path.exists() else None

    def _load(self) -> dict:
        state = load_checkpoint(self.path, START_OVER)
        if state.get("format") != CHECKPOINT_FORMAT or "experiment" not in state:
            raise UserError(f"{self.path} is not a naonet ranking checkpoint; {START_OVER}")
        with restoring(self.path):
            check_same_experiment(state["experiment"], self.config, self.path)
            if list(state["architectures"]) != self.names:
                raise UserError(f"{self.path} scored another sample of the table (another "
                                f"table?); {START_OVER}")
        check_run_classes(self.path, state.get("classes"), self.classes, "measured")
        check_run_images(self.path, state.get("training_images"), self.training_images,
                         "measured")
        check_same_processes(self.path, state.get("world_size"), self.world_size,
                             "ranking experiment")
        return state

    def finished(self, reference: list[float], top_k: tuple[int, ...]) -> list[SamplingResult]:
        if self.state is None:
            return []
        with restoring(self.path):
            return [SamplingResult.from_state(done, reference, top_k)
                    for done in self.state["finished"]]

    def resume(self, trainer: SupernetTrainer, sampling: str, reference: list[float],
               top_k: tuple[int, ...]) -> SamplingResult | None:
        """The saved part of ``sampling``'s training, loaded into ``trainer``; None when
        nothing of it was saved."""
        if self.state is None:
            return None
        with restoring(self.path):
            current = self.state["current"]
            if not current or current["result"]["sampling"] != sampling:
                return None
            trainer.load_state_dict(current.pop("trainer"))  # not held for the whole run
            return SamplingResult.from_state(current["result"], reference, top_k)

    def save(self, finished: list[SamplingResult], current: SamplingResult | None = None,
             trainer: SupernetTrainer | None = None) -> None:
        """Write the state atomically: ``finished``, and ``current`` trained by ``trainer``."""
        if self.path is None or not self.writes:
            return
        in_training = None if current is None else {"result": current.to_state(),
                                                     "trainer": trainer.state_dict()}
        atomic_save({"format": CHECKPOINT_FORMAT, "experiment": self.config,
                     "architectures": self.names, "classes": self.classes,
                     "training_images": self.training_images,
                     "world_size": self.world_size,
                     "finished": [result.to_state() for result in finished],
                     "current": in_training}, self.path)


def check_same_experiment(saved: dict, current: dict, path: Path) -> None:
    """A folder resumes only its own experiment: the recipe as a search checks it (where
    and how fast it runs may change), the rest as it was but for the table's path."""
    outer = {key: value for key, value in saved.items() if key != "search"}
    check_same_run(outer, current, path, RESUMABLE_EXPERIMENT_CHANGES, "ranking experiment",
                   flags=EXPERIMENT_FLAGS)
    search_now = as_saved(saved["search"], current["search"])
    check_same_run(saved["search"], search_now, path,
                   RESUMABLE_CHANGES | RESUMABLE_EXPERIMENT_CHANGES | UNREAD_SEARCH_OPTIONS
                   | SET_BY_THE_EXPERIMENT,
                   "ranking experiment", ADDED_OPTIONS)


class SupernetTrainer:
    """A supernet of ``search`` trained on a fixed pool, epoch by epoch: fresh, or as a
    checkpoint left it (``load_state_dict``)."""

    def __init__(self, search: SearchConfig, space, data, context, pool: list,
                 paths: FastPaths):
        from naonet.search.loop import build_supernet

        self.search, self.data, self.context = search, data, context
        self.supernet = to_memory_format(build_supernet(space, search, data, 0).to(
            context.device), paths.channels_last)
        self.sampled, self.model = wrap_for_training(self.supernet, context)
        self.sampled.sampler = PoolSampler(pool, torch.Generator(), search.sampling,
                                           self.supernet.network_config())
        self.optimizer = build_optimizer(self.supernet, search, context.world_size)
        self.scheduler = start_schedule(self.optimizer, search, context.world_size,
                                        search.supernet_epochs)
        self.precision = Precision.from_name(search.amp, context.device)

    def state_dict(self) -> dict:
        return {"supernet": self.supernet.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "gradients": GradientHolders(self.optimizer).state_dict(),
                "schedule": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.supernet.load_state_dict(state["supernet"])
        self.optimizer.load_state_dict(state["optimizer"])
        GradientHolders(self.optimizer).load_state_dict(state["gradients"])
        self.scheduler.load_state_dict(state["schedule"])

    def epoch(self, epoch: int) -> EpochStats:
        """One epoch exactly as the search's first round trains it; its statistics (the
        mean loss, the images every process trained on)."""
        stats = train_supernet_epoch(self.model, self.sampled, self.data, self.optimizer,
                                     self.search, 0, epoch, self.context, self.precision)
        self.scheduler.step()
        return stats

    def score(self, architectures: list, scoring) -> list[float]:
        """Every architecture on the same batches (``fixed``) or on its own random ones
        (``per-architecture``, as released), drawn as the search draws them."""
        seeds = [derive_seed(self.search.seed, "scoring", 0, index)
                 for index in range(len(architectures))]
        return score_pool(self.supernet, architectures, scoring, self.search.scoring, seeds,
                          self.context, metric=self.search.score_metric)

    def run(self, config: RankingConfig, architectures: list, reference: list[float],
            scoring, log: Callable[[str], None],
            point_scored: Callable[[SamplingResult], None] = lambda partial: None,
            resumed: SamplingResult | None = None,
            epoch_done: Callable[[SamplingResult], None] = lambda partial: None,
            ) -> SamplingResult:
        """Train every epoch (after those ``resumed`` holds), scoring the sample every
        ``score_every`` epochs and last; ``point_scored`` gets the result up to each
        scored point, ``epoch_done`` the result after every epoch."""
        search, start = self.search, time.perf_counter()
        result = resumed.copy() if resumed else SamplingResult(search.sampling, [], None)
        if result.images is None:  # saved before the count was kept: the old estimate
            result.images = (len(result.losses) * len(self.data.train) * search.batch_size
                             * self.context.world_size)
        seconds_before = result.seconds

        def elapsed() -> float:
            return seconds_before + time.perf_counter() - start

        def score() -> None:
            result.scores = self.score(architectures, scoring)
            result.report = correlate(result.scores, reference, config.top_k)

        for epoch in range(len(result.losses), search.supernet_epochs):
            stats = self.epoch(epoch)
            result.losses.append(stats.loss)
            result.images += stats.images
            done = epoch + 1
            line = (f"{search.sampling}: epoch {done}/{search.supernet_epochs} loss "
                    f"{result.losses[-1]:.4f}")
            scored = done == search.supernet_epochs or (config.score_every
                                                         and done % config.score_every == 0)
            if scored:
                score()
            result.seconds = elapsed()
            if scored:
                result.curve.append(BudgetPoint(done, result.images,
                                                result.report.kendall_tau, result.seconds,
                                                list(result.scores)))
                line += f" kendall tau {result.report.kendall_tau:.4f}"
            log(f"{line} ({result.seconds:.0f} s)")
            snapshot = result.copy()  # the callbacks only read it
            if scored:
                point_scored(snapshot)
            epoch_done(snapshot)
        if result.report is None:  # no training epoch: score the initial supernet
            score()
        result.seconds = elapsed()
        return result
