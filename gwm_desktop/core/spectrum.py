"""Spectrum processing shared by the detector and its matched filter: luma, band spectrum, whitening.

The detector reads an image through its luma's power spectrum, which does not change when the image
shifts (crops) and costs one FFT. ``band_spectrum`` computes the kept band once; ``whiten`` turns it
into what the CNN reads, and the matched filter (``WatermarkDetector.coherent``) correlates it with
G's textures. ``zoom_out`` makes the scan-time views that undo a crop's magnification.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

LUMA = torch.tensor([0.299, 0.587, 0.114])


def luma(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) RGB -> (B, 1, S, S) luma: the watermark is grey, so luma carries all of it."""
    return torch.einsum("k,bkhw->bhw", LUMA.to(x.device, x.dtype), x)[:, None]


SMOOTHING_MARGIN = 3  # whitening subtracts (or divides by) the mean over a 7 x 7 neighbourhood of bins


def band_spectrum(grey: torch.Tensor, half: int) -> torch.Tensor:
    """(B, 1, S, S) -> (B, 1, 2 half, 2 half) complex spectrum of the Hann-windowed image, frequencies
    -half .. half - 1 on both axes (the centre of ``fftshift(fft2(...))``).

    A real image's spectrum is conjugate-symmetric, so a real FFT (half the work of a complex one)
    gives every bin: the negative horizontal frequencies are the conjugates of mirrored positive ones.
    """
    size = grey.shape[-1]
    if 2 * half > size:
        raise ValueError(f"a band of {2 * half} bins does not fit a {size} px image")
    grey = grey - grey.mean(dim=(2, 3), keepdim=True)
    window = torch.hann_window(size, periodic=False, device=grey.device, dtype=grey.dtype)
    spectrum = torch.fft.rfft2(grey * (window[:, None] * window[None, :]))       # (B, 1, S, S/2 + 1)
    # rows for vertical frequencies -half .. half - 1, and for their negatives half .. -(half - 1)
    positive = torch.cat([spectrum[..., size - half:, :half], spectrum[..., :half, :half]], dim=-2)
    columns = spectrum[..., 1:half + 1].flip(-1)                                  # horizontal half .. 1
    mirrored = torch.cat([columns[..., :half + 1, :].flip(-2), columns[..., size - half + 1:, :].flip(-2)], dim=-2)
    return torch.cat([mirrored.conj(), positive], dim=-1)                         # horizontal -half .. -1, 0 ..


def band_width(crop: int) -> int:
    """``band_spectrum``'s half-width for a kept crop: the crop plus the whitening neighbourhood."""
    return crop // 2 + SMOOTHING_MARGIN


def whiten(band: torch.Tensor, crop: int) -> torch.Tensor:
    """``band_spectrum(..., band_width(crop))`` -> (B, 1, crop, crop) log power minus its local mean."""
    margin = SMOOTHING_MARGIN
    region = torch.log(band.real**2 + band.imag**2 + 1e-8)
    return region[..., margin:-margin, margin:-margin] - box_mean(region, 2 * margin + 1)


def box_mean(x: torch.Tensor, side: int) -> torch.Tensor:
    """(..., H, W) -> (..., H - side + 1, W - side + 1): the mean over each side x side window, one axis
    at a time (``F.avg_pool2d`` at stride 1 gives the same numbers, about ten times slower on a CPU)."""
    return x.unfold(-2, side, 1).mean(-1).unfold(-1, side, 1).mean(-1)


def whitened_spectrum(x: torch.Tensor, crop: int) -> torch.Tensor:
    """(B, 3, S, S) in [0, 1] -> (B, 1, crop, crop) log power spectrum of the luma, locally whitened.

    Hann window, FFT, log power, minus its local mean. Photographs' spectra fall off smoothly with
    frequency; a watermark texture is a narrow peak, so whitening leaves the peaks and removes the
    image. The magnitude spectrum does not change when the image is shifted, which makes the detector
    indifferent to crops' offsets. Only the central ``crop`` bins (low and middle frequencies, which
    survive JPEG and blur) are kept.
    """
    return whiten(band_spectrum(luma(x), band_width(crop)), crop)


# Scan-time views: the image as is, and zoomed out 1.25x. A crop keeping 80% of each side, stretched
# back to the working size, magnifies the textures 1.25x and moves every peak inward; the zoomed-out
# view puts them back where D learned them (docs/history.md has the measurement). The verdict takes
# the best view, and the calibration bank is built the same way, so the false-positive rate stays
# the one asked for.
SCAN_ZOOMS = (1.0, 0.8)


def rotate_about_centre(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """(B, C, S, S) -> each output pixel read from the input at its position turned by ``degrees`` about
    the centre (x right, y down): undoes the turn ``registration.estimate_frame`` reports as ``degrees``.
    Corners from outside the frame get each image's mean colour, as ``zoom_out``'s surround."""
    if abs(degrees) < 1e-3:
        return x
    turn = math.radians(degrees)
    theta = torch.tensor([[math.cos(turn), -math.sin(turn), 0.0], [math.sin(turn), math.cos(turn), 0.0]],
                         dtype=x.dtype, device=x.device)[None].expand(x.shape[0], -1, -1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    mean = x.mean(dim=(2, 3), keepdim=True)
    return F.grid_sample(x - mean, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + mean


@functools.lru_cache(maxsize=256)
def _shrink_matrix(size: int, small: int) -> torch.Tensor:
    """(small, size): antialiased bilinear resampling along one axis, as ``F.interpolate`` does it (its
    filter is separable), so a square shrink is two small matrix products: the scan's many zoomed views
    cost a fraction of the resampler's."""
    identity = torch.eye(size, dtype=torch.float64)[None, None]
    return F.interpolate(identity, size=(size, small), mode="bilinear", antialias=True, align_corners=False)[0, 0].T


def zoom_out(x: torch.Tensor, zoom: float) -> torch.Tensor:
    """(B, C, S, S) -> (B, C, S, S): shrunk by ``zoom`` and centred on a canvas of each image's mean
    colour (a flat surround adds no spectral peak; mirrored padding would add mirrored ones)."""
    size = x.shape[-1]
    small = round(size * zoom)
    if small >= size:
        return x
    resize = _shrink_matrix(size, small).to(x.device, x.dtype)
    shrunk = resize @ x @ resize.T
    canvas = x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    offset = (size - small) // 2
    canvas[..., offset:offset + small, offset:offset + small] = shrunk
    return canvas
