"""Finding an isotropic, mirror-symmetric watermark's frame again, without the key.

A trainer's crop magnifies the watermark (fewer cycles across the working frame) and moves it; a
square crop, a bucket or a flip only moves it (a mirror-symmetric texture, flipped, is the same texture
shifted). Every key draws from the same textures, so both are found from the image alone:

* **scale** (``estimate_scale``): the zoom at which the whitened spectrum holds the most power at the
  textures' frequencies (the mean of the strongest half, which any key switches on);
* **shift** (``estimate_shift``): the translation that lines up the textures' phases once each is
  squared (squaring removes the key's signs). Squaring halves the period, so a shift of half a tile
  on either axis is left open: it flips the sign of the textures with an odd frequency on that axis
  (``half_tile_signs``), and the scanner keeps all four readings as views.

A search raises the null of whatever it maximises, so the calibration bank is built with the same
search (``WatermarkDetector.decode_views``) and the false-positive rate stays the one asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Zooms searched for a crop's magnification: from a crop keeping 45% of the shorter side to none,
# in steps of about 2% (a texture's peak stays inside its main lobe).
SCALES = tuple(float(s) for s in torch.exp(torch.linspace(math.log(0.45), 0.0, 41)))


@dataclass(frozen=True)
class Components:
    """The plane waves of the textures, in bins of the working frame's spectrum.

    bins: (J, 2) (horizontal, vertical) integer frequencies, vertical > 0 (one of each conjugate pair);
    texture: (J,) the texture each belongs to; parity: (n_textures, 2) each texture's frequency parity
    along x and y in cycles per tile (what a half-tile shift flips); shifts (G, 2) and rotations
    (J, G): the shift search's candidates and each component's exp(-i 2 phase) at them, made once
    (``shift_grid``) because every scan needs them.
    """

    bins: torch.Tensor
    texture: torch.Tensor
    parity: torch.Tensor
    working_size: int
    tile: int
    shifts: torch.Tensor
    rotations: torch.Tensor


def mirrored_components(frequencies: list[tuple[int, int]], working_size: int, tile: int) -> Components:
    """Each texture (u, v) cycles per tile is cos(u x) cos(v y + phase): waves (u, v) and (-u, v)."""
    ratio = working_size // tile
    bins, texture = [], []
    for index, (u, v) in enumerate(frequencies):
        for sign in ((1, -1) if u else (1,)):
            bins.append((sign * u * ratio, v * ratio))
            texture.append(index)
    parity = torch.tensor([(u % 2, v % 2) for u, v in frequencies])
    bins = torch.tensor(bins)
    return Components(bins, torch.tensor(texture), parity, working_size, tile, *shift_grid(bins, working_size, tile))


def half_tile_signs(components: Components) -> torch.Tensor:
    """(4, n_textures) signs a half-tile shift (none, x, y, both) gives each texture."""
    shifts = torch.tensor([(0, 0), (1, 0), (0, 1), (1, 1)])
    return (1 - 2 * ((shifts @ components.parity.T) % 2)).float()


def estimate_scale(white: torch.Tensor, components: Components, scales: tuple[float, ...] = SCALES) -> torch.Tensor:
    """(B, 1, crop, crop) whitened log spectrum -> (B,) the zoom that best explains the textures' peaks.

    A crop keeping a share c of the frame moves a texture at f to c f; the strongest half of the
    textures (any key switches on half) scores each candidate c.
    """
    crop = white.shape[-1]
    candidates = torch.tensor(scales, dtype=white.dtype, device=white.device)
    points = candidates[:, None, None] * components.bins.to(white)[None]         # (K, J, 2): (x, y) bins
    grid = (points + crop / 2) / (crop - 1) * 2 - 1
    samples = F.grid_sample(white, grid[None].expand(white.shape[0], -1, -1, -1), mode="bilinear",
                            align_corners=True)[:, 0]                           # (B, K, J)
    n_textures = components.parity.shape[0]
    texture = components.texture.to(white.device)
    per_texture = torch.zeros(*samples.shape[:2], n_textures, dtype=white.dtype, device=white.device)
    per_texture.index_add_(2, texture, samples)
    per_texture = per_texture / torch.bincount(texture, minlength=n_textures).to(white)
    score = per_texture.topk(max(1, n_textures // 2), dim=-1).values.mean(-1)   # (B, K)
    # A parabola through the best candidate and its neighbours refines the zoom between grid steps
    # (log-spaced, so in log zoom): a 1% error already costs the matched filter much of its phase.
    best = score.argmax(dim=-1).clamp(1, len(scales) - 2)
    rows = torch.arange(score.shape[0], device=white.device)
    left, centre, right = score[rows, best - 1], score[rows, best], score[rows, best + 1]
    curvature = left - 2 * centre + right
    offset = torch.where(curvature < 0, 0.5 * (left - right) / curvature.clamp_max(-1e-12), torch.zeros_like(centre))
    step = math.log(scales[1] / scales[0])
    refined = candidates[best] * torch.exp(offset.clamp(-1, 1) * step)
    on_edge = (score.argmax(dim=-1) == 0) | (score.argmax(dim=-1) == len(scales) - 1)
    return torch.where(on_edge, candidates[score.argmax(dim=-1)], refined).clamp(max=1.0)


def shift_grid(bins: torch.Tensor, working_size: int, tile: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate shifts (G, 2) over half a tile, and exp(-i 2 phase) for each component (J, G)."""
    half = tile // 2
    coords = torch.arange(half, dtype=torch.float32)
    ty, tx = torch.meshgrid(coords, coords, indexing="ij")
    shifts = torch.stack([tx.flatten(), ty.flatten()], dim=-1)
    doubled = 2 * 2 * math.pi * (bins.to(torch.float32) @ shifts.T) / working_size
    return shifts, torch.polar(torch.ones_like(doubled), -doubled)


