"""Finding an isotropic, mirror-symmetric watermark's frame again, without the key.

A trainer's crop magnifies the watermark (fewer cycles across the working frame) and moves it; a
square crop, a bucket or a flip only moves it (a mirror-symmetric texture, flipped, is the same texture
shifted). Every key draws from the same textures, so both are found from the image alone:

* **scale and rotation** (``estimate_frame``): the zoom and the turn at which the whitened spectrum
  holds the most power at the textures' frequencies (the mean of the strongest half, which any key
  switches on); a rotation about the centre, as an editor's or a trainer's, leaves the centre anchor;
* **zoom, again** (``coherence_frame``): the zoom at which the shift search below lines the textures'
  phases up best, a sharper measure than the power's (on the view turned by the power's estimate, or
  unturned where the phases line up better there);
* **shift** (``estimate_shifts``): the translation at which the textures' matched-filter energy is
  highest (``shift_energy``: each texture's correlation squared, which removes the key's sign; the
  zoom search above squares each wave's phase alone, ``shift_scores``). Squaring leaves a shift of
  half a tile on either axis open: it flips the sign of the textures with an odd frequency on that
  axis (``half_tile_signs``), and the scanner keeps all four readings as views.

A search raises the null of whatever it maximises, so the calibration bank is built with the same
search (``WatermarkDetector.decode_views``) and the false-positive rate stays the one asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gwm_desktop.core.spectrum import ZoomedBins, box_mean

# Zooms searched for a crop's magnification: from a crop keeping 45% of the shorter side to none,
# in steps of about 2% (a texture's peak stays inside its main lobe).
SCALES = tuple(float(s) for s in torch.exp(torch.linspace(math.log(0.45), 0.0, 41)))
# Rotations searched: a trainer's or an editor's small turn, up to 6 degrees either way, a quarter apart.
ANGLES = tuple(0.25 * k for k in range(-24, 25))
SMALLEST_TURN = 0.15  # degrees: a smaller turn moves the frame's edge by under a third of a pixel


@dataclass(frozen=True)
class Components:
    """The plane waves of the textures, in bins of the working frame's spectrum.

    bins: (J, 2) (horizontal, vertical) integer frequencies, vertical > 0 (one of each conjugate pair);
    texture: (J,) the texture each belongs to; parity: (n_textures, 2) each texture's frequency parity
    along x and y in cycles per tile (what a half-tile shift flips); shifts (G, 2) and rotations
    (J, G): the shift search's candidates and each component's exp(-i 2 phase) at them, made once
    (``shift_grid``) because every scan needs them; mirrors (P, 2): the two components of each
    texture that has two (``shift_energy`` reads their relation).
    """

    bins: torch.Tensor
    texture: torch.Tensor
    parity: torch.Tensor
    working_size: int
    tile: int
    shifts: torch.Tensor
    rotations: torch.Tensor
    mirrors: torch.Tensor


def mirrored_components(frequencies: list[tuple[int, int]], working_size: int, tile: int) -> Components:
    """Each texture (u, v) cycles per tile is cos(u x) cos(v y + phase): waves (u, v) and (-u, v)."""
    ratio = working_size // tile
    bins, texture, mirrors = [], [], []
    for index, (u, v) in enumerate(frequencies):
        if u:
            mirrors.append((len(bins), len(bins) + 1))
        for sign in ((1, -1) if u else (1,)):
            bins.append((sign * u * ratio, v * ratio))
            texture.append(index)
    parity = torch.tensor([(u % 2, v % 2) for u, v in frequencies])
    bins = torch.tensor(bins)
    return Components(bins, torch.tensor(texture), parity, working_size, tile, *shift_grid(bins, working_size, tile),
                      torch.tensor(mirrors, dtype=torch.long).view(-1, 2))


def half_tile_signs(components: Components) -> torch.Tensor:
    """(4, n_textures) signs a half-tile shift (none, x, y, both) gives each texture."""
    shifts = torch.tensor([(0, 0), (1, 0), (0, 1), (1, 1)])
    return (1 - 2 * ((shifts @ components.parity.T) % 2)).float()


def estimate_scale(white: torch.Tensor, components: Components, scales: tuple[float, ...] = SCALES) -> torch.Tensor:
    """(B, 1, crop, crop) whitened log spectrum -> (B,) the zoom that best explains the textures' peaks
    (``estimate_frame`` with no rotation)."""
    return estimate_frame(white, components, scales, (0.0,))[0]


def estimate_frame(white: torch.Tensor, components: Components, scales: tuple[float, ...] = SCALES,
                   angles: tuple[float, ...] = ANGLES) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 1, crop, crop) whitened log spectrum -> (B,) zoom and (B,) rotation in degrees (the frame's
    coordinates, x right and y down; ``spectrum.rotate_about_centre`` undoes it) that best explain the
    textures' peaks.

    A crop keeping a share c of the frame moves a texture at f to c f, and a rotation by a turns f by
    a; the strongest half of the textures (any key switches on half) scores each candidate (c, a).
    Coarse to fine: every zoom at every fourth angle, then every zoom at the angles around the best.
    """
    zooms = torch.tensor(scales, dtype=white.dtype, device=white.device)
    grid = torch.tensor(angles, dtype=white.dtype, device=white.device)
    coarse = grid[::4] if len(angles) > 8 else grid
    score = _frame_scores(white, components, zooms, coarse.expand(white.shape[0], -1))
    rows = torch.arange(white.shape[0], device=white.device)
    if len(coarse) < len(grid):   # the angles around the coarse best, at the grid's own step
        step = grid[1] - grid[0]
        centre = coarse[score.flatten(1).argmax(dim=-1) // len(scales)]
        centre = centre.clamp(float(grid[0] + 4 * step), float(grid[-1] - 4 * step))
        fine = centre[:, None] + step * torch.arange(-4, 5, device=white.device, dtype=white.dtype)[None]
        score = _frame_scores(white, components, zooms, fine)
    else:
        fine = coarse.expand(white.shape[0], -1)
    best = score.flatten(1).argmax(dim=-1)
    best_angle, best_zoom = best // len(scales), best % len(scales)
    # Parabolas through the best candidate and its neighbours refine both between grid steps (the zoom
    # in log zoom, the grid being log-spaced): a 1% error already costs the matched filter much of
    # its phase, and so does a quarter degree at the frame's edge.
    zoom = _refine(score[rows, best_angle], best_zoom, zooms.log()).exp().clamp(max=1.0)
    angle = fine[rows, best_angle]
    if fine.shape[1] >= 3:
        step = fine[:, 1] - fine[:, 0]
        local = score[rows, :, best_zoom]
        offset = _refine(local, best_angle, torch.arange(fine.shape[1], dtype=white.dtype, device=white.device))
        angle = fine[:, 0] + offset * step
    return zoom, angle


def _frame_scores(white: torch.Tensor, components: Components, zooms: torch.Tensor,
                  degrees: torch.Tensor) -> torch.Tensor:
    """(B, 1, crop, crop), (K,) zooms, (B, A) angles per image -> (B, A, K) each candidate's texture score."""
    crop = white.shape[-1]
    turns = degrees.deg2rad()
    rotations = torch.stack([torch.stack([turns.cos(), -turns.sin()], -1),
                             torch.stack([turns.sin(), turns.cos()], -1)], -2)       # (B, A, 2, 2)
    bins = torch.einsum("baij,nj->bani", rotations, components.bins.to(white))      # (B, A, J, 2): (x, y)
    points = zooms[None, None, :, None, None] * bins[:, :, None]                     # (B, A, K, J, 2)
    grid = (points.flatten(1, 2) + crop / 2) / (crop - 1) * 2 - 1
    samples = F.grid_sample(white, grid, mode="bilinear", align_corners=True)[:, 0]  # (B, A K, J)
    n_textures = components.parity.shape[0]
    texture = components.texture.to(white.device)
    per_texture = torch.zeros(*samples.shape[:2], n_textures, dtype=white.dtype, device=white.device)
    per_texture.index_add_(2, texture, samples)
    per_texture = per_texture / torch.bincount(texture, minlength=n_textures).to(white)
    score = per_texture.topk(max(1, n_textures // 2), dim=-1).values.mean(-1)   # (B, A K)
    return score.view(white.shape[0], degrees.shape[1], len(zooms))


def _refine(score: torch.Tensor, best: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """(B, N) scores along an evenly spaced ``grid`` (N,), (B,) index of the best -> (B,) the parabola's peak."""
    if len(grid) < 3:
        return grid[best]
    rows = torch.arange(score.shape[0], device=score.device)
    inner = best.clamp(1, len(grid) - 2)
    left, centre, right = score[rows, inner - 1], score[rows, inner], score[rows, inner + 1]
    curvature = left - 2 * centre + right
    offset = torch.where(curvature < 0, 0.5 * (left - right) / curvature.clamp_max(-1e-12), torch.zeros_like(centre))
    refined = grid[inner] + offset.clamp(-1, 1) * (grid[1] - grid[0])
    on_edge = (best == 0) | (best == len(grid) - 1)
    return torch.where(on_edge, grid[best], refined)


def shift_grid(bins: torch.Tensor, working_size: int, tile: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate shifts (G, 2) over half a tile, and exp(-i 2 phase) for each component (J, G)."""
    half = tile // 2
    coords = torch.arange(half, dtype=torch.float32)
    ty, tx = torch.meshgrid(coords, coords, indexing="ij")
    shifts = torch.stack([tx.flatten(), ty.flatten()], dim=-1)
    doubled = 2 * 2 * math.pi * (bins.to(torch.float32) @ shifts.T) / working_size
    return shifts, torch.polar(torch.ones_like(doubled), -doubled)


def normalised_components(weighted: torch.Tensor, templates: torch.Tensor, local: torch.Tensor,
                          components: Components) -> torch.Tensor:
    """(B, crop, crop) conj(X) / P, (n, crop, crop) template spectra, (B, crop, crop) local power -> (B, J)
    each component's normalised correlation y = conj(X) T / P / (|T| / sqrt(P)), what ``shift_scores`` reads."""
    crop = weighted.shape[-1]
    cols = components.bins[:, 0].to(weighted.device) + crop // 2
    rows = components.bins[:, 1].to(weighted.device) + crop // 2
    template = templates[components.texture.to(weighted.device), rows, cols]    # (J,)
    scale = template.abs() / local[:, rows, cols].sqrt()
    return weighted[:, rows, cols] * template / scale.clamp_min(1e-12)


def shift_scores(normalised: torch.Tensor, components: Components, step: int = 1) -> torch.Tensor:
    """(B, J) ``normalised_components`` -> (B, G) how well each candidate shift (``Components.shifts``,
    modulo half a tile; ``step``: every step-th along each axis) aligns the textures.

    Each y turns by 2 pi f.t / S under a shift t and carries the key's sign; y^2 carries neither sign,
    so the sum of y^2 e^{-2i 2 pi f.t / S} peaks at the true shift whatever the key.
    """
    rotations = components.rotations
    if step > 1:
        half = components.tile // 2
        rotations = rotations.view(-1, half, half)[:, ::step, ::step].flatten(1)
    return (normalised**2 @ rotations.to(normalised.device, normalised.dtype)).real


def shift_energy(normalised: torch.Tensor, components: Components) -> torch.Tensor:
    """(B, J) ``normalised_components`` -> (B, G) the textures' matched-filter energy at each candidate
    shift (``Components.shifts``): sum over textures of (Re sum_j y_j e^{-i 2 pi f_j.t / S})^2, less a
    constant.

    Squaring each texture's correlation removes the key's sign, as squaring each y does in
    ``shift_scores``, but keeps the relation between a texture's two mirrored waves: their phase
    difference tells the shift along x, their phase sum along y. Expanded, the energy is half of
    ``shift_scores`` plus a term in t_x alone and one in t_y alone, so it costs little more.
    """
    half, size = components.tile // 2, components.working_size
    mirrors = components.mirrors.to(normalised.device)
    first, second = normalised[:, mirrors[:, 0]], normalised[:, mirrors[:, 1]]
    bins = components.bins.to(normalised.device, torch.float32)
    across = bins[mirrors[:, 0], 0] - bins[mirrors[:, 1], 0]          # f1 - f2: along x only
    down = bins[mirrors[:, 0], 1] + bins[mirrors[:, 1], 1]            # f1 + f2: along y only
    steps = torch.arange(half, dtype=torch.float32, device=normalised.device)

    def turns(frequency: torch.Tensor) -> torch.Tensor:   # (P, half): e^{-i 2 pi f t / S} at each step t
        angle = -2 * math.pi * frequency[:, None] * steps / size
        return torch.polar(torch.ones_like(angle), angle).to(normalised.dtype)

    along_x = ((first * second.conj()) @ turns(across)).real                # (B, half): t_x
    along_y = ((first * second) @ turns(down)).real                         # (B, half): t_y
    return 0.5 * shift_scores(normalised, components) + (along_y[:, :, None] + along_x[:, None, :]).flatten(1)


def estimate_shifts(normalised: torch.Tensor, components: Components, count: int = 1) -> torch.Tensor:
    """(B, J) ``normalised_components`` -> (B, count, 2) the ``count`` best shifts (x, y) in working
    pixels, modulo half a tile, by ``shift_energy``, each the highest within 2 px of itself (the
    score's peaks are about 4 px wide).

    A faint or cropped watermark's true shift is often the second or third peak rather than the first;
    reading a few peaks finds it, and the key-rank test, which reads every key through the same
    readings, prices the search.
    """
    half = components.tile // 2
    score = shift_energy(normalised, components).view(-1, 1, half, half)      # [ty, tx]
    if count > 1:
        wrapped = F.pad(score, (2, 2, 2, 2), mode="circular")
        peak = score >= wrapped.unfold(-2, 5, 1).amax(-1).unfold(-1, 5, 1).amax(-1)  # each 5 x 5's max
        score = torch.where(peak, score, torch.full_like(score, -torch.inf))
    best = score.flatten(1).topk(count, dim=-1).indices
    return components.shifts.to(normalised.device)[best]


class PhaseAlignment:
    """A luma view's best ``shift_scores`` at each of many zooms: what ``coherence_frame`` maximises.

    Read from the textures' own bins and their local power alone (the whole band's whitening is not
    needed for these few bins), each zoom's bins computed directly from the view (``ZoomedBins``).
    ``templates``: (n, crop, crop) the textures' spectra; the views are ``size`` px.
    """

    def __init__(self, components: Components, templates: torch.Tensor, size: int, margin: int,
                 zooms: tuple[float, ...], device: torch.device | str = "cpu") -> None:
        crop = templates.shape[-1]
        rows = components.bins[:, 1] + crop // 2                        # kept-band coordinates
        cols = components.bins[:, 0] + crop // 2
        window = torch.arange(2 * margin + 1)                           # each bin's (2 margin + 1)^2 neighbourhood
        row_bins, col_bins = rows[:, None] + window, cols[:, None] + window  # band coordinates, (J, 2 margin + 1)
        kept_rows, kept_cols = row_bins.unique(), col_bins.unique()
        self.bins = ZoomedBins(size, crop // 2 + margin, zooms, kept_rows, kept_cols, device)
        row_at, col_at = torch.searchsorted(kept_rows, row_bins), torch.searchsorted(kept_cols, col_bins)
        # Every bin's window is whole in the kept band (its rows and columns are consecutive integers,
        # all kept), so the window's mean is a box mean over the kept grid at the window's first corner.
        if not bool((row_at[:, -1] - row_at[:, 0] == 2 * margin).all() & (col_at[:, -1] - col_at[:, 0] == 2 * margin).all()):
            raise ValueError("a bin's neighbourhood is not whole in the kept band")
        self.corner = (row_at[:, 0] * (len(kept_cols) - 2 * margin) + col_at[:, 0]).to(device)   # (J,)
        self.centre = (row_at[:, margin] * len(kept_cols) + col_at[:, margin]).to(device)  # (J,)
        self.side = 2 * margin + 1
        template = templates[components.texture, rows, cols]
        self.phase = (template / template.abs().clamp_min(1e-12)).to(device)
        self.components, self.size, self.zooms = components, size, zooms

    def __call__(self, views: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        """(B, 1, size, size) luma, (K,) or (B, K) indices into ``zooms`` -> (B, K) the best alignment at each."""
        band = self.bins(views, which)                                      # (B, K, rows, columns)
        local = box_mean(band.real**2 + band.imag**2, self.side).flatten(-2)[..., self.corner]   # (B, K, J)
        band = band.flatten(-2)
        normalised = band[..., self.centre].conj() * self.phase / (local + 1e-12).sqrt()
        # every other shift: the score's peaks are about 4 px wide, and only the best one's height is used
        return shift_scores(normalised.flatten(0, 1), self.components, step=2).amax(dim=-1).view(band.shape[:2])


# Zooms the key-independent phase search (``coherence_frame``) tries: those of ``SCALES``, 0.5% apart,
# visited every 3% first (the score's peak is wider than that), then finely around the best.
PHASE_ZOOMS = tuple(float(s) for s in torch.exp(torch.linspace(math.log(0.45), 0.0, 121)))
PHASE_COARSE_EVERY = 6


def coherence_frame(alignment: PhaseAlignment, candidates: torch.Tensor, tried: torch.Tensor | None = None,
                    every: int = PHASE_COARSE_EVERY) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, S, S) luma, C candidate views of each image -> (B,) the zoom-out and (B,) the candidate at
    which ``alignment`` is highest. ``tried``: (B, C) the candidates to search (the first always is).

    ``alignment`` is the shift search's best alignment: the textures' phases, squared, line up only
    where the frame is right to within a fraction of a period at the frame's edge, so it finds a crop's
    magnification far more sharply than the power spectrum's peaks (``estimate_frame``), which a
    strong image texture can pull off by 10% or more. The search runs at ``alignment.size`` px (the
    detector takes half the working size where its band fits: the textures lie well below its Nyquist
    frequency), every ``every``-th zoom of every candidate first, then the zooms around the best.
    The scanner's candidates are the view turned by the power's estimate and the view as it is: an
    image's own texture can pull that estimate degrees off on an unturned crop, and the phases, whose
    bins a turn of degrees moves by one or two, line up on neither zoom there (docs/history.md).
    """
    size, count = alignment.size, len(alignment.zooms)
    batch, choices = candidates.shape[:2]
    small = candidates if size == candidates.shape[-1] else F.interpolate(
        candidates, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    if tried is None:
        tried = torch.ones(batch, choices, dtype=torch.bool, device=candidates.device)
    tried = tried.clone()
    tried[:, 0] = True
    coarse = torch.arange(0, count, every, device=candidates.device)
    score = torch.full((batch, choices, len(coarse)), -torch.inf, device=candidates.device, dtype=candidates.dtype)
    score[tried] = alignment(small[tried][:, None], coarse)
    best = score.flatten(1).argmax(dim=-1)
    choice, centre = best // len(coarse), coarse[best % len(coarse)]
    chosen = small[torch.arange(batch, device=candidates.device), choice][:, None]
    # the fine grid around each coarse best (clamped at the ends: a repeated zoom scores the same)
    nearby = (centre[:, None] + torch.arange(1 - every, every, device=candidates.device)).clamp(0, count - 1)
    best_zoom = nearby.gather(1, alignment(chosen, nearby).argmax(dim=-1, keepdim=True))[:, 0]
    return torch.tensor(alignment.zooms, device=candidates.device, dtype=candidates.dtype)[best_zoom], choice


def shift_ramps(shifts: torch.Tensor, crop: int, working_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 2) shifts -> per-bin phase ramps exp(-i 2 pi f t / S) along x (B, crop) and y (B, crop)."""
    frequencies = torch.arange(-crop // 2, crop // 2, dtype=torch.float32, device=shifts.device)
    angle_x = -2 * math.pi * shifts[:, :1] * frequencies[None] / working_size
    angle_y = -2 * math.pi * shifts[:, 1:] * frequencies[None] / working_size
    return torch.polar(torch.ones_like(angle_x), angle_x), torch.polar(torch.ones_like(angle_y), angle_y)
