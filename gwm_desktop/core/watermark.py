"""Embedding: make a profile's watermark for an image, calibrate its strength, write it at full size.

``x_w = clip(x + s * up(w))``: ``w = G(x_256, m)`` is made at the working resolution, ``up`` stretches
it to the image (bilinear, one strip of rows at a time, so a 100-megapixel canvas never gets a
whole-canvas float copy), and ``s`` is calibrated per image so the *encoded output* meets
``LPIPS(original, output) <= p`` as SPEC section 3 measures it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image

from gwm_desktop.core.generator import WORKING_SIZE, WatermarkGenerator
from gwm_desktop.core.image_io import (
    EncodeOptions,
    LoadedImage,
    decode_bytes,
    encode_image,
    load_image_bytes,
    output_format,
    to_rgb8,
)
from gwm_desktop.core.lpips_metric import LpipsToReference, pil_to_lpips_tensor, resize_for_lpips

# Calibrate to (1 - margin) * p so that another antialiased resize, or a viewer's decoder, gives the
# same verdict; final verification must pass at (1 - VERIFY_MARGIN) * p.
CALIBRATION_MARGIN = 0.08
VERIFY_MARGIN = 0.03
MAX_ATTEMPTS = 6
ROWS_PER_STRIP = 256
MAX_ASPECT = 16    # an isotropic watermark keeps square tiles up to this aspect ratio


class CalibrationError(RuntimeError):
    """The budget cannot be met for this image and output format (e.g. a lossy codec alone exceeds p)."""


@dataclass
class EmbedResult:
    data: bytes          # the encoded output file
    format: str          # Pillow format written
    lpips: float         # LPIPS(original, decoded output), SPEC section 3
    psnr: float          # dB, full resolution, 8-bit RGB
    strength: float      # s
    attempts: int
    options: EncodeOptions | None = None   # what was actually written (quality may have been raised)


def bilinear_taps(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (low, high) and weight of high, per output index (torch's align_corners=False)."""
    centres = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
    centres = np.clip(centres, 0, in_size - 1)
    low = np.floor(centres).astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    return low, high, (centres - low).astype(np.float32)


def apply_watermark(rgb: np.ndarray, w: np.ndarray, strength: float, grey: bool = False) -> np.ndarray:
    """New array ``clip(rgb + strength * up(w))`` in rgb's dtype.

    rgb: (H, W, 3) uint8 or uint16. w: (3, S, S) float32 in [0, 1] units. Bilinear upsampling is two
    taps per output pixel, done separably and one strip of rows at a time: peak extra memory is one
    strip in float32, whatever the canvas size.
    """
    height, width = rgb.shape[:2]
    peak = 65535.0 if rgb.dtype == np.uint16 else 255.0
    w = w.mean(axis=0, keepdims=True).repeat(3, axis=0) if grey else w
    w = np.ascontiguousarray(w.transpose(1, 2, 0), dtype=np.float32) * np.float32(strength * peak)  # (S, S, 3)
    left, right, col_frac = bilinear_taps(width, w.shape[1])
    wide = w[:, left] * (1 - col_frac)[None, :, None] + w[:, right] * col_frac[None, :, None]  # (S, W, 3)
    top_taps, bottom_taps, row_frac = bilinear_taps(height, w.shape[0])
    out = np.empty_like(rgb)
    for top in range(0, height, ROWS_PER_STRIP):
        bottom = min(height, top + ROWS_PER_STRIP)
        f = row_frac[top:bottom, None, None]
        strip = wide[top_taps[top:bottom]] * (1 - f)
        strip += wide[bottom_taps[top:bottom]] * f
        strip += rgb[top:bottom]
        np.clip(np.rint(strip, out=strip), 0, peak, out=strip)
        out[top:bottom] = strip.astype(rgb.dtype)
    return out