def estimate_shift(weighted: torch.Tensor, templates: torch.Tensor, local: torch.Tensor,
                   components: Components) -> torch.Tensor:
    """(B, crop, crop) conj(X) / P, (n, crop, crop) template spectra, (B, crop, crop) local power
    -> (B, 2) the shift (x, y) in working pixels, modulo half a tile, that best aligns the textures.

    Each component's normalised correlation y = conj(X) T / P / (|T| / sqrt(P)) turns by 2 pi f.t / S
    under a shift t and carries the key's sign; y^2 carries neither sign, so the sum of y^2 e^{-2i 2 pi
    f.t / S} peaks at the true shift whatever the key.
    """
    crop = weighted.shape[-1]
    cols = components.bins[:, 0].to(weighted.device) + crop // 2
    rows = components.bins[:, 1].to(weighted.device) + crop // 2
    template = templates[components.texture.to(weighted.device), rows, cols]    # (J,)
    y = weighted[:, rows, cols] * template
    scale = template.abs() / local[:, rows, cols].sqrt()
    normalised = y / scale.clamp_min(1e-12)
    rotations = components.rotations.to(weighted.device, normalised.dtype)
    score = (normalised**2 @ rotations).real                                    # (B, G)
    return components.shifts.to(weighted.device)[score.argmax(dim=-1)]


def shift_ramps(shifts: torch.Tensor, crop: int, working_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 2) shifts -> per-bin phase ramps exp(-i 2 pi f t / S) along x (B, crop) and y (B, crop)."""
    frequencies = torch.arange(-crop // 2, crop // 2, dtype=torch.float32, device=shifts.device)
    angle_x = -2 * math.pi * shifts[:, :1] * frequencies[None] / working_size
    angle_y = -2 * math.pi * shifts[:, 1:] * frequencies[None] / working_size
    return torch.polar(torch.ones_like(angle_x), angle_x), torch.polar(torch.ones_like(angle_y), angle_y)
