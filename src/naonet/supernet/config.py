"""The supernet's configuration: the discrete network's macro skeleton plus search defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from naonet.models.networks import NetworkConfig
from naonet.options import check_field_types


@dataclass(frozen=True)
class SupernetConfig:
    """Macro structure of the weight-sharing supernet (defaults of the released search).

    The fields mean what they mean in :class:`naonet.models.NetworkConfig`; only the
    defaults differ: N 3, C 20, no auxiliary head, no dropout, drop path 0.9.
    """

    skeleton: str = "cifar"
    channels: int = 20
    layers: int = 3
    num_classes: int = 10
    aux_head: bool = False
    keep_prob: float = 1.0
    drop_path_keep_prob: float = 0.9
    drop_path_exempts_pass_through: bool = False  # see NetworkConfig

    def __post_init__(self) -> None:
        check_field_types(self)
        self.network_config()  # the discrete config validates every shared field

    def network_config(self) -> NetworkConfig:
        """The discrete network of the same macro structure, without the auxiliary head:
        balanced sampling weighs architectures by its parameter count."""
        return NetworkConfig(**{**asdict(self), "aux_head": False})

    def to_dict(self) -> dict:
        return asdict(self)
