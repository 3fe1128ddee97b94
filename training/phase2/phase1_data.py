"""What Phase 2's detector fine-tuning feeds D besides S / S_w: images read as the scanner reads them,
Phase 1 batches watermarked on the fly (this key and random other keys, distorted) so D does not
forget, and the calibration bank of negatives the scanner's thresholds are drawn from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gwm_desktop.core.generator import WatermarkGenerator
from gwm_desktop.core.image_io import load_rgb_resized
from gwm_desktop.core.keys import random_messages
from gwm_desktop.core.levels import LEVELS
from gwm_desktop.core.models import WatermarkDetector
from training.distortion_layer import DistortionLayer
from training.phase1 import quantize_8bit


def load_detector_images(paths: list[Path], size: int, centre_square: bool = False) -> torch.Tensor:
    """(N, 3, size, size) uint8, read as the scanner reads files (``load_rgb_resized``; an isotropic
    detector's ``centre_square``), in colour for the batches G watermarks: the scanner reads the luma
    alone (``load_luma_resized``), which D computes from these to 8-bit rounding."""
    if not paths:
        return torch.zeros(0, 3, size, size, dtype=torch.uint8)
    return torch.from_numpy(np.stack([load_rgb_resized(p, (size, size), centre_square)
                                      for p in paths])).permute(0, 3, 1, 2).contiguous()


def as_float(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return images.to(device).float() / 255.0


class FreshWatermarker:
    """Watermarks working-size batches with G at an LPIPS budget (quadratic strength estimate, as in Phase 1)."""

    def __init__(self, generator: WatermarkGenerator, p: float, device: torch.device) -> None:
        from gwm_desktop.core.lpips_metric import build_lpips

        self.generator = generator
        self.p = p
        self.lpips = build_lpips(device)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, messages: torch.Tensor, p: float | torch.Tensor | None = None) -> torch.Tensor:
        """p: one budget, or (B,) budgets, one per image; None: ``self.p``."""
        w = self.generator(x, messages)
        raw = self.lpips(x * 2 - 1, (x + w).clamp(0, 1) * 2 - 1).flatten()
        strength = torch.sqrt((self.p if p is None else p) / raw.clamp_min(1e-8)).view(-1, 1, 1, 1)
        return quantize_8bit((x + strength * w).clamp(0, 1))


def phase1_batch(images: torch.Tensor, half: int, message: torch.Tensor, fresh: FreshWatermarker | None,
                  distort: DistortionLayer, rng: torch.Generator, device: torch.device, other_share: float,
                  budgets: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clean / other-key negatives and own-key positives made now from Phase 1 images, all distorted;
    each watermark at one of ``budgets`` drawn at random (None: ``fresh.p``)."""
    assert fresh is not None

    def budget(n: int) -> torch.Tensor | None:
        return None if budgets is None else budgets[torch.randint(len(budgets), (n,), generator=rng).to(device)]

    n_bits = message.shape[-1]
    neg = as_float(images[torch.randint(len(images), (half,), generator=rng)], device)
    pos = as_float(images[torch.randint(len(images), (half,), generator=rng)], device)
    pos = fresh(pos, message.view(1, -1).expand(half, -1), p=budget(half))
    n_other = int(round(half * other_share))
    targets = torch.full((2 * half, n_bits), float("nan"), device=device)
    if n_other:
        others = random_messages(n_other, n_bits, rng).to(device)
        neg[:n_other] = fresh(neg[:n_other], others, p=budget(n_other))
        targets[:n_other] = others
    targets[half:] = message
    x = distort(torch.cat([neg, pos]))
    labels = torch.cat([torch.zeros(half), torch.ones(half)]).to(device)
    return x, labels, targets


@torch.no_grad()
def calibration_bank(detector: WatermarkDetector, clean_sets: list[torch.Tensor], phase1: torch.Tensor,
                     fresh: FreshWatermarker | None, distort: DistortionLayer,
                     rng: torch.Generator, device: torch.device, batch: int = 64) -> dict[str, torch.Tensor]:
    """The scanner's negative banks (``detect.NEGATIVE_BANKS``), each (N, V, E) ``decode_views`` evidence,
    undistorted and distorted: ``clean_bits`` of clean images; ``other_bits`` of Phase 1 images
    watermarked with random other keys at ``fresh.p``; ``faint_other_bits`` the same at the faintest level."""

    def evidence(x: torch.Tensor) -> list[torch.Tensor]:
        return [detector.decode_views(x).cpu().half(), detector.decode_views(distort(x)).cpu().half()]

    banks: dict[str, list[torch.Tensor]] = {"clean_bits": [], "other_bits": [], "faint_other_bits": []}
    for images in clean_sets:
        for start in range(0, len(images), batch):
            banks["clean_bits"] += evidence(as_float(images[start:start + batch], device))
    if fresh is not None and len(phase1):
        faintest = min(level.p for level in LEVELS)
        for start in range(0, len(phase1), batch):
            x = as_float(phase1[start:start + batch], device)
            banks["other_bits"] += evidence(fresh(x, random_messages(len(x), detector.n_bits, rng).to(device)))
            faint = fresh(x, random_messages(len(x), detector.n_bits, rng).to(device), p=faintest)
            banks["faint_other_bits"] += evidence(faint)
    return {name: torch.cat(parts) for name, parts in banks.items() if parts}
