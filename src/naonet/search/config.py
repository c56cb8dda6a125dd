"""The search configuration: one typed, validated dataclass, presets, and their resolution.

Every default is the released NAO-V2 search (``train_search.py`` of NAO_pytorch, see
SPEC sections 4-6) but the scoring: one set of batches for every architecture
(``scoring="fixed"``, measured on NAS-Bench-201), where the ``nao-v2-cifar10`` preset
scores each on its own random batch as released; every hidden choice of that script is
a named field here.
Resolution order: preset, then a YAML/JSON config file, then command-line flags. The
resolved config is saved in the run folder and inside the search checkpoint.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from naonet import options
from naonet.controller import ControllerConfig, ControllerTrainConfig
from naonet.controller.rounds import RoundConfig
from naonet.data import DataConfig
from naonet.data.registry import own_size_as_zero
from naonet.errors import UserError
from naonet.models.networks import check_keep_probs, check_network_size
from naonet.nb201.table import TABLE_PREFIX
from naonet.spaces.protocol import DEFAULT_SPACE, ENUMERABLE_SIZE, get_space
from naonet.supernet import SAMPLING_WEIGHTS, SCORE_METRICS
from naonet.supernet.config import SupernetConfig
from naonet.training.config import TrainConfig

SCORING_MODES = ("fixed", "per-architecture")
ONE_SHOT_STRATEGIES = ("nao", "random", "evolution")
SUPERNET_POOLS = ("children", "all", "space")
SEARCH_AMP_MODES = ("none", "bf16")  # fp16 would need a gradient scaler


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a NAO-V2 search run."""

    # what to search, on which data
    space: str = DEFAULT_SPACE
    dataset: str = "cifar10"
    data: str = "data"
    download: bool = False
    valid_size: int = 5000  # the released 45k/5k split of the CIFAR training set
    train_subset: int = 0
    image_size: int = 0
    pipeline: str = "auto"
    workers: int = 2
    cutout: int = 0
    # the supernet (SPEC 4)
    channels: int = SupernetConfig.channels
    layers: int = SupernetConfig.layers
    keep_prob: float = SupernetConfig.keep_prob
    drop_path_keep_prob: float = SupernetConfig.drop_path_keep_prob
    # released HEAD: drop every branch
    drop_path_exempts_pass_through: bool = SupernetConfig.drop_path_exempts_pass_through
    sampling: str = "balanced"
    # which architectures a round's supernet training samples from: "children" (the
    # round's new architectures, as released) or "all" (the whole pool so far and the
    # new ones, so every architecture scored was trained on in that round)
    supernet_pool: str = "children"
    # a few-shot supernet (naonet.supernet.few_shot; None: one supernet, as released): one
    # copy of the supernet per choice at this position of the space's integer coding
    # (nb201: the edge, in the string's order; 3 is edge 0 -> 3), split from the one
    # supernet after ``few_shot_after`` rounds
    few_shot_split: int | None = None
    few_shot_after: int = 1
    # the loop (SPEC 5)
    rounds: int = 4
    seed_pool_size: int = 1000
    seed_pool_file: str = ""  # start from these architectures instead of random ones
    new_architectures: int = 300
    top_seeds: int = 100
    # what proposes each round's new architectures: nao (the controller), or the
    # baselines on the same supernet and the same counts: random (new random ones) or
    # evolution (regularized evolution in rounds, Real et al. 2019's P 100, S 25)
    strategy: str = "nao"
    population_size: int = 100
    sample_size: int = 25
    # one NAO round (naonet.controller.rounds): the released search trains one controller
    # on the raw scores and leaves a round short when the decoder finds too few
    score_transform: str = "raw"
    fresh_controller: bool = False
    fill: str = "none"
    max_lambda: int = RoundConfig.max_lambda  # the released search's 51
    # supernet training, restarted every round (V2 change 3)
    supernet_epochs: int = 50
    batch_size: int = 64
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0  # of the supernet and the re-rank; 0: no clipping
    restart_schedule: bool = True
    reinit_supernet: bool = False
    scale_lr_with_world_size: bool = True
    # The released code zeroes gradients (never drops them), so SGD keeps applying
    # momentum and weight decay to parameters off the sampled path.
    update_off_path: bool = True
    # scoring with the supernet
    scoring: str = "fixed"
    score_metric: str = "accuracy"  # or 'loss': minus the mean cross-entropy
    eval_batch_size: int = 500
    eval_batches: int = 1
    # reporting only, never seen by the search: a benchmark table (table:CSV) to look the
    # pool's true accuracies up in (nb201)
    reference: str = ""
    # the controller (SPEC 6), by default as the controller's own configs are
    controller_epochs: int = ControllerTrainConfig.epochs
    controller_batch_size: int = ControllerTrainConfig.batch_size
    controller_lr: float = ControllerTrainConfig.learning_rate
    controller_weight_decay: float = ControllerTrainConfig.weight_decay
    controller_grad_clip: float = ControllerTrainConfig.grad_clip
    # loss = t * MSE + (1 - t) * NLL
    controller_trade_off: float = ControllerTrainConfig.mse_weight
    controller_valid_fraction: float = ControllerTrainConfig.valid_fraction
    controller_augment: int = ControllerTrainConfig.augment_factor
    controller_embedding_size: int = ControllerConfig.embedding_size
    controller_hidden_size: int = ControllerConfig.hidden_size
    controller_encoder_layers: int = ControllerConfig.encoder_layers
    controller_decoder_layers: int = ControllerConfig.decoder_layers
    controller_mlp_layers: int = ControllerConfig.mlp_layers
    controller_mlp_hidden_size: int = ControllerConfig.mlp_hidden_size
    controller_mlp_dropout: float = ControllerConfig.mlp_dropout
    # re-ranking the best architectures by training them from scratch
    rerank_top: int = 5
    rerank_epochs: int = 10
    rerank_channels: int = 20
    rerank_layers: int = 3
    # the regularisation of the final network's training (NAONet's)
    rerank_keep_prob: float = TrainConfig.keep_prob
    rerank_drop_path_keep_prob: float = TrainConfig.drop_path_keep_prob
    rerank_aux_weight: float = TrainConfig.aux_weight  # 0: no auxiliary head
    # Every candidate starts from the same seed and trains on the same batches (common
    # random numbers, meant to keep the training's noise out of their differences; on
    # NB201 it changed no choice: docs/nas-bench-201.md); False: a seed of its own each,
    # as the released code's running random state gave.
    rerank_common_seeds: bool = False
    # Each architecture trains this many times, from other seeds; its accuracy is the
    # mean (the released code: once).
    rerank_repeats: int = 1
    # CPU processes that run the re-rank's trainings at once (the same results as one)
    rerank_processes: int = 1
    # The re-rank (and the final list) take turns among the choices at this position of
    # the space's coding: the best-scored architecture of each choice, then the second
    # of each, ...; None: the best by score alone. A few-shot supernet always takes
    # turns at its split (its copies' scores are not on one scale).
    rerank_turns: int | None = None
    # a budget on the final network (naonet.constraints; None: no limit)
    max_params: int | None = None
    max_macs: int | None = None
    max_latency_ms: float | None = None
    latency_batch: int = 1
    # execution
    seed: int = 0
    device: str = "auto"
    # torch's intra-op threads on the CPU (0: torch's default, which follows
    # OMP_NUM_THREADS, else one per core). Under passive OpenMP waiting (naonet's default)
    # every kernel first wakes the sleeping threads, and a small supernet's kernels lose
    # more to that than a second thread gains: the NAS-Bench-201 CPU presets run on one
    # (docs/nas-bench-201.md). A run is reproducible for a given thread count.
    threads: int = 0
    amp: str = "none"
    # fast paths, resolved per device as training resolves them (naonet.runtime)
    channels_last: bool = True  # NHWC activations for supernet, scoring and re-rank
    host_allocator: str = "auto"  # keep freed host memory (CPU): no page faults per step
    output: str = "runs/search"
    log_every: int = 20
    plot: bool = True

    def __post_init__(self) -> None:
        options.check_values(self, at_least=dict(
            workers=0, threads=0, momentum=0, weight_decay=0, image_size=0,
            controller_weight_decay=0, controller_epochs=1, controller_batch_size=1,
            controller_augment=1, grad_clip=0, train_subset=0, cutout=0),
            above=dict(controller_lr=0, controller_grad_clip=0),
            below=dict(momentum=1))  # at 1 SGD never forgets a gradient; above, it diverges
        # the data set's own size is said one way (0): --image-size 32 on a folder resumes without
        object.__setattr__(self, "image_size", own_size_as_zero(self.dataset, self.image_size))
        get_space(self.space)  # an unknown one is named before anything else is checked
        for ok, message in self._checks():
            if not ok:
                raise UserError(message)
        # The networks' options as the networks check them, named as given here; the
        # controller configs validate their own fields.
        check_network_size(self.channels, self.layers)
        check_keep_probs(self.keep_prob, self.drop_path_keep_prob)
        check_network_size(self.rerank_channels, self.rerank_layers, "rerank-")
        check_keep_probs(self.rerank_keep_prob, self.rerank_drop_path_keep_prob, "rerank-")
        self.controller_config()
        self.controller_train_config()
        self.round_config()
        self.limits()

    def limits(self, image_size: int = 32, final_size: tuple[int, int] = (0, 0)):
        """The budget on the final network (validated), measured on ``image_size`` px at
        ``final_size`` (channels, layers; 0: the space's ``final_size``)."""
        from naonet.constraints import Budget

        return Budget(self.max_params, self.max_macs, self.max_latency_ms, self.latency_batch,
                      channels=final_size[0], layers=final_size[1], image_size=image_size)

    def _checks(self) -> list[tuple[bool, str]]:
        positive = ("rounds", "seed_pool_size", "top_seeds", "max_lambda", "supernet_epochs",
                    "batch_size", "eval_batch_size", "eval_batches", "rerank_epochs",
                    "rerank_repeats", "rerank_processes",
                    "log_every")
        return [
            *[(getattr(self, name) >= 1, f"{options.flag_name(name)} must be >= 1, got "
               f"{getattr(self, name)}") for name in positive],
            (self.new_architectures >= 0, "--new-architectures must be >= 0"),
            # the controller learns from pairs of scored architectures (else the folder
            # would be refused after its first round, with the supernet trained); one
            # round trains no controller
            (self.strategy != "nao" or self.rounds == 1 or self.seed_pool_file
             or self.seed_pool_size >= 2,
             f"--seed-pool-size must be >= 2 for NAO: its controller learns from the "
             f"scores of at least 2 architectures, got {self.seed_pool_size}"),
            (self.seed_pool_file or self.seed_pool_size <= get_space(self.space).size,
             f"--seed-pool-size {self.seed_pool_size:,} is more than the "
             f"{get_space(self.space).size:,} architectures of the {self.space} space; pass "
             "at most that many"),
            (self.strategy in ONE_SHOT_STRATEGIES, f"--strategy must be one of: "
             f"{', '.join(ONE_SHOT_STRATEGIES)}"),
            (self.strategy != "evolution" or 1 <= self.sample_size <= self.population_size,
             f"evolution needs 1 <= "
             f"--sample-size ({self.sample_size}) <= --population-size "
             f"({self.population_size})"),
            (self.rerank_top >= 0, "--rerank-top must be >= 0 (0: no re-ranking)"),
            (self.valid_size >= 1, "--valid-size must be >= 1: architectures are scored on "
             "images held out of the training set"),
            (self.sampling in SAMPLING_WEIGHTS,
             f"--sampling must be one of: {', '.join(SAMPLING_WEIGHTS)}"),
            (self.supernet_pool in SUPERNET_POOLS, f"--supernet-pool must be one of: "
             f"{', '.join(SUPERNET_POOLS)}"),
            # it lists the whole space each round: only a space small enough to list
            # (NAS-Bench-201 holds 15,625 cells; the NAO cell spaces more than 10^20)
            (self.supernet_pool != "space" or get_space(self.space).size <= ENUMERABLE_SIZE,
             f"--supernet-pool space trains on every architecture of the space, and the "
             f"{self.space!r} space holds too many; use --supernet-pool all"),
            *self._position_checks(),
            (self.scoring in SCORING_MODES, f"--scoring must be one of: "
             f"{', '.join(SCORING_MODES)}"),
            (not self.reference or self.reference.startswith(TABLE_PREFIX),
             f"--reference {self.reference!r} must be table:PATH (a benchmark CSV)"),
            (self.score_metric in SCORE_METRICS, f"--score-metric must be one of: "
             f"{', '.join(SCORE_METRICS)}"),
            (0 < self.lr and 0 <= self.lr_min <= self.lr, "need 0 <= --lr-min <= --lr, --lr > 0"),
            (0.0 <= self.controller_trade_off <= 1.0, "--controller-trade-off must be in [0, 1]"),
            (self.amp != "fp16", "--amp fp16 is not supported by the search (it trains "
                                 "without a gradient scaler); use --amp bf16 or none"),
            (self.amp in SEARCH_AMP_MODES, f"--amp must be {' or '.join(SEARCH_AMP_MODES)}, "
                                           f"got {self.amp!r}"),
            (self.rerank_aux_weight >= 0, "--rerank-aux-weight must be >= 0"),
            (options.valid_device(self.device), options.DEVICE_HELP),
            (self.output.strip() != "", "--output must name the run folder"),
        ]

    def _position_checks(self) -> list[tuple[bool, str]]:
        checks = []
        if self.rerank_turns is not None:
            checks.append(self._position_check("--rerank-turns", self.rerank_turns))
        if self.few_shot_split is None:
            return checks
        return checks + [
            self._position_check("--few-shot-split", self.few_shot_split),
            (0 <= self.few_shot_after < self.rounds,
             f"--few-shot-after must be 0 to --rounds - 1 ({self.rounds - 1}), got "
             f"{self.few_shot_after}"),
            (self.rerank_turns in (None, self.few_shot_split),
             f"a few-shot supernet re-ranks by turns at its split ({self.few_shot_split}); "
             f"drop --rerank-turns {self.rerank_turns} or set it to the split"),
        ]

    def _position_check(self, flag: str, position: int) -> tuple[bool, str]:
        limits = get_space(self.space).integer_limits()
        return (0 <= position < len(limits) and limits[position] >= 2,
                f"{flag} must be a position 0-{len(limits) - 1} of the {self.space!r} "
                f"space's coding with 2 or more choices, got {position}")

    # ----------------------------------------------------------------- derived configs
    def data_config(self) -> DataConfig:
        """The search split: ``valid_size`` training images held out for scoring."""
        return DataConfig.of(self, with_test=False)

    def round_config(self) -> RoundConfig:
        return RoundConfig(seed_count=self.top_seeds, new_count=self.new_architectures,
                           max_lambda=self.max_lambda, score_transform=self.score_transform,
                           fresh_controller=self.fresh_controller, fill=self.fill)

    def controller_config(self) -> ControllerConfig:
        return ControllerConfig(
            embedding_size=self.controller_embedding_size,
            hidden_size=self.controller_hidden_size,
            encoder_layers=self.controller_encoder_layers,
            decoder_layers=self.controller_decoder_layers,
            mlp_layers=self.controller_mlp_layers,
            mlp_hidden_size=self.controller_mlp_hidden_size,
            mlp_dropout=self.controller_mlp_dropout)

    def controller_train_config(self) -> ControllerTrainConfig:
        return ControllerTrainConfig(
            epochs=self.controller_epochs, batch_size=self.controller_batch_size,
            learning_rate=self.controller_lr, weight_decay=self.controller_weight_decay,
            grad_clip=self.controller_grad_clip, mse_weight=self.controller_trade_off,
            nll_weight=1.0 - self.controller_trade_off,
            valid_fraction=self.controller_valid_fraction,
            augment_factor=self.controller_augment)

    def to_dict(self) -> dict:
        return asdict(self)


