"""Parameter and multiply-add counts of a network."""

from __future__ import annotations

import torch
from torch import nn

from naonet.runtime import evaluating


def count_multiply_adds(model: nn.Module, input_size: tuple[int, int, int]) -> int:
    """Multiply-adds of one eval-mode forward pass for one image of ``input_size``.

    Counts convolutions and linear layers (what papers report as "mult-adds"); the
    pass runs on the 'meta' device, so no memory or time is spent on real tensors.
    """
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        kernel = module.weight.shape[1] * module.weight.shape[2] * module.weight.shape[3]
        total += output.numel() * kernel

    def linear_hook(module: nn.Linear, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    tensors = [*model.parameters(), *model.buffers()]
    on_meta = bool(tensors) and all(tensor.is_meta for tensor in tensors)
    meta_model = model if on_meta else _copy_to_meta(model)
    handles = []
    try:
        for module in meta_model.modules():
            if isinstance(module, nn.Conv2d):
                handles.append(module.register_forward_hook(conv_hook))
            elif isinstance(module, nn.Linear):
                handles.append(module.register_forward_hook(linear_hook))
        # a model passed in on 'meta' is left as it came
        with evaluating(meta_model), torch.no_grad():
            meta_model(torch.empty(1, *input_size, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return int(total)


def _copy_to_meta(model: nn.Module) -> nn.Module:
    import copy

    clone = copy.deepcopy(model)
    return clone.to("meta")


def halved(size: int, times: int = 1) -> int:
    """A side after ``times`` stride-2 layers of the networks (padding k // 2, or 1x1):
    ceil(size / 2) each."""
    for _ in range(times):
        size = (size + 1) // 2
    return size
