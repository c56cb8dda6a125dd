"""The NAO-V2 search recipe (SPEC section 5): the loop, and the steps it is made of.

:func:`search` reads like the paper. Each step function does one phase of a round,
moves the state to the next phase and checkpoints; rerunning a killed search resumes
at the phase (and epoch) it reached. Only rank 0 writes files and trains the
controller; every rank trains the supernet on its share of each batch and scores its
share of the pool.
"""

from __future__ import annotations

import json
import math
import random
import shlex
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from naonet.analysis.scores import content_lines, read_text
from naonet.constraints import CostMeter, FeasibleSpace
from naonet.controller import Controller
from naonet.controller.rounds import nao_round
from naonet.data import DataBundle, build_data
from naonet.data.registry import check_augmentation, check_split_classes
from naonet.data.sources import existing_data_path, has_test_images, resolve_data_root
from naonet.distributed import DistributedContext, barrier, broadcast_object, init_distributed
from naonet.errors import UserError
from naonet.files import atomic_write_text
from naonet.models.networks import cell_layout
from naonet.nb201.table import existing_table_file
from naonet.revision import code_revision
from naonet.run_folder import (
    SEARCH_CHECKPOINT,
    claim_run_folder,
    lost_checkpoint,
    write_run_config,
)
from naonet.runtime import (
    check_worker_count,
    keep_cpu_threads,
    slow_bf16_note,
    to_memory_format,
    use_cpu_threads,
)
from naonet.search.config import SearchConfig
from naonet.search.outputs import (
    DEFAULT_FINAL_COUNT,
    FINAL_POOL,
    POOL_JSON,
    distinct_top,
    entry_record,
    final_entries,
    round_record,
    summary_line,
    write_search_outputs,
)
from naonet.search.plots import check_can_draw, plot_pareto, plot_score_distribution
from naonet.search.reference import ReferenceTable, table_path
from naonet.search.rerank import (
    RerankJob,
    rerank_stream,
    rerank_train_epoch,
    start_rerank_job,
    start_stream_job,
    train_in_processes,
    validation_accuracy,
)
from naonet.search.scoring import ScoringData, build_scoring_data, score_pool
from naonet.search.state import (
    CONTROLLER,
    DONE,
    RERANK,
    SCORE,
    TRAIN,
    PoolEntry,
    SearchState,
    load_search_checkpoint,
    save_checkpoint,
)
from naonet.search.supernet_training import (
    SampledSupernet,
    build_optimizer,
    schedule_epochs,
    search_fast_paths,
    start_schedule,
    train_supernet_epoch,
    wrap_for_training,
)
from naonet.seeding import caller_random_state_kept, derive_seed, restore_rng_state, seeded
from naonet.spaces import SearchSpace, get_space
from naonet.spaces.protocol import training_recipe
from naonet.strategies.base import Seen, sample_new
from naonet.strategies.evolution import EvolutionConfig, evolve_generation
from naonet.supernet import FewShotSupernet, PoolSampler, sample_architectures
from naonet.supernet.few_shot import choice_at
from naonet.text import counted, main_process_log, print_line
from naonet.training import EpochStats, Precision
from naonet.training.checkpoint import check_run_classes, check_run_images, restoring
from naonet.training.engine import GradientHolders, step_progress
from naonet.training.run import check_network_fits, device_memory

TIMINGS_NAME = "timings.json"


