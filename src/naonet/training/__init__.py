"""Training and evaluation of discrete architectures."""

from naonet.training.config import PRESETS, TrainConfig, resolve_config
from naonet.training.engine import EpochStats, Precision, evaluate, train_one_epoch
from naonet.training.run import train

__all__ = [
    "PRESETS",
    "EpochStats",
    "Precision",
    "TrainConfig",
    "evaluate",
    "resolve_config",
    "train",
    "train_one_epoch",
]