# The NAS-Bench-201 supernet recipe for a 2-core CPU (docs/nas-bench-201.md): the
# benchmark's 25k/25k split, images at 16 px, C 16 and one cell per stage, balanced
# sampling, scores by validation loss; batch 32 (twice the sampled cells of batch 64 per
# image) over 96 epochs, about 21 minutes on one thread (uniform and balanced side by
# side fit 30 minutes on 2 cores): tau 0.60 +- 0.04 over 3 seeds against 0.57 for
# counting parameters (batch 32 over 72 epochs: 0.57; batch 64 over 96: 0.53). One torch
# thread: under passive OpenMP waiting a second one makes this supernet's epochs twice as
# slow.
NB201_CPU_RECIPE = dict(
    space="nb201", dataset="cifar10", image_size=16, train_subset=25_000,
    valid_size=25_000, channels=16, layers=1, sampling="balanced", supernet_epochs=96,
    batch_size=32, lr=0.025, lr_min=0.0, eval_batch_size=250, eval_batches=8,
    score_metric="loss", threads=1)

PRESETS: dict[str, dict] = {
    # The released NAO-V2 search on CIFAR-10 (SPEC 5): meant for a GPU (about a day).
    # Each architecture is scored on its own random batch of 500, as released.
    "nao-v2-cifar10": dict(dataset="cifar10", scoring="per-architecture"),
    # A first search on a CPU in about 3 minutes on 2 cores: the same code path at a tiny
    # size (2000 training images, C 8, N 1, 2 rounds of 2 supernet epochs, 50 + 30
    # architectures scored on 100 images, a 1-epoch re-rank of the top 5).
    "quick-cifar10": dict(
        dataset="cifar10", train_subset=2000, valid_size=500, channels=8, layers=1,
        rounds=2, seed_pool_size=50, new_architectures=30, top_seeds=20,
        supernet_epochs=2, eval_batch_size=100, eval_batches=1, controller_epochs=100,
        rerank_top=5, rerank_epochs=1, rerank_channels=8, rerank_layers=1),
    # A first one-shot search on NAS-Bench-201 in a few minutes on 2 cores: the CPU
    # ranking recipe below at a tenth of the images (5000 training, 1000 scoring), 2
    # rounds of 3 supernet epochs, 100 + 50 cells scored, no re-ranking, one torch thread
    # (83-88 s on 2 cores; 101-136 s on two threads). Give it --reference table:CSV to see
    # the found cell's true accuracy.
    "quick-nb201": dict(
        space="nb201", dataset="cifar10", image_size=16, train_subset=5000,
        valid_size=1000, channels=16, layers=1, sampling="balanced", rounds=2,
        seed_pool_size=100, new_architectures=50, top_seeds=50, supernet_epochs=3,
        batch_size=64, lr=0.05, lr_min=0.0, eval_batch_size=250, eval_batches=4,
        score_metric="loss", controller_epochs=100, rerank_top=0, threads=1),
    # The NAS-Bench-201 supernet recipe for a 2-core CPU (above).
    "nb201-rank-cpu": NB201_CPU_RECIPE,
    # One-shot NAO-V2 on NAS-Bench-201 at that CPU scale, one search on 2 cores
    # (docs/nas-bench-201.md): the supernet recipe over 3 rounds of 24 epochs, trained on
    # every cell scored so far; 200 random cells, then 100 new ones a round, each scored
    # on the same 2000 images. The re-rank takes turns among the ops on edge 0 -> 3 (the
    # best-scored cell of each op, then the second of each, ...; one per canonical form)
    # and trains 6 of them from scratch for 3 epochs, two at a time, in a network of the
    # benchmark's depth (C 8, 5 cells per stage, 16 px): with one cell per stage a
    # residual cell has no advantage and the re-rank chose within noise. Its re-rank on
    # the saved pools of seeds 0-4 chose 94.02, 94.36, 93.69, 93.99 and 93.87 % (true
    # test accuracy; 93.99 on the mean). One torch thread (the recipe's threads=1); the
    # re-rank's two workers use both cores.
    "nb201-search-cpu": dict(
        NB201_CPU_RECIPE, rounds=3, supernet_epochs=24, supernet_pool="all",
        seed_pool_size=200, new_architectures=100, top_seeds=100, controller_epochs=200,
        rerank_turns=3, rerank_top=6, rerank_epochs=3, rerank_channels=8, rerank_layers=5,
        rerank_aux_weight=0.0, rerank_processes=2),
    # The paper's scale (C 16, 5 cells per stage, 32 px, 25k/25k, 50 epochs): a GPU.
    "nb201-rank-gpu": dict(
        space="nb201", dataset="cifar10", train_subset=25_000, valid_size=25_000,
        channels=16, layers=5, sampling="balanced", supernet_epochs=50, batch_size=64,
        lr=0.05, lr_min=0.0, eval_batch_size=500, eval_batches=20, score_metric="loss"),
}


def field_names() -> set[str]:
    return options.field_names(SearchConfig)


def load_config_file(path: str | Path) -> dict:
    """Option overrides from a YAML or JSON file (keys are SearchConfig fields)."""
    return options.load_option_file(path, SearchConfig, "search")


def resolve_search_config(preset: str | None, file_values: dict | None = None,
                          flag_values: dict | None = None) -> SearchConfig:
    """Preset, then file, then flags (None means 'not given'); types are checked."""
    return options.resolve_options(SearchConfig, PRESETS, preset, file_values, flag_values,
                                   "search")
