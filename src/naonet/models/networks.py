"""The discrete NAONet networks (CIFAR and ImageNet skeletons) for any architecture.

``build_network(architecture, config)`` builds one (a cell space's ``build_network``
calls it; ``naonet.create_model`` is the package's constructor by name). ``forward``
returns ``(logits, aux_logits)``; ``aux_logits`` is None in eval mode or without the
auxiliary head.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from naonet.errors import UserError
from naonet.models.cells import DiscreteCell, StateShape
from naonet.options import check_field_types
from naonet.spaces import Architecture

STEM_MULTIPLIER = 3  # CIFAR stem width is 3 C


def check_network_size(channels: int, layers: int, prefix: str = "") -> None:
    """A NAONet's width and depth in range; ``prefix`` names the options they came from
    (``rerank-`` for the search's re-rank network)."""
    if channels < 2 or channels % 2:
        raise UserError(f"--{prefix}channels must be an even number >= 2, got {channels}")
    if layers < 1:
        raise UserError(f"--{prefix}layers (cells per stage, N) must be >= 1, got {layers}")


def check_keep_probs(keep_prob: float, drop_path_keep_prob: float, prefix: str = "") -> None:
    """Dropout's and drop path's keep probabilities in (0, 1]."""
    for name, value in (("keep-prob", keep_prob), ("drop-path-keep-prob", drop_path_keep_prob)):
        if not 0.0 < value <= 1.0:
            raise UserError(f"--{prefix}{name} must be in (0, 1], got {value}")


@dataclass(frozen=True)
class NetworkConfig:
    """Macro structure of a NAONet: skeleton, width C, cells per stage N, head."""

    skeleton: str = "cifar"
    channels: int = 36
    layers: int = 6
    num_classes: int = 10
    aux_head: bool = True
    keep_prob: float = 0.6
    drop_path_keep_prob: float = 0.8
    # The released code (HEAD) drops every branch; True leaves the space's parameter-free
    # pass-throughs (identity, zero) alone, as an earlier released version did.
    drop_path_exempts_pass_through: bool = False

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.skeleton not in SKELETONS:
            raise UserError(f"unknown network skeleton {self.skeleton!r}; use one of: "
                            f"{', '.join(SKELETONS)}")
        check_network_size(self.channels, self.layers)
        if self.num_classes < 1:
            raise UserError(f"num_classes must be >= 1, got {self.num_classes}")
        check_keep_probs(self.keep_prob, self.drop_path_keep_prob)

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """The network's size in a few words, for messages."""
        return (f"{self.skeleton} C {self.channels} N {self.layers}, "
                f"{self.num_classes} classes")


AUX_HIDDEN_CHANNELS = (128, 768)  # the auxiliary head's two convolutions
AUX_SECOND_KERNEL = 2


def cell_layout(layers: int) -> tuple[int, tuple[int, int]]:
    """The 3N + 2 cells of a network with N cells per stage, and the indices of its two
    reduction cells (after N and after 2N + 1 cells); the auxiliary head reads the last."""
    return 3 * layers + 2, (layers, 2 * layers + 1)


def layers_of(num_cells: int) -> int | None:
    """N, the cells per stage, of a network of ``num_cells`` cells (the inverse of
    ``cell_layout``); None where no N gives that many."""
    layers = round((num_cells - cell_layout(0)[0]) / (cell_layout(1)[0] - cell_layout(0)[0]))
    return layers if layers >= 1 and cell_layout(layers)[0] == num_cells else None


class AuxiliaryHead(nn.Module):
    """Auxiliary classifier on the output of the second reduction cell."""

    def __init__(self, channels: int, num_classes: int, pool_stride: int):
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=pool_stride, padding=0, count_include_pad=False)
        hidden, wide = AUX_HIDDEN_CHANNELS
        self.conv1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Conv2d(hidden, wide, AUX_SECOND_KERNEL, bias=False)
        self.bn2 = nn.BatchNorm2d(wide)
        self.classifier = nn.Linear(wide, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(x)
        pool = self.pool
        if min(x.shape[-2:]) >= pool.kernel_size + pool.stride:
            x = pool(x)
        else:
            # Feature maps smaller than the released 8x8 (CIFAR) / 7x7 (ImageNet): pool to
            # the 2x2 its second convolution expects instead of failing.
            x = F.adaptive_avg_pool2d(x, AUX_SECOND_KERNEL)
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        if x.shape[-1] > 1 or x.shape[-2] > 1:
            # Larger images than the released ones: average what is left (at the released
            # sizes it is already 1x1, so their outputs are unchanged).
            x = F.adaptive_avg_pool2d(x, 1)
        return self.classifier(torch.flatten(x, 1))


def _cifar_stems(channels: int) -> dict[str, nn.Module]:
    """Conv3x3(3 -> 3C) + BN; both inputs of the first cell are its output."""
    stem = nn.Sequential()
    stem.add_module("conv", nn.Conv2d(3, STEM_MULTIPLIER * channels, 3, padding=1, bias=False))
    stem.add_module("bn", nn.BatchNorm2d(STEM_MULTIPLIER * channels))
    return {"stem": stem}


def _imagenet_stems(channels: int) -> dict[str, nn.Module]:
    """stem0: two stride-2 convs (to 1/4); stem1: one more (to 1/8)."""
    stem0 = nn.Sequential()
    stem0.add_module("conv1", nn.Conv2d(3, channels // 2, 3, 2, 1, bias=False))
    stem0.add_module("bn1", nn.BatchNorm2d(channels // 2))
    stem0.add_module("relu", nn.ReLU())
    stem0.add_module("conv2", nn.Conv2d(channels // 2, channels, 3, 2, 1, bias=False))
    stem0.add_module("bn2", nn.BatchNorm2d(channels))
    stem1 = nn.Sequential()
    stem1.add_module("relu", nn.ReLU())
    stem1.add_module("conv", nn.Conv2d(channels, channels, 3, 2, 1, bias=False))
    stem1.add_module("bn", nn.BatchNorm2d(channels))
    return {"stem0": stem0, "stem1": stem1}


@dataclass(frozen=True)
class Skeleton:
    """How a network family starts: its stems (applied in a chain, the last two outputs
    feeding the first cell), their output shapes, and the aux head's pooling stride."""

    stems: Callable[[int], dict[str, nn.Module]]
    stem_shapes: Callable[[int], tuple[StateShape, StateShape]]
    aux_pool_stride: int


SKELETONS: dict[str, Skeleton] = {
    "cifar": Skeleton(_cifar_stems,
                      lambda c: (StateShape(STEM_MULTIPLIER * c, 1),) * 2, aux_pool_stride=3),
    "imagenet": Skeleton(_imagenet_stems,
                         lambda c: (StateShape(c, 4), StateShape(c, 8)), aux_pool_stride=2),
}


class CellStack(nn.Module):
    """The macro skeleton shared by NAONet and the supernet: stems, ``3N + 2`` cells
    (reductions at N and 2N + 1, each doubling C), optional auxiliary head on the second
    reduction cell, global pooling, dropout and a linear classifier, with drop path
    growing over training. Subclasses supply the cells through ``make_cell``."""

    def __init__(self, config, make_cell: Callable[..., nn.Module]):
        """``config``: a NetworkConfig or any object with its macro fields (skeleton,
        channels, layers, num_classes, aux_head, keep_prob, drop_path_keep_prob)."""
        super().__init__()
        self.config = config
        skeleton = SKELETONS[config.skeleton]
        stems = skeleton.stems(config.channels)
        self.stem_names = list(stems)
        for name, module in stems.items():
            self.add_module(name, module)
        num_cells, self.reduction_indices = cell_layout(config.layers)
        self.aux_index = self.reduction_indices[-1]
        shapes = list(skeleton.stem_shapes(config.channels))
        channels = config.channels
        self.cells = nn.ModuleList()
        for index in range(num_cells):
            reduction = index in self.reduction_indices
            channels = channels * 2 if reduction else channels
            cell = make_cell(shapes[0], shapes[1], channels, reduction,
                             depth_ratio=(index + 1) / num_cells)
            self.cells.append(cell)
            shapes = [shapes[1], cell.out_shape]
            if config.aux_head and index == self.aux_index:
                self.aux_head = AuxiliaryHead(cell.out_shape.channels, config.num_classes,
                                              skeleton.aux_pool_stride)
        self.dropout = nn.Dropout(1.0 - config.keep_prob)
        self.classifier = nn.Linear(shapes[1].channels, config.num_classes)
        # Drop probability at the deepest cell right now: (1 - keep) * training progress.
        self.register_buffer("drop_path_rate", torch.zeros(()), persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        for weight in self.parameters():
            if weight.dim() >= 2:
                nn.init.kaiming_normal_(weight)

    def set_training_progress(self, fraction: float) -> None:
        """Drop path grows linearly with training progress (``(step + 1) / steps``)."""
        self.drop_path_rate.fill_(min(max(fraction, 0.0), 1.0) *
                                  (1.0 - self.config.drop_path_keep_prob))

    @property
    def uses_drop_path(self) -> bool:
        return self.config.drop_path_keep_prob < 1.0

    def _run_stems(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = [images]
        for name in self.stem_names:
            outputs.append(getattr(self, name)(outputs[-1]))
        return outputs[-2] if len(self.stem_names) > 1 else outputs[-1], outputs[-1]

    def _run(self, images: torch.Tensor, run_cell: Callable[..., torch.Tensor]
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Stems, then ``run_cell(cell, s0, s1, drop_rate)`` for every cell, then the heads."""
        s0, s1 = self._run_stems(images)
        drop_rate = self.drop_path_rate if (self.training and self.uses_drop_path) else None
        aux_logits = None
        for index, cell in enumerate(self.cells):
            s0, s1 = s1, run_cell(cell, s0, s1, drop_rate)
            if index == self.aux_index and self.training and self.config.aux_head:
                aux_logits = self.aux_head(s1)
        features = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(s1, 1), 1)
        return self.classifier(self.dropout(features)), aux_logits


class NAONet(CellStack):
    """The discrete network of one architecture."""

    def __init__(self, architecture: Architecture, config: NetworkConfig):
        def make_cell(shape0, shape1, channels, reduction, depth_ratio):
            cell_arch = architecture.reduction if reduction else architecture.normal
            return DiscreteCell(architecture.space, cell_arch, shape0, shape1, channels,
                                reduction, depth_ratio,
                                exempt_pass_through=config.drop_path_exempts_pass_through)

        super().__init__(config, make_cell)
        self.architecture = architecture

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self._run(images, lambda cell, s0, s1, drop_rate: cell(s0, s1, drop_rate))


def build_network(architecture: Hashable, config: object | None = None,
                  **overrides) -> nn.Module:
    """Build the discrete network of ``architecture``; keyword overrides edit ``config``.

    Any space's architecture: a NAO cell architecture builds a :class:`NAONet` (config: a
    :class:`NetworkConfig`, by default NAONet's); one of another space is built by its
    space (``space.build_network``, with that space's ``network_config``; default: its
    network config's defaults, as ``naonet.create_model`` makes it)."""
    space = getattr(architecture, "space", None)
    if not isinstance(architecture, Architecture):
        if not callable(getattr(space, "build_network", None)):
            raise UserError(f"build_network takes an architecture, not a "
                            f"{type(architecture).__name__}; read a name or string with "
                            "naonet.spaces.resolve_architecture")
        if config is None or overrides:  # as create_model makes a config from values
            config = space.network_config_from_dict(
                {**(config.to_dict() if config is not None else {}), **overrides})
        return space.build_network(architecture, config)
    config = config or NetworkConfig()
    if overrides:
        config = NetworkConfig(**{**config.to_dict(), **overrides})
    return NAONet(architecture, config)


def count_parameters(model: nn.Module, include_aux: bool = False) -> int:
    """Trainable parameters, excluding the auxiliary head unless asked."""
    return sum(p.numel() for name, p in model.named_parameters()
               if include_aux or not name.startswith("aux_head."))
