"""Discrete networks, their operations and cells."""

from naonet.models.complexity import count_multiply_adds
from naonet.models.networks import (
    SKELETONS,
    NAONet,
    NetworkConfig,
    build_network,
    count_parameters,
)

__all__ = [
    "SKELETONS",
    "NAONet",
    "NetworkConfig",
    "build_network",
    "count_multiply_adds",
    "count_parameters",
]
