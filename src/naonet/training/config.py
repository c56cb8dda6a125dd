"""The training configuration: one typed, validated dataclass, presets, and file loading.

Resolution order: preset, then a YAML/JSON config file, then command-line flags. The
resolved config is saved in the run folder and inside every checkpoint.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from naonet import options
from naonet.data import DataConfig
from naonet.data.registry import own_size_as_zero
from naonet.errors import UserError
from naonet.models.networks import NetworkConfig, check_keep_probs
from naonet.runtime import AMP_MODES, COMPILE_MODES, HOST_ALLOCATORS


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run of a discrete architecture."""

    # what to train
    arch: str = "naonet-v2"
    space: str | None = None
    # data
    dataset: str = "cifar10"
    data: str = "data"
    download: bool = False
    valid_size: int = 0
    train_subset: int = 0
    test_subset: int = 0
    image_size: int = 0
    pipeline: str = "auto"
    workers: int = 2
    cutout: int = 16
    autoaugment: bool = False
    # network
    channels: int = NetworkConfig.channels
    layers: int = NetworkConfig.layers
    aux_head: bool = NetworkConfig.aux_head
    aux_weight: float = 0.4
    keep_prob: float = NetworkConfig.keep_prob
    drop_path_keep_prob: float = NetworkConfig.drop_path_keep_prob
    # released HEAD: drop every branch
    drop_path_exempts_pass_through: bool = NetworkConfig.drop_path_exempts_pass_through
    # optimisation
    epochs: int = 600
    batch_size: int = 128
    eval_batch_size: int = 256
    lr: float = 0.025
    lr_schedule: str = "cosine"  # 'cosine' (to lr_min) | 'exponential' (x lr_gamma per epoch)
    lr_min: float = 0.0
    lr_gamma: float = 0.97
    scale_lr_with_world_size: bool = True  # batch and lr grow with the number of processes
    momentum: float = 0.9
    nesterov: bool = False  # NAS-Bench-201 trained its cells with Nesterov momentum
    weight_decay: float = 5e-4
    grad_clip: float = 5.0  # largest gradient norm; 0: no clipping (NAS-Bench-201)
    label_smoothing: float = 0.0
    # execution (fast paths: 'auto' picks per device, see naonet.runtime)
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"  # 'auto' (bf16 on CUDA, else none) | 'none' | 'bf16' | 'fp16'
    channels_last: bool = True  # NHWC activations (2x faster on the CPU, tensor cores on CUDA)
    compile: str = "auto"  # torch.compile: 'auto' (CUDA only) | 'on' | 'off'
    host_allocator: str = "auto"  # 'auto' (retain on the CPU) | 'retain' | 'system'
    output: str = "runs/train"
    log_every: int = 20  # steps between progress-bar updates (each one syncs the device)
    tensorboard: bool = False  # also write per-epoch scalars to OUTPUT/tensorboard

    def __post_init__(self) -> None:
        options.check_values(self, at_least=dict(
            epochs=1, batch_size=1, test_subset=0, workers=0, eval_batch_size=1, lr_min=0,
            momentum=0, weight_decay=0, aux_weight=0, image_size=0, grad_clip=0, cutout=0,
            valid_size=0, train_subset=0, label_smoothing=0, log_every=1),
            above=dict(lr=0, lr_gamma=0),
            # at momentum 1 SGD never forgets a gradient; above, it diverges
            below=dict(momentum=1, label_smoothing=1))  # first: the checks below read them
        # the data set's own size is said one way (0): --image-size 32 on a folder resumes without
        object.__setattr__(self, "image_size", own_size_as_zero(self.dataset, self.image_size))
        checks = [
            (self.lr_schedule != "cosine" or self.lr_min <= self.lr,  # it would rise
             f"--lr-min {self.lr_min:g} is above --lr {self.lr:g}; the cosine schedule "
             "decays from --lr to --lr-min"),
            (self.lr_schedule in ("cosine", "exponential"),
             f"--lr-schedule must be 'cosine' or 'exponential', got {self.lr_schedule!r}"),
            (self.amp in AMP_MODES, f"--amp must be {', '.join(AMP_MODES)}, got {self.amp!r}"),
            (self.compile in COMPILE_MODES,
             f"--compile must be {', '.join(COMPILE_MODES)}, got {self.compile!r}"),
            (self.host_allocator in HOST_ALLOCATORS,
             f"--host-allocator must be {', '.join(HOST_ALLOCATORS)}, got "
             f"{self.host_allocator!r}"),
            (options.valid_device(self.device), options.DEVICE_HELP),
            (self.momentum > 0 or not self.nesterov, "--nesterov needs --momentum above 0"),
            (self.output.strip() != "", "--output must name the run folder"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)
        # as the network checks them (it is built only once the data is read; its width
        # rule is the NAONet spaces', so it waits for the network)
        check_keep_probs(self.keep_prob, self.drop_path_keep_prob)

    def data_config(self) -> DataConfig:
        return DataConfig.of(self)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, dict] = {
    # NAONet-V2-36 on CIFAR-10 (2.57 % test error in the seed README). The published
    # recipes train in float32, as released: bf16 autocast (--amp auto or bf16) is faster
    # on a GPU, but what it does to the published accuracy is not measured.
    "naonet-v2-cifar10": dict(
        arch="naonet-v2", dataset="cifar10", channels=36, layers=6, aux_head=True,
        aux_weight=0.4, keep_prob=0.6, drop_path_keep_prob=0.8, epochs=600, batch_size=128,
        lr=0.025, lr_schedule="cosine", lr_min=0.0, weight_decay=5e-4, grad_clip=5.0,
        cutout=16, label_smoothing=0.0, eval_batch_size=500, amp="none"),
    # NAONet-V2 on ImageNet (25.5 % / 8.2 % top-1 / top-5); per-GPU batch and lr.
    "naonet-v2-imagenet": dict(
        arch="naonet-v2", dataset="imagenet", channels=52, layers=4, aux_head=True,
        aux_weight=0.4, keep_prob=1.0, drop_path_keep_prob=1.0, epochs=250, batch_size=128,
        lr=0.1, lr_schedule="exponential", lr_gamma=0.97, weight_decay=3e-5, grad_clip=5.0,
        label_smoothing=0.1, cutout=0, eval_batch_size=500, amp="none"),
    # A first run on a CPU in a few minutes: the same code path at a tiny size.
    "quick-cifar10": dict(
        arch="naonet-v2", dataset="cifar10", channels=16, layers=1, aux_head=True,
        aux_weight=0.4, keep_prob=1.0, drop_path_keep_prob=1.0, epochs=3, batch_size=64,
        lr=0.05, lr_schedule="cosine", weight_decay=3e-4, grad_clip=5.0, cutout=0,
        train_subset=5000, test_subset=2000),
    # NAS-Bench-201's recipe for its CIFAR-10 cells (Dong & Yang 2020, table 1): C 16,
    # 5 cells per stage, 200 epochs of Nesterov SGD, batch 256, lr 0.1 cosine to 0,
    # weight decay 5e-4, flip and crop only; the arch is the table's best (index 6111,
    # 94.37 % test). Train a searched cell with --arch.
    "nb201-cifar10": dict(
        arch="|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|"
             "nor_conv_3x3~1|nor_conv_1x1~2|",
        dataset="cifar10", channels=16, layers=5, aux_head=False, keep_prob=1.0,
        drop_path_keep_prob=1.0, epochs=200, batch_size=256, lr=0.1, lr_schedule="cosine",
        lr_min=0.0, momentum=0.9, nesterov=True, weight_decay=5e-4, grad_clip=0.0,
        cutout=0, label_smoothing=0.0),
}


def field_names() -> set[str]:
    return options.field_names(TrainConfig)


def load_config_file(path: str | Path) -> dict:
    """Option overrides from a YAML or JSON file (keys are TrainConfig fields)."""
    return options.load_option_file(path, TrainConfig, "train")


def resolve_config(preset: str | None, file_values: dict | None = None,
                   flag_values: dict | None = None) -> TrainConfig:
    """Preset, then file, then flags (None means 'not given'); types are checked."""
    return options.resolve_options(TrainConfig, PRESETS, preset, file_values, flag_values, "train")