def working_image(image: np.ndarray | Image.Image, size: int = WORKING_SIZE, isotropic: bool = False) -> torch.Tensor:
    """(H, W, 3) uint8/uint16 array or RGB image -> (1, 3, S, S) float in [0, 1], stretched to the working
    size; ``isotropic``: (1, 3, h, w) with the shorter side S and the image's aspect."""
    rgb8 = image if isinstance(image, Image.Image) else to_rgb8(image)
    target = (size, size)
    if isotropic:  # beyond MAX_ASPECT (a 1 x 10,000 strip) the long side is squeezed to bound the memory
        scale = size / min(rgb8.size)
        target = tuple(min(MAX_ASPECT * size, max(size, round(side * scale))) for side in rgb8.size)
    small = rgb8 if rgb8.size == target else rgb8.resize(target, Image.Resampling.BICUBIC, reducing_gap=3.0)
    return torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two 8-bit RGB arrays of the same shape (row by row, low memory)."""
    total = 0.0
    for top in range(0, a.shape[0], 1024):
        diff = a[top:top + 1024].astype(np.float32) - b[top:top + 1024].astype(np.float32)
        total += float(np.square(diff).sum())
    mse = total / a.size
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _decode_rgb8(data: bytes, sixteen_bit: bool) -> Image.Image:
    """An encoded output's pixels as 8-bit RGB (16-bit files through our loader, which scales, not clips)."""
    return to_rgb8(load_image_bytes(data).rgb) if sixteen_bit else to_rgb8(decode_bytes(data))


