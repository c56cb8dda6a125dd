"""Augmentations: batched tensor versions (run on the device) and per-image transforms."""

from __future__ import annotations

import torch


def draw_crop_flip(batch: int, padding: int, generator: torch.Generator, flip: bool = True
                   ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The random numbers of :func:`random_crop_flip` for ``batch`` images, drawn on the
    CPU: crop offsets [2, B] (None without padding) and flip draws [B] (None without flip)."""
    offsets = (torch.randint(0, 2 * padding + 1, (2, batch), generator=generator)
               if padding > 0 else None)
    flips = torch.rand(batch, generator=generator) if flip else None
    return offsets, flips


def random_crop_flip(images: torch.Tensor, padding: int, generator: torch.Generator,
                     flip: bool = True) -> torch.Tensor:
    """Per-image random crop after zero padding, and random horizontal flip.

    images: [B, C, H, W] (any dtype); the offsets come from ``generator`` (on the CPU) so
    the same seed gives the same batch on every device.
    """
    offsets, flips = draw_crop_flip(images.shape[0], padding, generator, flip)
    return crop_flip(images, padding, offsets, flips)


def crop_flip(images: torch.Tensor, padding: int, offsets: torch.Tensor | None,
              flips: torch.Tensor | None) -> torch.Tensor:
    """Crop and flip with given random numbers (from :func:`draw_crop_flip`, on any device):
    image ``i`` is cropped at rows/cols ``offsets[:, i]`` of the zero-padded image and
    flipped when ``flips[i] < 0.5``."""
    batch, channels, height, width = images.shape
    device = images.device
    if padding > 0:
        padded = torch.nn.functional.pad(images, (padding,) * 4)  # [B, C, H+2p, W+2p]
        offsets = offsets.to(device, non_blocking=True)
        rows = offsets[0, :, None] + torch.arange(height, device=device)  # [B, H]
        cols = offsets[1, :, None] + torch.arange(width, device=device)  # [B, W]
        batch_index = torch.arange(batch, device=device)[:, None, None, None]
        channel_index = torch.arange(channels, device=device)[None, :, None, None]
        images = padded[batch_index, channel_index, rows[:, None, :, None],
                        cols[:, None, None, :]]  # [B, C, H, W]
    if flips is not None:
        flipped = flips.to(device, non_blocking=True) < 0.5
        images = torch.where(flipped[:, None, None, None], images.flip(3), images)
    return images


def cutout(images: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one ``length`` x ``length`` square per image, centred anywhere (clipped at the
    border), as in DeVries & Taylor 2017. images: [B, C, H, W], already normalised."""
    if length <= 0:
        return images
    batch, _, height, width = images.shape
    return cutout_at(images, length, draw_cutout(batch, height, width, generator))


def draw_cutout(batch: int, height: int, width: int, generator: torch.Generator
                ) -> torch.Tensor:
    """Square centres [2, B] (row, column) of :func:`cutout`, drawn on the CPU."""
    return torch.stack([torch.randint(0, height, (batch,), generator=generator),
                        torch.randint(0, width, (batch,), generator=generator)])


def cutout_at(images: torch.Tensor, length: int, centres: torch.Tensor) -> torch.Tensor:
    """Zero the ``length`` x ``length`` square centred at ``centres[:, i]`` in image ``i``."""
    _, _, height, width = images.shape
    device = images.device
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
