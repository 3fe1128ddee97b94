"""G's textures: which frequencies the watermark's plane waves sit at, and their initial shapes.

Every key draws from the same textures (a key switches half of them on, with signs), which is what
lets the scanner find the watermark's frame without the key (``core.registration``).
"""

from __future__ import annotations

import math

import torch

# Watermark band of fresh models, in cycles per pixel of the working image (3.5 to 15 cycles per 128 px
# tile: 7 to 30 across the 256 px frame). An LPIPS unit buys more amplitude over the image's own
# spectrum the higher the band, which direct copies and training crops need; the lower textures are
# the ones a personalized model's samples carried in the miniature world (docs/history.md, "The band"
# and "The band, widened"). The top is held under what a latent autoencoder passes: 30 cycles at a
# 512 px bucket are 0.059 cycle/px, under an 8x latent grid's 1/16.
PATTERN_BAND = (3.5 / 128, 15.0 / 128)
# The band of every model made before the band was a setting (their manifests name none): 3.5 to 12.
FIRST_BAND = (3.5 / 128, 12.0 / 128)
# The unit a band is given in on the command line: cycles per 128 px of tile (``--band-low``).
BAND_UNIT_PX = 128


def band_in_units(band: tuple[float, float]) -> tuple[float, float]:
    """A band in cycles per pixel -> in cycles per ``BAND_UNIT_PX`` of tile (3.5 and 15 for the default)."""
    return (band[0] * BAND_UNIT_PX, band[1] * BAND_UNIT_PX)


def band_from_units(low: float, high: float) -> tuple[float, float]:
    """``band_in_units`` undone: cycles per ``BAND_UNIT_PX`` of tile -> cycles per pixel."""
    return (low / BAND_UNIT_PX, high / BAND_UNIT_PX)


def pattern_frequencies(n_patterns: int, tile: int, seed: int = 0, mirrored: bool = False,
                        band: tuple[float, float] = PATTERN_BAND) -> list[tuple[int, int]]:
    """n distinct integer frequencies (u, v) in cycles per tile, spread as far apart as possible.

    Candidates lie in ``band`` (cycles per pixel; ``PATTERN_BAND``, 3.5 to 15 cycles per 128 px tile,
    unless a model says otherwise). Distance is measured in
    log-polar terms, one unit = a 1.4x change of radius (a crop's 1.25x zoom moves a peak less than
    that) or 2.5 tile bins along the ring, and a farthest-point pass picks the spread. ``mirrored``:
    each texture also carries its mirror image (-u, v), so candidates have u, v >= 1 and a candidate's
    distance to a chosen one is to the nearer of it and its mirror.
    """
    low, high = band[0] * tile, band[1] * tile
    while True:   # small tiles need a wider band to hold n frequencies
        reach = math.ceil(high)
        candidates = [(u, v) for u in range(-reach, reach + 1) for v in range(0, reach + 1)
                      if (v > 0 or u > 0) and low <= math.hypot(u, v) <= high
                      and (not mirrored or (u >= 1 and v >= 1))]
        if len(candidates) >= 2 * n_patterns:
            break
        low, high = max(1.0, low * 0.8), high * 1.25

    def distance(a: tuple[int, int], b: tuple[int, int], mirrored: bool = mirrored) -> float:
        radius_a, radius_b = math.hypot(*a), math.hypot(*b)
        radial = abs(math.log(radius_a / radius_b)) / math.log(1.4)
        turn = abs(math.atan2(a[1], a[0]) % math.pi - math.atan2(b[1], b[0]) % math.pi)
        along = min(turn, math.pi - turn) * (radius_a + radius_b) / 2 / 2.5
        if mirrored and b[0]:
            return min(math.hypot(radial, along), distance(a, (-b[0], b[1]), False))
        return math.hypot(radial, along)

    first = int(torch.randint(len(candidates), (1,), generator=torch.Generator().manual_seed(seed)))
    chosen = [candidates[first]]
    nearest = [distance(c, chosen[0]) for c in candidates]
    while len(chosen) < n_patterns:
        pick = max(range(len(candidates)), key=nearest.__getitem__)
        chosen.append(candidates[pick])
        nearest = [min(d, distance(c, candidates[pick])) for d, c in zip(nearest, candidates, strict=True)]
    return chosen


def luma_patterns(n_patterns: int, tile: int, seed: int = 0, mirrored: bool = False,
                  band: tuple[float, float] = PATTERN_BAND) -> torch.Tensor:
    """(n_patterns, 1, tile, tile) initial textures: one plane wave each, at its own frequency
    (``mirrored``: the wave plus its mirror image, cos(u x) cos(v y + phase)).

    G adds them to R, G and B alike (grey), because JPEG and WebP subsample and coarsely quantize
    colour, and a greyscale file keeps nothing else (docs/history.md). Integer frequencies per tile, so the texture tiles
    seamlessly and its power spectrum is one peak that does not move when the image shifts: the
    detector recognises each bit wherever it sits. Training refines them.
    """
    generator = torch.Generator().manual_seed(seed + 1)
    coords = torch.arange(tile, dtype=torch.float32)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    patterns = []
    for u, v in pattern_frequencies(n_patterns, tile, seed, mirrored, band):
        phase = 2 * math.pi * torch.rand(1, generator=generator).item()
        wave = torch.cos(2 * math.pi * (u * xx + v * yy) / tile + phase)
        if mirrored:
            wave = wave + torch.cos(2 * math.pi * (-u * xx + v * yy) / tile + phase)
        patterns.append((wave / wave.std().clamp_min(1e-6))[None])
    return torch.stack(patterns)