class Embedder:
    """Watermarks images with one profile's message; owns the networks' forward passes."""

    def __init__(self, generator: WatermarkGenerator, message: torch.Tensor, lpips_model: torch.nn.Module,
                 device: torch.device | str = "cpu") -> None:
        self.generator = generator
        self.message = message.view(1, -1)
        self.lpips = lpips_model
        self.device = torch.device(device)

    @torch.no_grad()
    def make_watermark(self, image: np.ndarray | Image.Image) -> np.ndarray:
        """(H, W, 3) image (or a reduced RGB copy of it) -> (3, S, S) float32 watermark shape (unscaled);
        isotropic G: (3, h, w), the shorter side S and the image's aspect."""
        x = working_image(image, self.generator.working_size, self.generator.isotropic).to(self.device)
        w = self.generator(x, self.message.to(self.device))
        return w[0].float().cpu().numpy()

    def estimate_strength(self, reference: LpipsToReference, reference_image: torch.Tensor, w_small: torch.Tensor,
                          target: float) -> float:
        """s with proxy LPIPS(ref, ref + s w) just under ``target``, from two LPIPS evaluations.

        reference_image: (1, 3, h, w) in [-1, 1] (the LPIPS-size original); w_small: (1, 3, h, w) in
        [0, 1] units. LPIPS grows about as a power of s (about 2 for small s): two probes fit that
        power in log-log space. The proxy skips full-size rendering and encoding; ``protect``
        verifies the real output and the margins absorb the fit's error.
        """
        def measure(strength: float) -> float:
            return max(float(reference((reference_image + 2 * strength * w_small).clamp(-1, 1))[0]), 1e-9)

        s1 = 0.4
        v1 = measure(s1)
        s2 = s1 * math.sqrt(target / v1)
        v2 = measure(s2)
        if 0.93 * target <= v2 <= target:
            return s2
        exponent = math.log(v2 / v1) / math.log(s2 / s1) if abs(math.log(s2 / s1)) > 1e-3 else 2.0
        exponent = min(max(exponent, 0.5), 4.0)
        return 0.98 * s2 * (target / v2) ** (1.0 / exponent)

    @staticmethod
    def _decoded(marked: np.ndarray, data: bytes, loaded: LoadedImage, fmt: str) -> Image.Image:
        """The output's 8-bit RGB pixels, as a viewer will decode them.

        An 8-bit colour PNG stores ``marked`` losslessly (tests/core/test_watermark.py checks it pixel
        for pixel), so decoding it again would only cost time; every other output is decoded.
        """
        if fmt == "PNG" and marked.dtype == np.uint8 and not loaded.is_grey:
            return to_rgb8(marked)
        return _decode_rgb8(data, loaded.bit_depth == 16)

    def _decoded_lpips(self, reference: LpipsToReference, data: bytes, sixteen_bit: bool) -> float:
        decoded = _decode_rgb8(data, sixteen_bit)
        return float(reference(pil_to_lpips_tensor(resize_for_lpips(decoded)))[0])

    def _codec_options(self, loaded: LoadedImage, options: EncodeOptions, fmt: str, reference: LpipsToReference,
                       limit: float) -> tuple[EncodeOptions, float]:
        """For JPEG/WebP, raise the quality until the codec alone uses at most 40% of the budget.

        At p = 0.01 a WebP at quality 95 can by itself exceed the budget; an artist who asked for an
        invisible watermark wants a slightly larger file, not a failed export.
        """
        lossless = options.webp_lossless if options.webp_lossless is not None else loaded.webp_lossless
        if fmt not in ("JPEG", "WEBP") or (fmt == "WEBP" and lossless):
            return options, 0.0
        if fmt == "JPEG":
            ladder = [replace(options, jpeg_quality=q) for q in sorted({options.jpeg_quality, 98, 100}) if
                      q >= options.jpeg_quality]
        else:
            ladder = [replace(options, webp_quality=q) for q in sorted({options.webp_quality, 100})
                      if q >= options.webp_quality] + [replace(options, webp_lossless=True)]
        cost = 0.0
        for candidate in ladder:
            if candidate.webp_lossless:
                return candidate, 0.0
            data = encode_image(loaded.rgb, loaded, candidate)
            cost = self._decoded_lpips(reference, data, loaded.bit_depth == 16)
            if cost <= 0.4 * limit:
                return candidate, cost
        return ladder[-1], cost

    def protect(self, loaded: LoadedImage, p: float, options: EncodeOptions) -> EmbedResult:
        """Watermark ``loaded`` at budget ``p`` and encode it; the result is verified, never assumed."""
        if not 0 < p < 1:
            raise ValueError(f"p must be in (0, 1), got {p}")
        fmt = output_format(loaded, options)
        limit = p * (1 - VERIFY_MARGIN)
        original_small = resize_for_lpips(to_rgb8(loaded.rgb))
        reference_image = pil_to_lpips_tensor(original_small)
        reference = LpipsToReference(self.lpips, reference_image)
        options, codec_cost = self._codec_options(loaded, options, fmt, reference, limit)
        # G sees the image at 256 px: the LPIPS copy (shorter side 256, Lanczos) is already that
        # small, and resizing it again is ~15 ms cheaper on 1 MP than reducing the full image twice.
        w = self.make_watermark(original_small)
        if loaded.is_grey:
            w = w.mean(axis=0, keepdims=True).repeat(3, axis=0)
        w_small = torch.nn.functional.interpolate(torch.from_numpy(w)[None], size=reference_image.shape[-2:],
                                                  mode="bilinear", align_corners=False)
        # A lossy codec spends part of the budget by itself; leave it that share (roughly additive).
        target = max(p * (1 - CALIBRATION_MARGIN) - codec_cost, 0.3 * p)
        strength = self.estimate_strength(reference, reference_image, w_small, target)
        measured = float("nan")
        for attempt in range(1, MAX_ATTEMPTS + 1):
            marked = apply_watermark(loaded.rgb, w, strength, grey=loaded.is_grey)
            data = encode_image(marked, loaded, options)
            decoded = self._decoded(marked, data, loaded, fmt)
            measured = float(reference(pil_to_lpips_tensor(resize_for_lpips(decoded)))[0])
            if measured <= limit:
                return EmbedResult(data, fmt, measured, psnr(np.asarray(to_rgb8(loaded.rgb)), np.asarray(decoded)),
                                   strength, attempt, options)
            # Lossy codecs add their own error; shrink s by the quadratic law, with a safety factor.
            strength *= 0.9 * math.sqrt(limit / measured)
            if attempt >= 2 and strength < 1e-3:
                break
        raise CalibrationError(
            f"could not meet LPIPS <= {p:g} (best {measured:.4f}) with {fmt} output: the encoder alone may "
            f"change the image more than the budget allows; try PNG output or a higher quality / level")
