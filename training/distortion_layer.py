"""The distortion layer of Phase 1: SPEC section 3's distortions (and, opt-in, its training transforms)
at the working resolution.

Each sample of a batch gets one distortion drawn at random (identity included), with parameters
drawn around and beyond the evaluated ones so the detector does not overfit a single setting.
Codecs (JPEG, WebP) are real Pillow round trips with a straight-through gradient: the forward pass
sees the genuine artefacts, the backward pass treats the codec as identity.
"""

from __future__ import annotations

import io
import math
import random

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gwm_desktop.core.spectrum import zoom_out

DISTORTION_NAMES = ("identity", "jpeg", "resize", "crop", "blur", "noise", "color", "webp", "screenshot")
# What a fine-tuning script does before its VAE sees an image (SPEC section 3, "training transforms"):
# opt-in, so the shipped model's recipe is unchanged. "latent" needs the layer's autoencoder.
TRAINING_TRANSFORM_NAMES = ("flip", "random_crop", "bucket_crop", "rotate", "bucket_flip")
# The same, as an isotropic model's detector sees them (``generator.WatermarkGenerator``): a square crop or
# bucket only moves the watermark ("shift"), and the scanner undoes a random crop's magnification by
# zooming out by its estimate (``core.registration``), within a few per cent ("registered_crop").
ISOTROPIC_TRANSFORM_NAMES = ("flip", "registered_crop", "shift", "rotate", "shift_flip")


def _codec_round_trip(x: torch.Tensor, fmt: str, quality: int) -> torch.Tensor:
    """(3, H, W) in [0, 1] through a real codec; no gradient."""
    array = (x.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, quality=quality)
    buffer.seek(0)
    decoded = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(decoded).permute(2, 0, 1).to(x.device, x.dtype)


def straight_through(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return x + (target - x).detach()


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    coords = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    padded = F.pad(x[None], (radius, radius, radius, radius), mode="reflect")
    horizontal = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3)
    return F.conv2d(horizontal, kernel.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3)[0]


