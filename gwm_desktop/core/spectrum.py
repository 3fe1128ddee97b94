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
    """(B, 3, S, S) RGB -> (B, 1, S, S) luma: the watermark is grey, so luma carries all of it. A
    (B, 1, S, S) input is luma already (the scanner reads files' luma alone) and comes back as it is."""
    if x.shape[1] == 1:
        return x
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


def rotate_about_centre(x: torch.Tensor, degrees: float | torch.Tensor) -> torch.Tensor:
    """(B, C, S, S) -> each output pixel read from the input at its position turned by ``degrees`` (one
    for all, or (B,) each its own) about the centre (x right, y down): undoes the turn
    ``registration.estimate_frame`` reports as ``degrees``. Images turned by less than 0.001 degrees
    come back unchanged. Corners from outside the frame get each image's mean colour, as ``zoom_out``'s
    surround. One ``grid_sample`` for the batch; the sampling grid is ``F.affine_grid``'s, computed
    without its batched matrix product (which cost more than the sampling itself on a CPU)."""
    # the angles on the CPU in float64, as math.radians would take them (MPS has no float64)
    turns = (degrees.detach().to("cpu", torch.float64) if isinstance(degrees, torch.Tensor)
             else torch.tensor([degrees], dtype=torch.float64)).flatten().expand(x.shape[0])
    moved = (turns.abs() >= 1e-3).nonzero().flatten()
    if len(moved) == 0:
        return x
    radians = torch.deg2rad(turns[moved])
    cos, sin = (part.to(x.device, x.dtype)[:, None, None] for part in (radians.cos(), radians.sin()))
    moved = moved.to(x.device)
    size = x.shape[-1]
    base = torch.linspace(-1, 1, size, device=x.device, dtype=x.dtype) * (size - 1) / size
    across, down = base[None, None, :], base[None, :, None]
    grid = torch.stack([cos * across - sin * down, sin * across + cos * down], dim=-1)   # (M, S, S, 2)
    picked = x[moved]
    mean = picked.mean(dim=(2, 3), keepdim=True)
    turned = F.grid_sample(picked - mean, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + mean
    return turned if len(moved) == x.shape[0] else x.index_copy(0, moved, turned)


@functools.lru_cache(maxsize=256)
def _shrink_matrix(size: int, small: int) -> torch.Tensor:
    """(small, size): antialiased bilinear resampling along one axis, as ``F.interpolate`` does it (its
    filter is separable): ``zoom_out``'s shrink as a matrix, which ``ZoomedBins`` folds into its operators."""
    identity = torch.eye(size, dtype=torch.float64)[None, None]
    return F.interpolate(identity, size=(size, small), mode="bilinear", antialias=True, align_corners=False)[0, 0].T


class ZoomedBins:
    """``band_spectrum(zoom_out(x, zoom), half)`` at chosen rows and columns of the band, for many zooms.

    Both steps are linear in the image: the shrink is a matrix on each axis and the window separable,
    while the mean surround and the mean's removal are rank-one terms scaled by the image's mean and by
    one weighted sum of it. So each zoom's band at the rows and columns asked for is ``A x B^T`` plus
    those terms: no canvas and no FFT per view, and only the bins a search reads. The same numbers as
    the two steps (float32 sums in another order), far cheaper for the phase search's many zooms.
    """

    def __init__(self, size: int, half: int, zooms: tuple[float, ...], rows: torch.Tensor, cols: torch.Tensor,
                 device: torch.device | str = "cpu") -> None:
        self.size, self.zooms = size, zooms
        window = torch.hann_window(size, periodic=False, dtype=torch.float64)
        pixels = torch.arange(size, dtype=torch.float64)

        def dft(band_index: torch.Tensor) -> torch.Tensor:   # (n, size) rows of the DFT, times the window
            frequency = band_index.to(torch.float64) - half
            angle = -2 * math.pi * frequency[:, None] * pixels[None] / size
            return torch.polar(torch.ones_like(angle), angle) * window

        row_dft, full_cols = dft(rows), dft(cols)
        a_rows, a_cols = row_dft.sum(-1), full_cols.sum(-1)                  # the window's spectrum
        # A real image's columns at -u are the conjugates of those at u: the products use |u| alone
        magnitudes, source = (cols - half).abs().unique(return_inverse=True)
        self.col_source = torch.where(cols >= half, source, source + len(magnitudes)).to(device)
        self.symmetric = torch.equal(cols - half, torch.arange(-int(magnitudes[-1]), int(magnitudes[-1]) + 1))
        col_dft = dft(magnitudes + half)
        row_ops, col_ops, mean_terms, weights = [], [], [], []
        for zoom in zooms:
            small = min(round(size * zoom), size)
            offset = (size - small) // 2
            placed = torch.zeros(size, size, dtype=torch.float64)        # the canvas's rows from the image's
            placed[offset:offset + small] = torch.eye(size, dtype=torch.float64) if small == size else _shrink_matrix(size, small)
            inside = torch.zeros(size, dtype=torch.float64)
            inside[offset:offset + small] = 1.0
            row_ops.append(row_dft @ placed.to(torch.complex128))
            col_ops.append(col_dft @ placed.to(torch.complex128))
            # the surround of the image's mean m, minus the canvas's mean: m ((small/S)^2 a a^T - f f^T)
            # - (c^T x c / S^2) a a^T, a the window's spectrum, f the centre's, c the canvas's column weights
            f_rows, f_cols = row_dft @ inside.to(torch.complex128), full_cols @ inside.to(torch.complex128)
            mean_terms.append((small / size) ** 2 * torch.outer(a_rows, a_cols) - torch.outer(f_rows, f_cols))
            weights.append(placed.sum(0))
        rows_real = torch.view_as_real(torch.stack(row_ops)).to(device, torch.float32)       # (Z, R, S, 2)
        self.row_ops = torch.cat([rows_real[..., 0], rows_real[..., 1]], dim=1)            # (Z, 2R, S): re; im
        cols_real = torch.view_as_real(torch.stack(col_ops)).to(device, torch.float32)
        self.col_ops = torch.cat([cols_real[..., 0], cols_real[..., 1]], dim=1).transpose(1, 2)  # (Z, S, 2 |u|s)
        self.mean_terms = torch.stack(mean_terms).to(device, torch.complex64)               # (Z, R, C)
        self.sum_term = (-torch.outer(a_rows, a_cols) / size**2).to(device, torch.complex64)  # (R, C)
        self.weights = torch.stack(weights).to(device, torch.float32)                       # (Z, S)

    def __call__(self, x: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) real, indices into ``zooms`` ((K,) for every image or (B, K) each its own) ->
        (B, K, R, C) complex band values."""
        image, size = x[:, 0], self.size
        batch, count = image.shape[0], which.shape[-1]
        row_ops, col_ops = self.row_ops[which], self.col_ops[which]
        if which.dim() == 1:    # the same zooms for all: one product over every image, then one per zoom
            rows = torch.matmul(row_ops.flatten(0, 1), image).view(batch, count, -1, size)
            rows = rows.transpose(0, 1).reshape(count, -1, size)                      # (K, B 2R, S)
            products = torch.bmm(rows, col_ops).view(count, batch, -1, col_ops.shape[-1]).transpose(0, 1)
        else:
            rows = torch.bmm(row_ops.flatten(1, 2), image).view(batch * count, -1, size)
            products = torch.bmm(rows, col_ops.flatten(0, 1)).view(batch, count, *rows.shape[1:2], -1)
        n_rows, n_cols = products.shape[-2] // 2, products.shape[-1] // 2             # (B, K, 2R, 2 |u|s)
        rr, ri = products[..., :n_rows, :n_cols], products[..., :n_rows, n_cols:]
        ir, ii = products[..., n_rows:, :n_cols], products[..., n_rows:, n_cols:]
        # columns at u >= 0 (rr - ii, ri + ir), then their conjugate twins at -u (rr + ii, ir - ri)
        both = torch.complex(torch.cat([rr - ii, rr + ii], -1), torch.cat([ri + ir, ir - ri], -1))
        if self.symmetric:    # -M .. M: the twins are the u > 0 columns, flipped (cheaper than a gather)
            band = torch.cat([both[..., n_cols + 1:].flip(-1), both[..., :n_cols]], -1)
        else:
            band = both[..., self.col_source]
        weights = self.weights[which]
        weighted_sum = (torch.matmul(weights, image) * weights).sum(-1)                 # (B, K): c^T x c
        mean = image.mean(dim=(1, 2))[:, None, None, None]
        return band + mean * self.mean_terms[which] + weighted_sum[..., None, None] * self.sum_term


def zoom_out(x: torch.Tensor, zoom: float) -> torch.Tensor:
    """(B, C, S, S) -> (B, C, S, S): shrunk by ``zoom`` and centred on a canvas of each image's mean
    colour (a flat surround adds no spectral peak; mirrored padding would add mirrored ones)."""
    size = x.shape[-1]
    small = round(size * zoom)
    if small >= size:
        return x
    shrunk = F.interpolate(x, size=(small, small), mode="bilinear", antialias=True, align_corners=False)
    canvas = x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    offset = (size - small) // 2
    canvas[..., offset:offset + small, offset:offset + small] = shrunk
    return canvas
