"""Recover the watermark's frame at scan time: flip / scale / rotation registration, then a matched
filter searched over every translation.

A trainer's flip, square or random crop mirrors the shipped watermark's textures, stretches them
along one axis and moves them off G's grid; D reads them where G put them. Two steps undo that:

* **Registration** (key-independent): every key draws from the same 32 textures, so the frame that
  puts the most whitened spectral power on the textures' known peaks is a property of the image,
  not of the key asked about. ``Registration`` scores a grid of frames (flip x per-axis scale x small
  rotation) on one spectrum; ``undo_frame`` resamples the view back into G's frame.
* **Translation search** (key-dependent, so its null must be calibrated on the same search): the
  matched filter's phase depends on the crop's offset. ``searched_coherent`` correlates the key's
  signed textures with the view at every shift at once (one FFT) and reads the textures at the best.

The views, registrations and searches give the scores ``METHODS`` (A, B, C, S); design D joins C and
S (``joined_score``). ``training.frame_search_eval`` measures A-D: ``python -m training.frame_search --help``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from gwm_desktop.core.keys import texture_signs
from gwm_desktop.core.models import WatermarkDetector
from gwm_desktop.core.spectrum import (
    SCAN_ZOOMS,
    SMOOTHING_MARGIN,
    band_spectrum,
    band_width,
    box_mean,
    whiten,
    zoom_out,
)

SCALE_RANGE = (1.0, 2.2)   # magnification of each axis: crops keeping 45-100% of a side
SCALE_STEPS = 25           # log-spaced: 3.3% apart, under a bin at the band's top
ANGLES = (-4.0, -2.0, 0.0, 2.0, 4.0)  # degrees
METHODS = ("A", "B", "C", "S")   # what ``design_agreement`` scores; design D joins C and S (``joined_score``)
METHOD_NAMES = {"A": "today's scanner (views 1.0, 0.8)", "B": "A + flipped views",
                "C": "A + the registered view (flip/scale/rotation)",
                "S": "the registered view, matched filter searched over translations",
                "D": "C or S, each scaled by its own null (translation search)"}


@dataclass(frozen=True)
class Frame:
    """How a view differs from G's frame: mirrored, magnified ``sx`` x ``sy``, rotated ``angle`` degrees."""

    flip: bool = False
    sx: float = 1.0
    sy: float = 1.0
    angle: float = 0.0

    def matrix(self) -> torch.Tensor:
        """(2, 2) map from a registered pixel (x, y), centred, to the view's: rotation . flip . scale."""
        radians = math.radians(self.angle)
        cos, sin = math.cos(radians), math.sin(radians)
        rotation = torch.tensor([[cos, -sin], [sin, cos]])
        return rotation @ torch.diag(torch.tensor([-self.sx if self.flip else self.sx, self.sy]))


def frame_grid(scale_range: tuple[float, float] = SCALE_RANGE, steps: int = SCALE_STEPS,
               angles: tuple[float, ...] = ANGLES) -> list[Frame]:
    """Every candidate frame: both flips x ``steps`` log-spaced scales per axis x ``angles``."""
    scales = torch.exp(torch.linspace(math.log(scale_range[0]), math.log(scale_range[1]), steps)).tolist()
    return [Frame(flip, sx, sy, angle) for flip in (False, True) for sx in scales for sy in scales
            for angle in angles]


