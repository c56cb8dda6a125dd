"""Augmentations: batched tensor versions (run on the device) and per-image transforms."""

from __future__ import annotations

import torch


def random_crop_flip(images: torch.Tensor, padding: int, generator: torch.Generator,
                     flip: bool = True) -> torch.Tensor:
    """Per-image random crop after zero padding, and random horizontal flip.

    images: [B, C, H, W] (any dtype); the offsets come from ``generator`` (on the CPU) so
    the same seed gives the same batch on every device.
    """
    batch, channels, height, width = images.shape
    device = images.device
    if padding > 0:
        padded = torch.nn.functional.pad(images, (padding,) * 4)  # [B, C, H+2p, W+2p]
        offsets = torch.randint(0, 2 * padding + 1, (2, batch), generator=generator)
        offsets = offsets.to(device, non_blocking=True)
        rows = offsets[0, :, None] + torch.arange(height, device=device)  # [B, H]
        cols = offsets[1, :, None] + torch.arange(width, device=device)  # [B, W]
        batch_index = torch.arange(batch, device=device)[:, None, None, None]
        channel_index = torch.arange(channels, device=device)[None, :, None, None]
        images = padded[batch_index, channel_index, rows[:, None, :, None],
                        cols[:, None, None, :]]  # [B, C, H, W]
    if flip:
        flips = torch.rand(batch, generator=generator).to(device) < 0.5
        images = torch.where(flips[:, None, None, None], images.flip(3), images)
    return images


def cutout(images: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one ``length`` x ``length`` square per image, centred anywhere (clipped at the
    border), as in DeVries & Taylor 2017. images: [B, C, H, W], already normalised."""
    if length <= 0:
        return images
    batch, _, height, width = images.shape
    device = images.device
    centres = torch.stack([torch.randint(0, height, (batch,), generator=generator),
                           torch.randint(0, width, (batch,), generator=generator)])
    centres = centres.to(device, non_blocking=True)
    rows = torch.arange(height, device=device)[None, :]  # [1, H]
    cols = torch.arange(width, device=device)[None, :]
    half = length // 2
    in_rows = (rows >= centres[0, :, None] - half) & (rows < centres[0, :, None] + half)
    in_cols = (cols >= centres[1, :, None] - half) & (cols < centres[1, :, None] + half)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # [B, H, W]
    return images * keep[:, None, :, :].to(images.dtype)


class Cutout:
    """Per-image cutout for torchvision pipelines (tensor input, after normalisation)."""

    def __init__(self, length: int, generator: torch.Generator | None = None):
        self.length = length
        self.generator = generator

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        generator = self.generator or torch.default_generator
        return cutout(image[None], self.length, generator)[0]
