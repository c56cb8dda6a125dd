"""naonet: NAO-V2 (Balanced One-shot Neural Architecture Optimization) in PyTorch."""

import os

# OpenMP reads its wait policy when torch loads, and this package imports torch below:
# setting it in cli/main.py alone comes too late for `nao` (busy-waiting makes every run
# several times slower while another process computes).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from naonet.errors import UserError
from naonet.factory import PUBLISHED_MODELS, create_model
from naonet.models import NetworkConfig, build_network
from naonet.spaces import Architecture, get_space, named_architecture

__all__ = [
    "Architecture",
    "NetworkConfig",
    "PUBLISHED_MODELS",
    "UserError",
    "build_network",
    "create_model",
    "get_space",
    "named_architecture",
]
__version__ = "0.1.0"
