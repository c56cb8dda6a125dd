"""The one-shot supernet of NAO-V2: sampling, weight-sharing network, scoring."""

from naonet.supernet.config import SupernetConfig
from naonet.supernet.counting import (
    OPERATION_COSTS,
    STEM_COSTS,
    count_network_multiply_adds,
    count_network_parameters,
)
from naonet.supernet.few_shot import FewShotSupernet
from naonet.supernet.model import Supernet, SupernetCell, SupernetNode
from naonet.supernet.nb201 import NB201Supernet
from naonet.supernet.operations import LooseEndCombine, PerInputOperation
from naonet.supernet.sampling import (
    SAMPLING_WEIGHTS,
    PoolSampler,
    RandomSource,
    equal_group_shares,
    sample_architectures,
    sampling_probabilities,
)
from naonet.supernet.scoring import (
    SCORE_METRICS,
    batch_statistics,
    score_architectures,
)

__all__ = [
    "FewShotSupernet",
    "OPERATION_COSTS",
    "SAMPLING_WEIGHTS",
    "SCORE_METRICS",
    "STEM_COSTS",
    "LooseEndCombine",
    "NB201Supernet",
    "PerInputOperation",
    "PoolSampler",
    "RandomSource",
    "Supernet",
    "SupernetCell",
    "SupernetConfig",
    "SupernetNode",
    "batch_statistics",
    "count_network_multiply_adds",
    "count_network_parameters",
    "equal_group_shares",
    "sample_architectures",
    "sampling_probabilities",
    "score_architectures",
]