def _rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate about the centre and zoom in just enough that no empty corner remains."""
    angle = math.radians(degrees)
    zoom = 1 / (abs(math.cos(angle)) + abs(math.sin(angle)))
    cos, sin = math.cos(angle) * zoom, math.sin(angle) * zoom
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype, device=x.device)[None]
    grid = F.affine_grid(theta, [1, *x.shape], align_corners=False)
    return F.grid_sample(x[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]


def _crop_resized(x: torch.Tensor, keep_h: float, keep_w: float, rng: random.Random) -> torch.Tensor:
    size = x.shape[-2:]
    h, w = max(8, round(size[0] * keep_h)), max(8, round(size[1] * keep_w))
    top, left = rng.randint(0, size[0] - h), rng.randint(0, size[1] - w)
    return _resize(x[:, top:top + h, left:left + w], size)


def training_transform(x: torch.Tensor, name: str, rng: random.Random) -> torch.Tensor:
    """(3, S, S) -> (3, S, S): one training transform, resized back to the working size.

    The working frame stands for the whole image, so a trainer's square crop of a 3:4 image is a crop
    that keeps one side whole and 56-100% of the other (aspects 9:16 to 1:1).
    """
    if name == "flip":
        return x.flip(-1)
    if name == "random_crop":
        return _crop_resized(x, rng.uniform(0.5, 0.9), rng.uniform(0.5, 0.9), rng)
    if name in ("bucket_crop", "bucket_flip"):
        keep = rng.uniform(0.56, 1.0)
        crop = _crop_resized(x, keep, 1.0, rng) if rng.random() < 0.5 else _crop_resized(x, 1.0, keep, rng)
        return crop.flip(-1) if name == "bucket_flip" else crop
    if name == "rotate":
        return _rotate(x, rng.uniform(-5.0, 5.0))
    if name in ("shift", "shift_flip"):
        moved = x.roll((rng.randrange(x.shape[-2]), rng.randrange(x.shape[-1])), dims=(-2, -1))
        return moved.flip(-1) if name == "shift_flip" else moved
    if name == "registered_crop":
        keep = rng.uniform(0.5, 0.9)
        magnified = _crop_resized(x, keep, keep, rng)
        return zoom_out(magnified[None], min(1.0, keep * math.exp(rng.gauss(0.0, 0.02))))[0]
    raise ValueError(f"unknown training transform {name!r}")


def distort_one(x: torch.Tensor, name: str, rng: random.Random) -> torch.Tensor:
    """(3, S, S) in [0, 1] -> (3, S, S): one distortion, resized back to the working size."""
    size = x.shape[-2:]
    if name == "identity":
        return x
    if name in TRAINING_TRANSFORM_NAMES + ISOTROPIC_TRANSFORM_NAMES:
        return training_transform(x, name, rng)
    if name in ("jpeg", "webp"):
        # Half the time at a smaller "native" size: artists' files are often smaller than the working
        # size (the portraits are 175 px wide), so the codec meets the watermark at higher frequencies.
        factor = 1.0 if rng.random() < 0.5 else rng.uniform(0.6, 0.95)
        small = _resize(x, (round(size[0] * factor), round(size[1] * factor))) if factor < 1 else x
        quality = rng.randint(40, 95) if name == "jpeg" else rng.randint(60, 95)
        small = straight_through(small, _codec_round_trip(small, name.upper(), quality))
        return _resize(small, size) if factor < 1 else small
    if name == "resize":
        factor = rng.uniform(0.4, 0.8)
        small = _resize(x, (max(8, round(size[0] * factor)), max(8, round(size[1] * factor))))
        return _resize(small, size)
    if name == "crop":
        keep_h, keep_w = rng.uniform(0.7, 0.95), rng.uniform(0.7, 0.95)
        h, w = round(size[0] * keep_h), round(size[1] * keep_w)
        top, left = rng.randint(0, size[0] - h), rng.randint(0, size[1] - w)
        return _resize(x[:, top:top + h, left:left + w], size)
    if name == "blur":
        return _gaussian_blur(x, rng.uniform(0.4, 1.5))
    if name == "noise":
        return (x + torch.randn_like(x) * rng.uniform(0.005, 0.03)).clamp(0, 1)
    if name == "color":
        brightness, contrast = rng.uniform(0.85, 1.15), rng.uniform(0.8, 1.2)
        x = x * brightness
        mean = x.mean()
        return ((x - mean) * contrast + mean).clamp(0, 1)
    if name == "screenshot":
        factor = rng.uniform(0.6, 0.9)
        small = _resize(x, (round(size[0] * factor), round(size[1] * factor)))
        small = straight_through(small, _codec_round_trip(small, "JPEG", rng.randint(70, 92)))
        return _resize(small, size)
    raise ValueError(f"unknown distortion {name!r}")


class DistortionLayer(torch.nn.Module):
    """(B, 3, S, S) -> (B, 3, S, S), a random distortion per sample (identity with ``p_identity``).

    With ``training_transforms`` the draw also includes flips, crops and rotations (``isotropic``: as an
    isotropic model's scanner sees them); an ``autoencoder``
    (e.g. ``core.taef2``'s, frozen) then puts a latent round trip after a share ``p_latent`` of the
    samples, differentiably, as a personalized model's VAE would.
    """

    def __init__(self, seed: int = 0, p_identity: float = 0.2, training_transforms: bool = False,
                 autoencoder: torch.nn.Module | None = None, p_latent: float = 0.25, isotropic: bool = False) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.p_identity = p_identity
        transforms = ISOTROPIC_TRANSFORM_NAMES if isotropic else TRAINING_TRANSFORM_NAMES
        self.names = DISTORTION_NAMES[1:] + (transforms if training_transforms else ())
        self.autoencoder = autoencoder
        self.p_latent = p_latent

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        latent = []
        for index, sample in enumerate(x):
            name = "identity" if self.rng.random() < self.p_identity else self.rng.choice(self.names)
            out.append(distort_one(sample, name, self.rng))
            if self.autoencoder is not None and name != "identity" and self.rng.random() < self.p_latent:
                latent.append(index)
        batch = torch.stack(out)
        if latent:
            rows = torch.tensor(latent, device=batch.device)
            batch = batch.index_copy(0, rows, self.autoencoder.round_trip(batch[rows]))
        return batch
