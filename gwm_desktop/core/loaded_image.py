"""``LoadedImage``: a decoded source image and what writing it back needs; read by ``image_io``,
written by ``image_encode`` (its own module, so neither of those imports the other)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class LoadedImage:
    """A decoded source image plus everything needed to write it back faithfully.

    rgb: (H, W, 3) uint8 0-255, or uint16 0-65535 for 16-bit sources; upright (EXIF orientation applied);
        greyscale expanded to 3 equal channels. alpha: (H, W) same dtype, exactly as stored, or None.
        Both are fresh C-contiguous arrays owned by this object (safe for torch.from_numpy).
    icc_profile is None when it does not describe `rgb` (CMYK source); exif has Orientation reset to 1.
    dpi, webp_lossless and tiff_compression let `encode_image` write the output like the source.
    """

    path: Path
    format: str
    rgb: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int
    is_grey: bool
    icc_profile: bytes | None
    exif: bytes | None
    source_mode: str
    dpi: tuple[float, float] | None = None
    webp_lossless: bool = False
    tiff_compression: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) after orientation."""
        return self.rgb.shape[1], self.rgb.shape[0]

    @property
    def megapixels(self) -> float:
        return self.rgb.shape[0] * self.rgb.shape[1] / 1e6
