"""Training data for personalization: images at the training resolution and their VAE posteriors.

Two forms, as diffusers' training scripts see their images:

* ``LatentSet`` (centre crop, or images already square at the resolution): every image has one crop,
  so its posterior is encoded once and cached
  (with flipped copies when ``random_flip``: a uniform draw from the set flips half the time);
* ``AugmentedImages`` (random crop, diffusers' default ``RandomCrop`` after resizing the shorter side):
  each batch gets a fresh crop position and, with ``random_flip``, a coin flip per image, drawn from the
  trainer's generator, and is encoded then (a crop's posterior cannot be cached ahead).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


# -- data --------------------------------------------------------------------------------------------
def load_resized(paths: list[Path], resolution: int) -> list[torch.Tensor]:
    """Each image as (3, H, W) in [-1, 1], its shorter side resized to ``resolution`` (Lanczos)."""
    import numpy as np
    from PIL import Image, ImageOps

    images = []
    for path in paths:
        with Image.open(path) as image:
            rgb = ImageOps.exif_transpose(image).convert("RGB")
        scale = resolution / min(rgb.size)
        size = (max(resolution, round(rgb.width * scale)), max(resolution, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
        images.append(torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1))
    return images


def load_training_pixels(paths: list[Path], resolution: int) -> torch.Tensor:
    """(N, 3, R, R) in [-1, 1]: shorter side resized to R (Lanczos), then the centre crop."""
    crops = []
    for image in load_resized(paths, resolution):
        top, left = (image.shape[1] - resolution) // 2, (image.shape[2] - resolution) // 2
        crops.append(image[:, top:top + resolution, left:left + resolution])
    return torch.stack(crops)


@torch.no_grad()
def encode_latent_distribution(vae: Any, pixels: torch.Tensor, batch: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, R, R) in [-1, 1] -> (mean, std) of the VAE posterior, each (N, C, R/f, R/f), float32 on CPU."""
    device, dtype = vae.device, vae.dtype
    means, stds = [], []
    for start in range(0, len(pixels), batch):
        dist = vae.encode(pixels[start:start + batch].to(device, dtype)).latent_dist
        means.append(dist.mean.float().cpu())
        stds.append(dist.std.float().cpu())
    return torch.cat(means), torch.cat(stds)


@dataclass
class LatentSet:
    """Cached posteriors of a training set (with flipped copies when asked) and its prompt."""

    mean: torch.Tensor
    std: torch.Tensor
    prompt: str

    def sample(self, indices: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.mean[indices] + self.std[indices] * noise


    def __len__(self) -> int:
        return len(self.mean)

    def latents(self, vae: Any, indices: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """(B, C, r, r) posterior samples of the images at ``indices`` (noise from ``rng``)."""
        return self.sample(indices, torch.randn((len(indices), *self.mean.shape[1:]), generator=rng))


@dataclass
class AugmentedImages:
    """A training set cropped (random position) and flipped anew for every batch, then encoded."""

    images: list[torch.Tensor]     # each (3, H, W) in [-1, 1], shorter side = resolution
    prompt: str
    resolution: int
    random_flip: bool

    def __len__(self) -> int:
        return len(self.images)

    def pixels(self, indices: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """(B, 3, R, R) in [-1, 1]: for each index a random R x R crop, flipped with probability 0.5."""
        size, crops = self.resolution, []
        for index in indices.tolist():
            image = self.images[index]
            top = int(torch.randint(0, image.shape[1] - size + 1, (1,), generator=rng))
            left = int(torch.randint(0, image.shape[2] - size + 1, (1,), generator=rng))
            crop = image[:, top:top + size, left:left + size]
            if self.random_flip and bool(torch.rand(1, generator=rng) < 0.5):
                crop = crop.flip(-1)
            crops.append(crop)
        return torch.stack(crops)

    def latents(self, vae: Any, indices: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        mean, std = encode_latent_distribution(vae, self.pixels(indices, rng))
        return mean + std * torch.randn(mean.shape, generator=rng)


TrainingSet = LatentSet | AugmentedImages


def build_latent_set(vae: Any, paths: list[Path], prompt: str, resolution: int, center_crop: bool = True,
                     random_flip: bool = False) -> TrainingSet:
    """The training set of ``paths``: centre-cropped and encoded once (flipped copies join it when
    ``random_flip``), or, without ``center_crop``, cropped at random and encoded batch by batch, unless
    every image is already square at ``resolution`` (its one crop is then encoded once, as a centre crop)."""
    if center_crop:
        pixels = load_training_pixels(paths, resolution)
    else:
        images = load_resized(paths, resolution)
        if any(tuple(image.shape[1:]) != (resolution, resolution) for image in images):
            return AugmentedImages(images, prompt, resolution, random_flip)
        pixels = torch.stack(images)
    if random_flip:
        pixels = torch.cat([pixels, pixels.flip(-1)])
    mean, std = encode_latent_distribution(vae, pixels)
    return LatentSet(mean, std, prompt)