def texture_peaks(detector: WatermarkDetector) -> torch.Tensor:
    """(n_bits, 2) each matched-filter texture's strongest frequency (fx, fy) in bins of the working frame."""
    size, crop = detector.working_size, detector.spectrum_crop
    templates = detector.templates.float()
    repeats = math.ceil(size / templates.shape[-1])
    tiled = templates.repeat(1, repeats, repeats)[:, None, :size, :size]
    power = band_spectrum(tiled, crop // 2)[:, 0].abs() ** 2          # (K, crop, crop), rows fy, columns fx
    flat = power.flatten(1).argmax(dim=1)
    fy, fx = flat // crop - crop // 2, flat % crop - crop // 2
    return torch.stack([fx, fy], dim=1).float()


class Registration:
    """Finds each view's frame among ``frames``: the one whose moved texture peaks carry the most
    whitened power. Key-independent (all keys share the textures); the sampling grid is built once.

    A view in frame A (``Frame.matrix``) carries G's frequency k at A^-T k; the power spectrum is
    point-symmetric, so one of the two mirror peaks suffices.
    """

    def __init__(self, detector: WatermarkDetector, frames: list[Frame] | None = None) -> None:
        self.frames = frames or frame_grid()
        self.switched_on = detector.n_bits // 2   # every key switches on half the textures
        self.crop = detector.spectrum_crop
        matrices = torch.stack([frame.matrix() for frame in self.frames])                   # (H, 2, 2)
        moved = torch.einsum("hji,kj->hki", torch.linalg.inv(matrices), texture_peaks(detector))  # (H, K, 2)
        self.grid = (moved + self.crop // 2 + 0.5) / self.crop * 2 - 1                     # bins -> [-1, 1]

    def scores(self, whitened: torch.Tensor) -> torch.Tensor:
        """(B, 1, C, C) whitened spectra -> (B, H): each frame's mean whitened power at its strongest
        n_bits / 2 peaks (any key's switched-on share, so the off textures' noise does not dilute it)."""
        grid = self.grid[None].expand(whitened.shape[0], -1, -1, -1).to(whitened)
        sampled = F.grid_sample(whitened, grid, mode="bilinear", align_corners=False)[:, 0]   # (B, H, K)
        return sampled.topk(self.switched_on, dim=-1).values.mean(dim=-1)

    def __call__(self, grey: torch.Tensor) -> list[Frame]:
        """(B, 1, S, S) luma views -> the best-fitting frame of each."""
        return self.from_band(band_spectrum(grey, band_width(self.crop)))

    def from_band(self, band: torch.Tensor) -> list[Frame]:
        """The same from the views' ``band_spectrum`` (which the scanner computes anyway)."""
        whitened = whiten(band, self.crop)
        return [self.frames[int(i)] for i in self.scores(whitened).argmax(dim=1)]


def undo_frame(grey: torch.Tensor, frames: list[Frame]) -> torch.Tensor:
    """(B, 1, S, S) views -> (B, 1, S, S) resampled into G's frame, on a canvas of each view's mean.

    A magnified axis is low-passed first (antialiasing), as ``zoom_out`` does, so the shrink adds
    no aliased image detail to the watermark's band.
    """
    size = grey.shape[-1]
    out = []
    for view, frame in zip(grey, frames, strict=True):
        view = view[None]
        small = (max(8, round(size / frame.sy)), max(8, round(size / frame.sx)))
        if small != (size, size):
            view = F.interpolate(F.interpolate(view, size=small, mode="bilinear", antialias=True,
                                               align_corners=False), size=(size, size), mode="bilinear",
                                 align_corners=False)
        mean = view.mean(dim=(2, 3), keepdim=True)
        theta = torch.cat([frame.matrix(), torch.zeros(2, 1)], dim=1)[None].to(view)
        grid = F.affine_grid(theta, [1, 1, size, size], align_corners=False)
        out.append(F.grid_sample(view - mean, grid, mode="bilinear", padding_mode="zeros",
                                 align_corners=False) + mean)
    return torch.cat(out)


def searched_coherent(detector: WatermarkDetector, band: torch.Tensor, message: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 1, 2h, 2h) band x (n_bits,) message -> ((B, n_bits) statistics at the best shift, (B, 2) shift).

    ``WatermarkDetector.coherent`` at every shift: the key's signed switched-on textures are summed
    into one filter, so a single FFT scores every shift (x, y) in pixels of the working frame; the
    per-texture statistics are then read at the argmax, and ``matched_agreement`` applies to them.
    """
    crop, margin, size = detector.spectrum_crop, SMOOTHING_MARGIN, detector.working_size
    local = box_mean(band.real**2 + band.imag**2, 2 * margin + 1)[:, 0, :crop, :crop] + 1e-12
    observed = band[:, 0, margin:margin + crop, margin:margin + crop].conj() / local    # (B, C, C)
    templates, energy = detector._template_spectra(observed.real)
    norm = torch.sqrt(torch.einsum("bhw,khw->bk", 1.0 / local, energy)).clamp_min(1e-12)
    weights = (message > 0).to(norm) * texture_signs(message).to(norm) / norm          # (B, K)
    combined = observed * torch.einsum("bk,khw->bhw", weights.to(templates), templates)
    freqs = torch.arange(crop, device=band.device) - crop // 2
    canvas = torch.zeros(band.shape[0], size, size, dtype=combined.dtype, device=band.device)
    index = freqs % size
    canvas[:, index[:, None], index[None, :]] = combined
    surface = torch.fft.fft2(canvas).real                                    # [b, ty, tx] = sum Z e^{-2 pi i f t / N}
    best = surface.flatten(1).argmax(dim=1)
    ty, tx = best // size, best % size
    phase = torch.exp(-2j * math.pi * (freqs[None, :, None] * ty[:, None, None]
                                       + freqs[None, None, :] * tx[:, None, None]) / size)
    coherent = torch.einsum("bhw,khw->bk", observed * phase.to(observed), templates).real / norm
    return coherent, torch.stack([tx, ty], dim=1)


def _evidence(detector: WatermarkDetector, band: torch.Tensor) -> torch.Tensor:
    """(N, 1, 2h, 2h) band -> (N, 2 n_bits) bit logits and shift-0 matched statistics (the scanner's)."""
    bits = detector.bits(detector.features(whiten(band, detector.spectrum_crop)).flatten(1))
    return torch.cat([bits, detector._correlate(band)], dim=-1)


@dataclass
class ViewEvidence:
    """What every design needs from one image: evidence per view, and the registered view's band."""

    views: torch.Tensor        # (B, V, 2 n_bits): 1.0, 0.8, [flipped 1.0, flipped 0.8,] registered
    registered_band: torch.Tensor
    frames: list[Frame]


@torch.no_grad()
def view_evidence(detector: WatermarkDetector, registration: Registration, grey: torch.Tensor,
                  flipped_views: bool = True) -> ViewEvidence:
    """(B, 1, S, S) working-size luma -> the evidence of every view the designs A-D read (design B's
    flipped views only when ``flipped_views``: C and D do without them)."""
    width, batch = band_width(detector.spectrum_crop), grey.shape[0]
    flipped = [zoom_out(grey.flip(-1), z) for z in SCAN_ZOOMS] if flipped_views else []
    bands = band_spectrum(torch.cat([zoom_out(grey, z) for z in SCAN_ZOOMS] + flipped), width)
    found = registration.from_band(bands[:batch])            # the as-is view (zoom 1.0) comes first
    bands = torch.cat([bands, band_spectrum(undo_frame(grey, found), width)])
    evidence = _evidence(detector, bands).view(-1, batch, 2 * detector.n_bits)
    return ViewEvidence(evidence.transpose(0, 1), bands[-batch:], found)


def design_agreement(detector: WatermarkDetector, evidence: ViewEvidence, message: torch.Tensor,
                     method: str) -> torch.Tensor:
    """(B,) the agreement with ``message`` that scan design ``method`` (``METHODS``) reports: its best view."""
    n_bits = message.shape[-1]
    views = evidence.views
    if method == "A":
        return WatermarkDetector.best_agreement(views[:, :2], message)
    if method == "B":
        if views.shape[1] < 5:
            raise ValueError("design B needs the flipped views (view_evidence(..., flipped_views=True))")
        return WatermarkDetector.best_agreement(views[:, :4], message)
    if method == "C":
        return WatermarkDetector.best_agreement(views[:, [0, 1, -1]], message)
    if method == "S":
        coherent, _ = searched_coherent(detector, evidence.registered_band, message)
        return WatermarkDetector.agreement(torch.cat([views[:, -1, :n_bits], coherent], dim=-1), message)
    raise ValueError(f"unknown scan design {method!r}; choose from {', '.join(METHODS)}")


def joined_score(scores: list[np.ndarray], nulls: list[np.ndarray]) -> np.ndarray:
    """Join statistics whose nulls differ (C's best view, S's best shift): each score is put on its own
    null's scale, (x - median) / (99th percentile - median), and the join is the larger.

    A raw maximum would let the searched statistic's higher null set the threshold for both, losing
    the faint watermarks that need no search; the threshold is then set on the joined scores of the
    same negatives. NaN (not measured) stays NaN.
    """
    scaled = []
    for score, null in zip(scores, nulls, strict=True):
        median, top = np.nanquantile(null, 0.5), np.nanquantile(null, 0.99)
        scaled.append((score - median) / max(top - median, 1e-6))
    return np.fmax.reduce(scaled) if len(scaled) > 1 else scaled[0]


def main(argv: list[str] | None = None) -> int:
    from training.frame_search_eval import run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
