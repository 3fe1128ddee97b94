"""Training data for personalization: images at the training resolution and their cached VAE posteriors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


# -- data --------------------------------------------------------------------------------------------
def load_training_pixels(paths: list[Path], resolution: int, center_crop: bool = True) -> torch.Tensor:
    """(N, 3, R, R) in [-1, 1]: shorter side resized to R (Lanczos), then a centre (or top-left) crop."""
    import numpy as np
    from PIL import Image, ImageOps

    images = []
    for path in paths:
        with Image.open(path) as image:
            rgb = ImageOps.exif_transpose(image).convert("RGB")
        scale = resolution / min(rgb.size)
        size = (max(resolution, round(rgb.width * scale)), max(resolution, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
        left = (rgb.width - resolution) // 2 if center_crop else 0
        top = (rgb.height - resolution) // 2 if center_crop else 0
        rgb = rgb.crop((left, top, left + resolution, top + resolution))
        images.append(torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1))
    return torch.stack(images)


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


def build_latent_set(vae: Any, paths: list[Path], prompt: str, resolution: int, center_crop: bool = True,
                     random_flip: bool = False) -> LatentSet:
    """Encode ``paths`` once; flipped copies join the set when ``random_flip``."""
    pixels = load_training_pixels(paths, resolution, center_crop)
    if random_flip:
        pixels = torch.cat([pixels, pixels.flip(-1)])
    mean, std = encode_latent_distribution(vae, pixels)
    return LatentSet(mean, std, prompt)