class PhaseClock:
    """Wall seconds per phase, each phase exclusive of the phases timed inside it (so the
    phases add up to the whole run), added in place to ``seconds`` (the search state's)."""

    def __init__(self, seconds: dict[str, float] | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.seconds = seconds if seconds is not None else {}
        self._clock = clock  # seconds since some fixed point; a test passes its own
        self._open: list[list] = []  # per open phase: [name, start, seconds of inner phases]

    @contextmanager
    def phase(self, name: str):
        entry = [name, self._clock(), 0.0]
        self._open.append(entry)
        try:
            yield
        finally:
            self._open.pop()
            elapsed = self._clock() - entry[1]
            self._count(name, elapsed - entry[2])
            if self._open:
                self._open[-1][2] += elapsed

    def add(self, name: str, seconds: float) -> None:
        """A part measured by the caller (inside an open phase: moved out of it)."""
        self._count(name, seconds)
        if self._open:
            self._open[-1][2] += seconds

    def flush(self) -> None:
        """Count the open phases up to now (a checkpoint is about to save the seconds;
        a kill after it loses nothing counted so far) and time them on from here."""
        now = self._clock()
        open_inside = 0.0  # seconds so far of the open phase directly inside this one
        for entry in reversed(self._open):
            elapsed = now - entry[1]
            self._count(entry[0], elapsed - entry[2] - open_inside)
            open_inside = elapsed
            entry[1], entry[2] = now, 0.0

    def total(self) -> float:
        """Every second counted so far, the open phases' up to now included (they are
        counted on from here)."""
        self.flush()
        return sum(self.seconds.values())

    def _count(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds


@dataclass
class SearchRun:
    """Everything a search step needs: config, data, networks, optimisers, state."""

    config: SearchConfig
    space: SearchSpace
    context: DistributedContext
    run_dir: Path
    data: DataBundle
    supernet: nn.Module  # the space's weight-sharing network
    sampled: SampledSupernet  # the supernet with its per-step architecture sampler
    model: nn.Module  # what trains: ``sampled``, or DDP around it
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    controller: Controller
    scoring: ScoringData
    precision: Precision
    state: SearchState
    show_progress: bool
    log: Callable[[str], None] | None = print_line  # the main process's lines; None: silent
    reference: ReferenceTable | None = None  # ground truth for the reports only
    rerank_job: RerankJob | None = None
    meter: CostMeter | None = None  # the final network's costs, for outputs and budgets
    clock: PhaseClock = field(default_factory=PhaseClock)

    def costs(self, architecture) -> dict:
        """What each output line records of the final network: its parameters and
        multiply-adds, and its latency where that is limited."""
        measured = self.meter.costs(architecture)
        return {f"final_{name}": value for name, value in measured.items()}

    @property
    def is_main(self) -> bool:
        return self.context.is_main


# ----------------------------------------------------------------------- the loop
@keep_cpu_threads()  # config.threads is the search's; the caller gets its own back
@caller_random_state_kept()  # the search seeds the global streams; the caller's come back
def search(config: SearchConfig, show_progress: bool = True,
           log: Callable[[str], None] | None = print_line) -> list[dict]:
    """Run (or resume) the search of ``config``; returns the final architectures.

    ``log`` takes the main process's lines (the start, each round's summary, the found
    architectures): ``print_line`` (stdout, flushed) by default, a logger's method, or
    None for none.
    """
    started = time.perf_counter()
    run = start_search(config, show_progress, log)
    run.clock = PhaseClock(run.state.timings)  # a resumed search adds to its timings
    run.clock.add("start-up and data", time.perf_counter() - started)
    if run.state.round_started_at is None:  # an older checkpoint: the round from here
        run.state.round_started_at = run.clock.total()
    state = run.state
    while state.phase in (TRAIN, SCORE, CONTROLLER):
        if state.phase == TRAIN:
            with run.clock.phase("supernet training"):
                train_supernet(run)  # balanced sampling from this round's child pool
        if state.phase == SCORE:
            with run.clock.phase("scoring"):
                score_architectures_so_far(run)  # the whole pool, same validation batches
        if state.phase == CONTROLLER:
            with run.clock.phase("controller training"):
                grow_pool(run)  # train the controller on the pool, generate from its top
    if state.phase == RERANK:
        with run.clock.phase("re-ranking"):
            rerank_top(run)  # train the best few from scratch briefly
    return finish(run)


def train_supernet(run: SearchRun) -> None:
    """2a-b: train the supernet ``supernet_epochs`` epochs on the round's child pool."""
    state, config = run.state, run.config
    if state.epoch == 0:
        start_round(run)
    run.sampled.sampler = PoolSampler(training_pool(state, config, run.space),
                                      torch.Generator(), config.sampling,
                                      run.supernet.network_config(),
                                      group_of=few_shot_group(run.supernet))
    while state.epoch < config.supernet_epochs:
        stats = supernet_epoch(run)
        state.supernet_loss, state.supernet_top1 = stats.loss, stats.top1
        state.epoch += 1
        checkpoint(run)
    state.phase, state.epoch = SCORE, 0
    checkpoint(run)


def few_shot_group(supernet: nn.Module):
    """What a few-shot supernet's training shares its steps equally among (its copies,
    once split); None for one supernet."""
    if isinstance(supernet, FewShotSupernet) and supernet.is_split:
        return supernet.part_of
    return None


def candidate_groups(config: SearchConfig):
    """What the final list and the re-rank take turns among: a few-shot supernet's
    copies (by the split choice, whether or not this process's supernet is split yet),
    else the choices at ``rerank_turns``; None: the best by score alone."""
    position = config.few_shot_split if config.few_shot_split is not None \
        else config.rerank_turns
    return None if position is None else choice_at(position)


def training_pool(state: SearchState, config: SearchConfig, space: SearchSpace) -> list:
    """What the round's supernet training samples from: the new architectures (released),
    with ``supernet_pool='all'`` every architecture scored so far as well, with
    ``'space'`` every architecture of the space (within the budget, if any), whatever
    the search has found."""
    if config.supernet_pool == "space":
        return list(space.all_architectures())  # a budgeted space lists its feasible ones
    if config.supernet_pool == "all":
        known = set(state.children)
        return list(state.children) + [a for a in state.architectures() if a not in known]
    return list(state.children)


def score_architectures_so_far(run: SearchRun) -> None:
    """2c: add the child pool to the pool, score every architecture, sort best first."""
    state, config = run.state, run.config
    known = set(state.architectures())
    predictions = state.child_predictions or [math.nan] * len(state.children)
    state.pool += [PoolEntry(arch, born=state.round, prediction=prediction)
                   for arch, prediction in zip(state.children, predictions)
                   if arch not in known]
    architectures = state.architectures()
    seeds = [derive_seed(config.seed, "scoring", state.round, index)
             for index in range(len(architectures))]
    progress = make_progress(run, len(architectures), f"round {state.round + 1} scoring")
    scores = score_pool(run.supernet, architectures, run.scoring, config.scoring, seeds,
                        run.context, progress, config.score_metric)
    close(progress)
    for entry, score in zip(state.pool, scores):
        entry.score = entry.scores[state.round] = score
    state.pool.sort(key=lambda entry: -entry.score)  # stable: ties keep their order
    if state.round == config.rounds - 1:
        log_round(run, controller=None, lambda_reached=None)
        state.phase = RERANK
    else:
        state.phase = CONTROLLER
    checkpoint(run, outputs=True)


def grow_pool(run: SearchRun) -> None:
    """2d: train the controller on the whole pool; the next round's child pool is the new
    architectures it generates from the top of the pool."""
    state = run.state
    outcome = None
    if run.is_main:
        outcome = controller_step(run) if run.config.strategy == "nao" else baseline_step(run)
    # Only rank 0's controller is trained, saved and used; the others never are.
    new, predictions, report, lambda_reached = broadcast_object(outcome)
    for entry, prediction in zip(state.pool, predictions):
        entry.prediction = prediction
    log_round(run, controller=report, lambda_reached=lambda_reached)
    state.children = [run.space.parse(text) for text in new] or state.architectures()
    state.child_predictions = predictions[len(state.pool):]
    state.round, state.phase, state.epoch = state.round + 1, TRAIN, 0
    checkpoint(run, outputs=True)


def rerank_top(run: SearchRun) -> None:
    """3: train each of the top ``rerank_top`` from scratch (one per canonical form),
    ``rerank_repeats`` times, record its mean validation accuracy."""
    state, config = run.state, run.config
    top = distinct_top(state.pool, config.rerank_top, candidate_groups(config))
    trainings = len(top) * config.rerank_repeats
    if config.rerank_processes > 1 and state.rerank_index < trainings:
        run.rerank_job, state.epoch = None, 0  # a training under way restarts in a worker
        jobs = [(top[index].architecture.to_qualified_string(),
                 rerank_stream(config, index, repeat)) for index, repeat in
                (divmod(number, config.rerank_repeats)
                 for number in range(state.rerank_index, trainings))]
        announce(run, f"re-rank: {len(jobs)} trainings in {config.rerank_processes} worker "
                      "processes")
        for accuracy in train_in_processes(config, jobs, config.rerank_processes):
            record_rerank(run, top, accuracy)
    while state.rerank_index < trainings:
        index, repeat = rerank_position(run)
        stream = rerank_stream(config, index, repeat)
        if run.rerank_job is None:
            run.rerank_job = start_stream_job(top[index].architecture, config, run.data,
                                              run.context, stream)
        while state.epoch < config.rerank_epochs:
            rerank_epoch(run, stream, rerank_label(run, len(top)))
            state.epoch += 1
            checkpoint(run)
        record_rerank(run, top, validation_accuracy(run.rerank_job, run.data, run.precision))
    state.phase = DONE
    checkpoint(run, outputs=True)


def check_parallel_rerank(config: SearchConfig, context: DistributedContext) -> None:
    """Refuse worker processes for the re-rank where they cannot run: checked at the
    start, so a search never trains its supernet only to stop at the re-rank."""
    if config.rerank_top == 0 or config.rerank_processes == 1:
        return
    if context.is_distributed:
        raise UserError("--rerank-processes runs the re-rank in CPU processes of one "
                        "search, not under torchrun; pass --rerank-processes 1")
    if context.device.type != "cpu":
        raise UserError("--rerank-processes runs the re-rank in CPU processes of one "
                        f"search, not on {context.device.type}; pass --rerank-processes 1, "
                        "or --device cpu")


def record_rerank(run: SearchRun, top: list[PoolEntry], accuracy: float) -> None:
    """The next training's validation accuracy; an architecture's re-rank accuracy is
    the mean of its trainings once all have run."""
    state, config = run.state, run.config
    index, repeat = rerank_position(run)
    entry = top[index]
    entry.rerank_runs[repeat:] = [accuracy]  # the runs so far are this training's first
    if len(entry.rerank_runs) == config.rerank_repeats:
        entry.rerank = sum(entry.rerank_runs) / len(entry.rerank_runs)
    announce(run, f"{rerank_label(run, len(top))}: validation accuracy {100 * accuracy:.2f} %"
                  + (f", mean {100 * entry.rerank:.2f} %" if config.rerank_repeats > 1
                     and not math.isnan(entry.rerank) else "")
                  + f" (supernet score {entry.score:.4f}) "
                  f"{entry.architecture.to_qualified_string()}")
    run.rerank_job, state.rerank_index, state.epoch = None, state.rerank_index + 1, 0
    checkpoint(run, outputs=True)


def rerank_position(run: SearchRun) -> tuple[int, int]:
    """The training under way (``state.rerank_index``) as (architecture of the top, its
    repeat): each architecture's trainings run one after the other."""
    return divmod(run.state.rerank_index, run.config.rerank_repeats)


def rerank_label(run: SearchRun, count: int) -> str:
    """'re-rank 2/5' (with repeats: 're-rank 2/5, training 1/3') for the training under
    way; ``count``: how many architectures the re-rank trains."""
    index, repeat = rerank_position(run)
    label = f"re-rank {index + 1}/{count}"
    if run.config.rerank_repeats > 1:
        label += f", training {repeat + 1}/{run.config.rerank_repeats}"
    return label


# ----------------------------------------------------------------------- starting
def start_search(config: SearchConfig, show_progress: bool,
                 log: Callable[[str], None] | None = print_line) -> SearchRun:
    """Build data, supernet, optimiser and controller; resume from the run folder."""
    check_before_meeting(config)
    context = init_distributed(config.device)
    use_cpu_threads(config.threads, context.device)
    check_parallel_rerank(config, context)
    space = get_space(config.space)
    paths = search_fast_paths(config, context.device)
    if config.plot and context.is_main:
        check_can_draw("--no-plot")  # the first pictures come after the first round
    run_dir = Path(config.output)
    if context.is_main:
        claim_run_folder(run_dir, "search")  # one run per folder, before anything is written
    data = build_data(config.data_config(), context.device, seed=config.seed,
                      rank=context.rank, world_size=context.world_size,
                      channels_last=paths.channels_last)
    if data.valid is None:
        raise UserError("the search needs a validation split; pass --valid-size N")
    limits = search_budget(config, data, space)
    meter = CostMeter(space, limits, num_classes=data.num_classes, device=context.device,
                      skeleton=data.skeleton)
    if limits.active:  # every architecture the search draws or generates fits the budget
        space = FeasibleSpace(space, meter)
    supernet = to_memory_format(build_supernet(space, config, data, 0).to(context.device),
                                paths.channels_last)
    sampled, model = wrap_for_training(supernet, context)
    optimizer = build_optimizer(supernet, config, context.world_size)
    scheduler = start_schedule(optimizer, config, context.world_size, schedule_epochs(config))
    controller = build_controller(space, config).to(context.device)
    scoring = build_scoring_data(data.valid, config.eval_batch_size, config.eval_batches,
                                 config.scoring, derive_seed(config.seed, "scoring-data"),
                                 context)
    run = SearchRun(config, space, context, run_dir, data, supernet, sampled, model, optimizer,
                    scheduler, controller, scoring, Precision.from_name(config.amp,
                                                                        context.device),
                    SearchState(), show_progress, log)
    run.meter = meter
    if config.reference and context.is_main:
        run.reference = ReferenceTable.load(config.reference, meter.space)
    checkpoint_found = resume(run)
    if not checkpoint_found:
        check_checkpoint_not_lost(run_dir)
    if run.state.latencies:  # the figures the run was judged by
        meter.remember(run.state.latencies)
    if run.state.footholds:  # where its random draws walk from
        space.footholds = [space.parse(text) for text in run.state.footholds]
    if not checkpoint_found:
        # Rank 0 draws (latency budgets time on each machine differently); all use its pool.
        names = broadcast_object([architecture.to_qualified_string() for architecture in
                                  seed_pool(space, config, lambda text: announce(run, text))]
                                 if context.is_main else None)
        run.state.children = [space.parse(name) for name in names]
    write_run_config(run.run_dir, run.config.to_dict(), run.is_main)
    announce_start(run, checkpoint_found)
    return run


def build_supernet(space: SearchSpace, config: SearchConfig, data: DataBundle,
                   round_index: int) -> nn.Module:
    """The space's supernet, initialised from (seed, round): the same on every rank."""
    check_supernet_fits(space, config, data)
    def build() -> nn.Module:
        return space.build_supernet(
            config.channels, config.layers, data.num_classes, data.skeleton,
            keep_prob=config.keep_prob, drop_path_keep_prob=config.drop_path_keep_prob,
            drop_path_exempts_pass_through=config.drop_path_exempts_pass_through)

    if config.few_shot_split is not None:
        copies = few_shot_copies(space, config)
        return seeded(derive_seed(config.seed, "supernet-init", round_index),
                      lambda: FewShotSupernet(build, config.few_shot_split, copies))
    return seeded(derive_seed(config.seed, "supernet-init", round_index), build)


def few_shot_copies(space: SearchSpace, config: SearchConfig) -> int:
    """How many supernets the search holds: one per choice at the few-shot position
    (all of them from the start), else one."""
    if config.few_shot_split is None:
        return 1
    return space.integer_limits()[config.few_shot_split]


MODULE_BYTES = 2048  # Python memory of one small nn.Module (measured: 2.2 KB at C 8)
SURELY_FITTING_CELLS = 100  # at ~1,000 modules a cell: 200 MB of Python objects


def check_supernet_fits(space: SearchSpace, config: SearchConfig, data: DataBundle) -> None:
    """Refuse, before minutes of building, a supernet that cannot fit in host memory:
    its weights are more than any one network's, and each of its many small modules
    costs about 2 KB of Python objects (counted on a one-cell-per-stage copy on the
    'meta' device, which allocates nothing)."""
    probe = getattr(space, "space", space).sample(random.Random(0))  # unconstrained
    copies = few_shot_copies(space, config)
    check_network_fits(probe, space.network_config(config.channels, config.layers,
                                                   data.num_classes, data.skeleton),
                       torch.device("cpu"), what="the supernet", copies=copies)
    cells = cell_layout(config.layers)[0] * copies
    if cells <= SURELY_FITTING_CELLS:
        return  # a few hundred MB at most: not worth the second it takes to count
    with torch.device("meta"):
        smallest = space.build_supernet(config.channels, 1, data.num_classes, data.skeleton)
    modules = sum(1 for _ in smallest.modules()) * cells // cell_layout(1)[0]
    total = device_memory(torch.device("cpu"))
    if total is not None and MODULE_BYTES * modules > total:
        held = f" in {copies} few-shot copies" if copies > 1 else ""
        raise UserError(f"the supernet of N {config.layers}{held} would hold about "
                        f"{modules:,} modules, {MODULE_BYTES * modules / 2**30:,.0f} GiB of "
                        f"Python objects, more than the {total / 2**30:,.0f} GiB of memory; "
                        "pass a smaller --layers")


def build_controller(space: SearchSpace, config: SearchConfig) -> Controller:
    return seeded(derive_seed(config.seed, "controller-init"),
                  lambda: Controller(space.encoding(), config.controller_config()))


def search_budget(config: SearchConfig, data, space: SearchSpace):
    """The search's budget, on the network the training command it ends with trains: at
    that command's size (``space.final_size_for``: the ImageNet preset's on ImageNet) and
    on the images it reads (``data.native_size``: a named data set's own, a CIFAR-layout
    folder's images' own, a folder data set's --image-size; a named data set's
    --image-size is only the search's proxy)."""
    return config.limits(data.native_size, space.final_size_for(config.dataset))


def check_checkpoint_not_lost(run_dir: Path) -> None:
    """A UserError where ``run_dir`` holds a search's outputs (written after its first
    checkpoint) without its ``search_state.pt`` (:func:`naonet.run_folder.lost_checkpoint`)."""
    found = [name for name in (POOL_JSON, FINAL_POOL) if (run_dir / name).exists()]
    if found:
        raise lost_checkpoint(run_dir, f"a search's outputs ({', '.join(found)})",
                              SEARCH_CHECKPOINT, "search anew")


def check_before_meeting(config: SearchConfig) -> None:
    """What the options and the files they name refuse, before the processes meet (each
    refuses alike, and the first says so once; an error of one after they met left the
    others a gloo error) and before a folder is made (bad input writes nothing)."""
    check_worker_count(config.workers)
    if not config.download:
        existing_data_path(config.data, config.dataset)
        check_split_classes(config.data)  # before the search, not at its printed training
    check_augmentation(config.data_config())
    if config.seed_pool_file:
        read_architecture_file(Path(config.seed_pool_file), get_space(config.space))
    if config.reference:
        existing_table_file(table_path(config.reference))


def seed_pool(space: SearchSpace, config: SearchConfig,
              say: Callable[[str], None] | None = None) -> list:
    """Round 0's child pool: the architectures of ``seed_pool_file``, or random ones (under
    a budget that random draws seldom meet, filled up with mutations of those they found,
    which ``say`` is told)."""
    if config.seed_pool_file:
        pool = read_architecture_file(Path(config.seed_pool_file), space)
        over = [a for a in pool if isinstance(space, FeasibleSpace) and not space.feasible(a)]
        if over:
            raise UserError(f"{len(over)} architectures of {config.seed_pool_file} exceed the "
                            f"budget (the first: {over[0].to_qualified_string()}); remove them "
                            "or raise the budget")
        return pool
    rng = np.random.default_rng(derive_seed(config.seed, "seed-pool"))
    if not isinstance(space, FeasibleSpace):
        return sample_architectures(space, config.seed_pool_size, rng)
    pool: dict = {}  # draw, keep those within the budget, until the pool is full
    draws = 0
    while draws < space.max_draws() and not space.hopeless(draws):  # FeasibleSpace.sample's
        for architecture in sample_architectures(space.space, config.seed_pool_size, rng):
            draws += 1
            if architecture not in pool and space.feasible(architecture):
                pool[architecture] = None
                if len(pool) == config.seed_pool_size:
                    return list(pool)
            if space.hopeless(draws):
                break
    descended = False
    if not pool:  # a budget random draws never met may still be met: descend to it
        found = space.foothold(random.Random(derive_seed(config.seed, "seed-pool-descent")))
        if found is None:  # the error that names the smallest value (another draw could
            # find one, and the message said 'only 0 architectures')
            raise UserError(space.unmeetable(random.Random(0), draws))
        pool[found], descended = None, True
    found = len(pool)
    fill_by_mutation(space, pool, config.seed_pool_size,
                     random.Random(derive_seed(config.seed, "seed-pool-fill")))
    if descended:  # later draws walk from these: random ones would not meet the budget
        space.footholds[:] = list(pool)
    if len(pool) == config.seed_pool_size:
        if say is not None:
            origin = ("1 architecture within the budget found by descent after "
                      f"{draws:,} random draws met none" if descended else
                      f"{found:,} random architectures within the budget in {draws:,} draws")
            say(f"seed pool: {origin}, and {len(pool) - found:,} mutations of "
                f"{'it' if descended else 'them'} (random draws seldom meet the budget)")
        return list(pool)
    raise UserError(f"only {len(pool)} architectures within the budget in {draws:,} random "
                    "draws and mutations of those found; lower --seed-pool-size or raise the "
                    "budget")


def fill_by_mutation(space: FeasibleSpace, pool: dict, size: int, rng: random.Random) -> None:
    """Add new architectures within the budget to ``pool`` (an insertion-ordered set), each a
    mutation of a random member, until it holds ``size`` or as many tries as random
    draws were allowed: a tight size budget, which random draws seldom meet (9 in 20,000
    for --max-params 600000 in the small space, whose smallest cell has 56,638), is
    reached from the architectures they found."""
    members = list(pool)
    for _ in range(space.max_draws()):
        if len(pool) == size:
            return
        child = space.space.mutate(rng.choice(members), rng)
        if child not in pool and space.feasible(child):
            pool[child] = None
            members.append(child)


def read_architecture_file(path: Path, space: SearchSpace) -> list:
    """Distinct architectures of a file, one a line (blank lines and # comments skipped)."""
    if path.is_dir():  # a search's folder: its list of architectures is a file in it
        raise UserError(f"seed pool file {path} is a folder; pass a file of architectures "
                        "one a line (a search's arch_pool in it, for example)")
    if not path.is_file():
        raise UserError(f"seed pool file {path} does not exist; check --seed-pool-file")
    try:
        lines = content_lines(read_text(path))
    except UnicodeDecodeError:
        raise UserError(f"seed pool file {path} is not text; pass architectures one a "
                        "line") from None
    found: dict = {}  # an insertion-ordered set
    for number, text in lines:
        try:
            found.setdefault(space.parse(text))
        except UserError as error:
            raise UserError(f"{path} line {number}: {error}") from None
    if len(found) < 2:
        raise UserError(f"{path} holds {len(found)} architecture(s); the search needs at "
                        "least 2")
    return list(found)


def resume(run: SearchRun) -> bool:
    """Restore the run folder's checkpoint into ``run``; False when there is none."""
    checkpoint_data = load_search_checkpoint(run.run_dir / SEARCH_CHECKPOINT,
                                             run.config.to_dict(), run.context.world_size)
    if checkpoint_data is None:
        return False
    path = run.run_dir / SEARCH_CHECKPOINT
    check_run_classes(path, checkpoint_data.get("classes"), run.data.classes, "searched")
    check_run_images(path, checkpoint_data.get("training_images"),
                     run.data.training_images, "searched")
    with restoring(path):
        run.state = SearchState.from_dict(checkpoint_data["state"], run.space)
        for name, module in modules_to_save(run).items():
            if name in checkpoint_data:
                module.load_state_dict(checkpoint_data[name])
    if run.state.phase == RERANK and run.state.epoch > 0:
        entry = distinct_top(run.state.pool, run.config.rerank_top,
                             candidate_groups(run.config))[rerank_position(run)[0]]
        run.rerank_job = start_rerank_job(entry.architecture, run.config, run.data,
                                          run.context, 0)  # built outside: not the file's
    with restoring(path):
        if run.rerank_job is not None:
            run.rerank_job.load(checkpoint_data)
        restore_rng_state(checkpoint_data["rng"])
    return True


# ----------------------------------------------------------------------- round steps
def start_round(run: SearchRun) -> None:
    """The round's fresh start: optionally new supernet weights; the schedule restarts."""
    state, config = run.state, run.config
    state.round_started_at = run.clock.total()
    if config.reinit_supernet and state.round > 0:
        fresh = build_supernet(run.space, config, run.data, state.round)
        run.supernet.load_state_dict(fresh.state_dict())  # in place: DDP keeps its view
        run.optimizer.state.clear()  # no momentum from the old weights
    if (isinstance(run.supernet, FewShotSupernet) and not run.supernet.is_split
            and state.round >= config.few_shot_after):
        run.supernet.split(run.optimizer)  # each choice goes on from the one supernet
    if config.restart_schedule or state.round == 0:
        run.scheduler = start_schedule(run.optimizer, config, run.context.world_size,
                                       schedule_epochs(config))


def supernet_epoch(run: SearchRun) -> EpochStats:
    """One epoch of the round (see :func:`train_supernet_epoch`), then the schedule step."""
    state, config = run.state, run.config
    progress = make_progress(run, len(run.data.train),
                             f"round {state.round + 1}/{config.rounds} supernet "
                             f"epoch {state.epoch + 1}/{config.supernet_epochs}")
    stats = train_supernet_epoch(run.model, run.sampled, run.data, run.optimizer, config,
                                 state.round, state.epoch, run.context, run.precision,
                                 progress)
    close(progress)
    run.scheduler.step()  # after the epoch's optimizer steps, never before
    return stats


def controller_step(run: SearchRun) -> tuple[list[str], list[float], object, int]:
    """Rank 0: one NAO round (fit the controller to the pool's scores, generate the next
    child pool from the top), then predict the pool and the new architectures."""
    state, config = run.state, run.config
    architectures = state.architectures()
    outcome = nao_round(
        run.controller, lambda: build_controller(run.space, config).to(run.context.device),
        run.space,
        architectures, [entry.score for entry in state.pool], config.round_config(),
        config.controller_train_config(),
        seed=derive_seed(config.seed, "controller-train", state.round),
        rng=random.Random(derive_seed(config.seed, "controller-fill", state.round)),
        progress=run.show_progress)
    run.clock.add("generation", outcome.generate_seconds)  # moved out of training
    if outcome.controller is not run.controller:  # a fresh controller: keep training it
        run.controller.load_state_dict(outcome.controller.state_dict())
    if outcome.rejected:
        announce(run, f"{outcome.rejected} generated architectures over the budget were "
                      "passed over")
    if outcome.generated < config.new_architectures:
        filled = len(outcome.new) - outcome.generated
        announce(run, f"the controller found {outcome.generated} of "
                      f"{config.new_architectures} new architectures up to lambda "
                      f"{config.max_lambda}"
                      + (f"; {filled} more from the {config.fill} fill" if filled else "")
                      + ("" if outcome.new else "; the next round trains the pool"))
    predictions = run.controller.predict_architectures(
        architectures + outcome.new).tolist()
    return ([arch.to_qualified_string() for arch in outcome.new], predictions,
            outcome.report, outcome.lambda_reached)


def baseline_step(run: SearchRun) -> tuple[list[str], list[float], None, None]:
    """Rank 0: the next child pool from random search (new random architectures) or
    regularized evolution (mutations of tournament winners among the youngest
    ``population_size`` of the pool, by supernet score); no controller, no predictions."""
    state, config = run.state, run.config
    rng = random.Random(derive_seed(config.seed, "strategy", state.round))
    seen = Seen(state.architectures())
    if config.strategy == "random":
        new = []
        for _ in range(config.new_architectures):
            new.append(sample_new(run.space, seen, rng))
            seen.add(new[-1])
    else:
        entries = list(state.pool)
        rng.shuffle(entries)  # the members of one round are equally young
        entries.sort(key=lambda entry: -entry.born)
        population = [(entry.architecture, entry.score)
                      for entry in entries[:config.population_size]]
        new = evolve_generation(run.space, population, config.new_architectures, rng,
                                EvolutionConfig(config.population_size, config.sample_size),
                                seen)
    predictions = [math.nan] * (len(state.pool) + len(new))
    return [arch.to_qualified_string() for arch in new], predictions, None, None


def rerank_epoch(run: SearchRun, stream: int, label: str) -> None:
    """One training epoch of the architecture being re-ranked, drawing from ``stream``;
    ``label`` names the training for the progress bar."""
    state, config = run.state, run.config
    progress = make_progress(run, len(run.data.train),
                             f"{label} epoch {state.epoch + 1}/{config.rerank_epochs}")
    rerank_train_epoch(run.rerank_job, run.data, config, stream, state.epoch,
                       run.context.rank, run.precision, progress)
    close(progress)


# ----------------------------------------------------------------------- bookkeeping
def modules_to_save(run: SearchRun) -> dict:
    """What the checkpoint holds besides the state; the supernet only while it is needed."""
    modules = {"controller": run.controller}
    if run.state.phase in (TRAIN, SCORE, CONTROLLER):
        modules.update(supernet=run.supernet, supernet_optimizer=run.optimizer,
                       supernet_scheduler=run.scheduler,
                       supernet_gradients=GradientHolders(run.optimizer))
    if run.rerank_job is not None:
        modules.update(run.rerank_job.modules())
    return modules


def checkpoint(run: SearchRun, outputs: bool = False) -> None:
    """Save the search state (rank 0); with ``outputs``, rewrite the output files too."""
    with run.clock.phase("checkpoints and outputs"):
        run.clock.flush()
        if run.meter is not None and run.meter.budget.max_latency_ms is not None:
            run.state.latencies = run.meter.timed(run.state.architectures()
                                                  + list(run.state.children))
        if isinstance(run.space, FeasibleSpace):
            run.state.footholds = [architecture.to_qualified_string()
                                   for architecture in run.space.footholds]
        if run.is_main:
            save_checkpoint(run.run_dir / SEARCH_CHECKPOINT, run.state, run.config.to_dict(),
                            modules_to_save(run), run.data.classes,
                            run.context.world_size, run.data.training_images)
            if outputs:
                write_outputs(run)
        barrier()


def write_outputs(run: SearchRun) -> None:
    """Rewrite every output file of the run folder (naonet.search.outputs lists them) and
    its pictures, scores.png and pareto.png."""
    if not run.state.pool or math.isnan(run.state.pool[0].score):
        return  # nothing scored yet
    config = run.config
    header = {"revision": code_revision(), "space": config.space, "dataset": config.dataset,
              "rounds": config.rounds,
              "seed": config.seed}
    truth = run.reference.true_accuracy if run.reference is not None else None
    pool, pareto = write_search_outputs(run.run_dir, run.state, final_count(config),
                                        run.supernet.network_config(), header, truth,
                                        run.costs, candidate_groups(config))
    if config.plot and run.state.rounds_log:
        plot_score_distribution(run.state.pool, len(run.state.rounds_log),
                                run.run_dir / "scores.png", config.score_metric)
        front = pareto["fronts"].get("final_parameters") if pareto is not None else None
        if front:  # none when no architecture has a score yet
            plot_pareto(pool, front, pareto["final"], run.run_dir / "pareto.png")


def log_round(run: SearchRun, controller, lambda_reached: int | None) -> None:
    """Record and print the round's summary (once: a resumed round replaces its record)."""
    state = run.state
    new = sum(1 for entry in state.pool if entry.born == state.round)
    record = round_record(state, new, run.clock.total() - state.round_started_at,
                          state.supernet_loss, state.supernet_top1, controller,
                          lambda_reached)
    if run.reference is not None:
        record["reference"] = run.reference.round_report(
            state.architectures(), [entry.score for entry in state.pool])
    state.rounds_log = [r for r in state.rounds_log if r["round"] != record["round"]]
    state.rounds_log.append(record)
    announce(run, summary_line(record, run.config.rounds))


def final_count(config: SearchConfig) -> int:
    """How many architectures arch_pool.final lists: the re-ranked ones, or the README's 5."""
    return config.rerank_top or DEFAULT_FINAL_COUNT


def finish(run: SearchRun) -> list[dict]:
    """Final outputs and a closing message; the final architectures, best first."""
    config = run.config
    final = final_entries(run.state, final_count(config), candidate_groups(config))
    network_config = run.supernet.network_config()
    checkpoint(run, outputs=True)  # keeps the last phase's timings too
    if run.is_main:
        atomic_write_text(run.run_dir / TIMINGS_NAME, json.dumps(
            {"seconds": run.clock.seconds, "note": "wall seconds per phase, every run of "
             "this folder added up (an interrupted phase counts from its last checkpoint)"},
            indent=1) + "\n")
        announce(run, f"done: {len(run.state.pool)} architectures in {run.run_dir / 'arch_pool'}"
                      f", the best {len(final)} in {run.run_dir / 'arch_pool.final'}")
        if run.reference is not None:
            truth = run.reference.true_accuracy(final[0].architecture)
            announce(run, f"found: {final[0].architecture.to_qualified_string()}: true test "
                          f"accuracy {100 * truth.test_accuracy:.2f} %, rank {truth.rank:,} "
                          f"of {truth.of:,} in {config.reference}")
        announce(run, f"train the first with: {training_command(run)}")
    barrier()
    return [entry_record(entry, network_config, costs=run.costs) for entry in final]


def training_command(run: SearchRun) -> str:
    """The ``nao train`` command of the first final architecture: the space's published
    recipe (NAONet-V2's, or NAS-Bench-201's for its cells) at the size a search of the
    space delivers, on the search's data."""
    config = run.config
    final_file = shlex.quote(str(run.run_dir / FINAL_POOL))
    # A folder's images are read at --image-size; a named data set's smaller size is only
    # the search's proxy (the found network trains at its own size).
    trained_size = config.image_size if config.dataset == "folder" else 0
    size = f" --image-size {trained_size}" if trained_size else ""
    recipe = training_recipe(run.meter.space, config.dataset, trained_size)
    output = shlex.quote(str(run.run_dir / "train"))  # beside what it trains, not runs/PRESET
    # data of train/ alone (all a search needs): the training holds validation images out
    held_out = ("" if has_test_images(resolve_data_root(config.data), config.dataset)
                else f" --valid-size {config.valid_size}")
    return (f"nao train {recipe} --arch \"$(head -n 1 {final_file})\" --dataset "
            f"{config.dataset} --data {shlex.quote(str(config.data))}{size}{held_out} "
            f"--output {output}")


def announce(run: SearchRun, text: str) -> None:
    """``text`` to the run's log, from the main process only."""
    main_process_log(run.log, run.is_main)(text)


PROPOSERS = {"nao": "NAO controller", "random": "random search",
             "evolution": "regularized evolution"}


def announce_start(run: SearchRun, resumed: bool) -> None:
    state, config, context = run.state, run.config, run.context
    where = context.describe()
    if context.device.type == "cpu":
        threads = torch.get_num_threads()
        where += f", {counted(threads, 'thread')}" + (
            " each" if context.is_distributed else "")
    parameters = sum(p.numel() for p in run.supernet.parameters())
    supernet = f"C {config.channels} N {config.layers} ({parameters / 1e6:.2f} M parameters"
    if isinstance(run.supernet, FewShotSupernet):
        supernet += (f" in {len(run.supernet.parts)} few-shot copies, split on coding "
                     f"position {config.few_shot_split} after round {config.few_shot_after}")
    text = (f"searching the {config.space} space on {config.dataset} at {run.data.image_size} px "
            f"({where}): "
            f"supernet {supernet}), "
            f"{counted(config.rounds, 'round')} x "
            f"{counted(config.supernet_epochs, 'epoch')} of "
            f"{counted(len(run.data.train), 'step')}, seed pool "
            f"{config.seed_pool_file or config.seed_pool_size}"
            + (f", +{config.new_architectures} per round ({PROPOSERS[config.strategy]})"
               if config.rounds > 1 else " (one round: no new architectures)")
            + f"; scoring on {len(run.scoring)} validation images ({config.scoring})"
            + (f"; every architecture{run.meter.budget.text()} (its final network, C "
               f"{run.meter.final_size[0]}, N {run.meter.final_size[1]}, at "
               f"{run.meter.budget.image_size} px)" if run.meter.budget.active else ""))
    if resumed and state.phase == DONE:
        text += "; finished already: its outputs are rewritten from the saved state"
    elif resumed:
        text += f"; resuming in round {state.round + 1}, {resume_point(state)}"
    announce(run, text)
    slow_bf16 = slow_bf16_note(context.device, config.amp)
    if slow_bf16 is not None:
        announce(run, slow_bf16)
    if run.data.note is not None:
        announce(run, f"note: {run.data.note}")


def resume_point(state: SearchState) -> str:
    """Where a resumed search continues: the phase, and how far into it."""
    if state.phase == RERANK:
        done = state.rerank_index
        text = f"phase rerank, {counted(done, 're-rank training')} done"
        return text + (f", epoch {state.epoch} of the next" if state.epoch else "")
    return f"phase {state.phase}, " + (f"after epoch {state.epoch}" if state.epoch
                                       else "at its start")


def make_progress(run: SearchRun, total: int, description: str):
    return step_progress(total, description, run.show_progress and run.is_main)


def close(progress) -> None:
    if progress is not None:
        progress.close()
