"""The generator G of GenWatermark: (image, key's message) -> an invisible watermark to add.

G works at the *working resolution* ``WORKING_SIZE`` it shares with the detector (``models.py``, which
also builds both for a size: ``networks_for_size``).

* **G = learned pattern bank x image-adaptive amplitude.** Grey, mid-band textures tiled across the
  frame (findable after crops, kept by JPEG, WebP and greyscale files); a small CNN decides where
  the watermark may be stronger (texture hides it, flat skies do not).

Why each choice: docs/history.md and README.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gwm_desktop.core.keys import texture_signs
from gwm_desktop.core.textures import PATTERN_BAND, luma_patterns

WORKING_SIZE = 256
DEFAULT_BITS = 32
DEFAULT_TILE = 128


class WatermarkGenerator(nn.Module):
    """G: (image, message) -> watermark.

    forward(x: (B, 3, S, S) in [0, 1], message: (B, n_bits) in {-1, +1}) -> w: (B, 3, S, S),
    zero-mean, per-pixel std of order ``base_amplitude``. Bit k = +1 switches texture k on; keys have
    exactly half their bits on (``keys.message_from_key``). The caller scales ``w`` per image to meet
    the LPIPS budget (``watermark.calibrate_strength``); G decides its shape.

    Why presence, not sign: a detector that must not care where the watermark sits (global pooling)
    cannot tell a tiled texture from its negative (a half-period shift turns one into the other), but
    it can tell whether a texture is there at all.

    ``isotropic`` (new models): the tile is a fixed share of the image's *shorter* side in both
    directions (x may be any shape), where the earlier form stretched a square frame to the image's
    width and height; and every texture is mirror-symmetric, so a trainer's square crop, bucket or
    flip only moves the watermark (``core.registration`` finds it again).
    """

    def __init__(self, n_bits: int = DEFAULT_BITS, tile: int = DEFAULT_TILE, width: int = 32,
                 base_amplitude: float = 0.02, working_size: int = WORKING_SIZE, signed: bool = False,
                 isotropic: bool = False, band: tuple[float, float] = PATTERN_BAND) -> None:
        super().__init__()
        self.isotropic = isotropic
        self.working_size = working_size
        # Signed: each switched-on texture is added with a key-derived sign (``keys.texture_signs``),
        # which the detector's matched filter reads. The power spectrum does not change.
        self.signed = signed
        self.n_bits = n_bits
        self.tile = tile
        self.base_amplitude = base_amplitude
        self.band = tuple(band)  # the textures' frequencies (``textures.pattern_frequencies``)
        # (n_bits, 1, tile, tile): one learned grey texture per message bit.
        self.patterns = nn.Parameter(luma_patterns(n_bits, tile, mirrored=isotropic, band=self.band))
        # Amplitude map from a 64 px view of the image: the map is smooth, so low resolution suffices.
        self.amplitude_net = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=4, dilation=4), nn.ReLU(inplace=True),
            nn.Conv2d(width, 1, 3, padding=1),
        )

    def textures(self) -> torch.Tensor:
        """(n_bits, 1, tile, tile): the learned textures, made mirror-symmetric (x -> -x) when isotropic."""
        if not self.isotropic:
            return self.patterns
        return (self.patterns + self.patterns.flip(-1).roll(1, dims=-1)) / 2

    def pattern(self, message: torch.Tensor, height: int, width: int | None = None) -> torch.Tensor:
        """(B, n_bits) signs -> (B, 1, height, width) unit-variance tiled texture of the switched-on bits."""
        width = height if width is None else width
        selection = (message > 0).to(self.patterns.dtype)
        if self.signed:
            selection = selection * texture_signs(message).to(selection)
        mixed = torch.einsum("bk,kchw->bchw", selection, self.textures())
        mixed = mixed - mixed.mean(dim=(1, 2, 3), keepdim=True)
        mixed = mixed / (mixed.std(dim=(1, 2, 3), keepdim=True) + 1e-6)
        if not self.isotropic:
            return mixed.repeat(1, 1, math.ceil(height / self.tile), math.ceil(width / self.tile))[..., :height, :width]
        # Isotropic: a tile's origin (the textures' mirror axis) sits at the image's centre, so a flip
        # or a centred crop leaves the watermark where the scanner's unsearched reading expects it.
        top, left = (-(height // 2)) % self.tile, (-(width // 2)) % self.tile
        tiled = mixed.repeat(1, 1, math.ceil(height / self.tile) + 1, math.ceil(width / self.tile) + 1)
        return tiled[..., top:top + height, left:left + width]

    def amplitude(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1, H, W) positive map with mean 1 per image."""
        height, width = x.shape[-2:]
        small_size = (64, 64) if not self.isotropic else (max(8, round(64 * height / min(height, width))),
                                                            max(8, round(64 * width / min(height, width))))
        small = F.interpolate(x * 2 - 1, size=small_size, mode="bilinear", antialias=True, align_corners=False)
        amp = F.softplus(self.amplitude_net(small) + 1.0)
        amp = amp / amp.mean(dim=(1, 2, 3), keepdim=True)
        return F.interpolate(amp, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor, message: torch.Tensor) -> torch.Tensor:
        grey = self.base_amplitude * self.amplitude(x) * self.pattern(message, *x.shape[-2:])
        return grey.expand(-1, 3, -1, -1)
