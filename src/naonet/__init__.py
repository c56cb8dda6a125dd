"""naonet: NAO-V2 (Balanced One-shot Neural Architecture Optimization) in PyTorch."""

from naonet.errors import UserError
from naonet.models import NetworkConfig, build_network
from naonet.spaces import Architecture, get_space, named_architecture

__all__ = [
    "Architecture",
    "NetworkConfig",
    "UserError",
    "build_network",
    "get_space",
    "named_architecture",
]
__version__ = "0.1.0"
