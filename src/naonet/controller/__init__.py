"""The NAO controller: encoder, predictor and decoder over a space's token encoding;
its training on scored architectures and the generation of new architectures."""

from naonet.controller.config import ControllerConfig, ControllerTrainConfig
from naonet.controller.generation import (
    GenerationResult,
    generate_architectures,
)
from naonet.controller.model import Controller, ControllerOutput, Encoded
from naonet.controller.rounds import RoundConfig, RoundOutcome, nao_round, transform_scores
from naonet.controller.training import (
    ControllerReport,
    hamming_distance,
    normalise_scores,
    predictor_pairwise_accuracy,
    train_controller,
)

__all__ = [
    "Controller",
    "ControllerConfig",
    "ControllerOutput",
    "ControllerReport",
    "ControllerTrainConfig",
    "Encoded",
    "GenerationResult",
    "RoundConfig",
    "RoundOutcome",
    "generate_architectures",
    "hamming_distance",
    "nao_round",
    "normalise_scores",
    "predictor_pairwise_accuracy",
    "train_controller",
    "transform_scores",
]
