"""The two networks of GenWatermark: generator G (makes the watermark) and detector D (finds it).

Both work at the *working resolution* ``WORKING_SIZE`` x ``WORKING_SIZE`` (256 px): an image of any
size is stretched to it for detection, and the watermark made at it is stretched back to the image,
so a model that resizes images for training (Stable Diffusion: 512 px) sees it near native scale.

Why this architecture (no official code exists; every choice here is ours and measured in README):

* **Key conditioning.** A profile's secret key is hashed into a message ``m`` of ``n_bits`` signs
  (``keys.message_from_key``). G's watermark is a key-weighted sum of learned patterns, so a new
  profile protects at once with a watermark of its own, and D decodes ``n_bits`` logits ``b`` whose
  agreement with ``m`` is the detection score. Another profile's watermark decodes to another ``m'``,
  which agrees with ``m`` only by chance: cross-key uniqueness comes from the code, not from a
  per-profile training job.
* **G = learned pattern bank x image-adaptive amplitude.** The patterns are tiled across the frame,
  which keeps them findable after crops (a shifted tile is still the same texture) and keeps G's
  capacity where Phase 1 can train it in minutes on a CPU. A bit switches its texture on or off. A small CNN sees the image and decides
  where the watermark may be stronger (texture hides it, flat skies do not).
* **D = a small CNN on the image's whitened power spectrum**, which does not change when the image
  shifts (crops) and costs one FFT, so thousands of images scan quickly on a CPU. A plain CNN with
  global pooling learned nothing in 200 steps here: it must find a faint texture under image content.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

WORKING_SIZE = 256
DEFAULT_BITS = 48
DEFAULT_TILE = 128
SPECTRUM_CROP = 96


def band_pass_patterns(n_patterns: int, tile: int, seed: int = 0) -> torch.Tensor:
    """(n_patterns, 3, tile, tile) initial textures, each with its own orientation, frequency band and colour.

    A texture is a few sinusoids near one (orientation, radius) on the tile's integer frequency grid,
    so it tiles seamlessly and its power spectrum tells it apart from the others: the detector can
    recognise each one by local energy, wherever it sits (shift invariance). Bands are an octave apart
    so the 1.25x zoom of a crop cannot confuse neighbours. Training refines them.
    """
    generator = torch.Generator().manual_seed(seed)
    radii = (4.0 * tile / 128, 8.0 * tile / 128, 16.0 * tile / 128)   # 1/32, 1/16, 1/8 cycles per pixel
    colours = (torch.tensor([1.0, 1.0, 1.0]) / math.sqrt(3), torch.tensor([1.0, -1.0, 0.0]) / math.sqrt(2),
               torch.tensor([1.0, 1.0, -2.0]) / math.sqrt(6))
    n_angles = max(1, math.ceil(n_patterns / (len(radii) * len(colours))))
    coords = torch.arange(tile, dtype=torch.float32)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    patterns = []
    for index in range(n_patterns):
        angle = math.pi * (index % n_angles) / n_angles
        radius = radii[(index // n_angles) % len(radii)]
        colour = colours[(index // (n_angles * len(radii))) % len(colours)]
        texture = torch.zeros(tile, tile)
        for _ in range(3):
            jitter_a = angle + (torch.rand(1, generator=generator).item() - 0.5) * math.pi / n_angles
            jitter_r = radius * (0.85 + 0.3 * torch.rand(1, generator=generator).item())
            u, v = round(jitter_r * math.cos(jitter_a)), round(jitter_r * math.sin(jitter_a))
            phase = 2 * math.pi * torch.rand(1, generator=generator).item()
            texture += torch.cos(2 * math.pi * (u * xx + v * yy) / tile + phase)
        texture = texture / texture.std().clamp_min(1e-6)
        patterns.append(colour.view(3, 1, 1) * texture)
    return torch.stack(patterns)


def networks_for_size(working_size: int = WORKING_SIZE, n_bits: int = DEFAULT_BITS,
                      tile: int = 0) -> tuple[WatermarkGenerator, WatermarkDetector]:
    """Fresh G and D for a working size: tile half the frame (0), spectrum crop scaled from 256 px."""
    crop = max(8, round(working_size * SPECTRUM_CROP / WORKING_SIZE / 8) * 8)
    return (WatermarkGenerator(n_bits=n_bits, tile=tile or working_size // 2, working_size=working_size),
            WatermarkDetector(n_bits=n_bits, working_size=working_size, spectrum_crop=crop))


class WatermarkGenerator(nn.Module):
    """G: (image, message) -> watermark.

    forward(x: (B, 3, S, S) in [0, 1], message: (B, n_bits) in {-1, +1}) -> w: (B, 3, S, S),
    zero-mean, per-pixel std of order ``base_amplitude``. Bit k = +1 switches texture k on; keys have
    exactly half their bits on (``keys.message_from_key``). The caller scales ``w`` per image to meet
    the LPIPS budget (``watermark.calibrate_strength``); G decides its shape.

    Why presence, not sign: a detector that must not care where the watermark sits (global pooling)
    cannot tell a tiled texture from its negative (a half-period shift turns one into the other), but
    it can tell whether a texture is there at all.
    """

    def __init__(self, n_bits: int = DEFAULT_BITS, tile: int = DEFAULT_TILE, width: int = 32,
                 base_amplitude: float = 0.02, working_size: int = WORKING_SIZE) -> None:
        super().__init__()
        self.working_size = working_size
        self.n_bits = n_bits
        self.tile = tile
        self.base_amplitude = base_amplitude
        # (n_bits, 3, tile, tile): one learned texture per message bit.
        self.patterns = nn.Parameter(band_pass_patterns(n_bits, tile))
        # Amplitude map from a 64 px view of the image: the map is smooth, so low resolution suffices.
        self.amplitude_net = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=4, dilation=4), nn.ReLU(inplace=True),
            nn.Conv2d(width, 1, 3, padding=1),
        )

    def pattern(self, message: torch.Tensor, size: int) -> torch.Tensor:
        """(B, n_bits) signs -> (B, 3, size, size) unit-variance tiled texture of the switched-on bits."""
        selection = (message > 0).to(self.patterns.dtype)
        mixed = torch.einsum("bk,kchw->bchw", selection, self.patterns)
        mixed = mixed - mixed.mean(dim=(1, 2, 3), keepdim=True)
        mixed = mixed / (mixed.std(dim=(1, 2, 3), keepdim=True) + 1e-6)
        repeats = math.ceil(size / self.tile)
        return mixed.repeat(1, 1, repeats, repeats)[..., :size, :size]

    def amplitude(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, 1, S, S) positive map with mean 1 per image."""
        small = F.interpolate(x * 2 - 1, size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
        amp = F.softplus(self.amplitude_net(small) + 1.0)
        amp = amp / amp.mean(dim=(1, 2, 3), keepdim=True)
        return F.interpolate(amp, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor, message: torch.Tensor) -> torch.Tensor:
        return self.base_amplitude * self.amplitude(x) * self.pattern(message, x.shape[-1])


COLOUR_AXES = torch.tensor([
    [0.299, 0.587, 0.114],    # luma
    [0.5, -0.5, 0.0],         # red-green
    [0.25, 0.25, -0.5],       # yellow-blue
])


def whitened_spectrum(x: torch.Tensor, crop: int) -> torch.Tensor:
    """(B, 3, S, S) in [0, 1] -> (B, 3, crop, crop) log power spectrum, locally whitened.

    Per colour axis (luma and two opponent chroma axes): Hann window, FFT, log power, minus its
    local mean. Photographs' spectra fall off smoothly with frequency; a watermark texture is a
    narrow peak, so whitening leaves the peaks and removes the image. The magnitude spectrum does
    not change when the image is shifted, which makes the detector indifferent to crops' offsets.
    Only the central ``crop`` bins (low and middle frequencies, which survive JPEG and blur) are kept.
    """
    size = x.shape[-1]
    axes = torch.einsum("ck,bkhw->bchw", COLOUR_AXES.to(x.device, x.dtype), x)
    axes = axes - axes.mean(dim=(2, 3), keepdim=True)
    window = torch.hann_window(size, periodic=False, device=x.device, dtype=x.dtype)
    spectrum = torch.fft.fft2(axes * (window[:, None] * window[None, :]))
    power = torch.fft.fftshift(spectrum.real**2 + spectrum.imag**2, dim=(-2, -1))
    # Whiten only the kept bins (plus the pooling margin): identical values, a fraction of the work.
    margin = 3
    offset = size // 2 - crop // 2
    if offset >= margin:
        region = torch.log(power[..., offset - margin:offset + crop + margin, offset - margin:offset + crop + margin] + 1e-8)
        return region[..., margin:-margin, margin:-margin] - F.avg_pool2d(region, 2 * margin + 1, stride=1)
    log_power = torch.log(power + 1e-8)
    whitened = log_power - F.avg_pool2d(log_power, 2 * margin + 1, stride=1, padding=margin, count_include_pad=False)
    return whitened[..., offset:offset + crop, offset:offset + crop]


class WatermarkDetector(nn.Module):
    """D: image -> message logits, and the binary "watermarked with this key?" logit.

    forward(x: (B, 3, S, S) in [0, 1], S = working_size; other sizes are resized) -> bit logits (B, n_bits): is texture k there?
    score_logit(bits, message) -> (B,) binary logit; trained with cross-entropy (clean 0,
    watermarked with this key 1, watermarked with another key 0).

    A small CNN reads the whitened spectrum (``whitened_spectrum``). It keeps position in the
    spectrum (frequency and orientation identify a texture) and learns tolerance to the zoom of a
    crop or resize, which moves peaks radially.
    """

    def __init__(self, n_bits: int = DEFAULT_BITS, widths: tuple[int, int, int] = (16, 32, 64),
                 spectrum_crop: int = SPECTRUM_CROP, working_size: int = WORKING_SIZE) -> None:
        super().__init__()
        self.working_size = working_size
        w1, w2, w3 = widths
        self.n_bits = n_bits
        self.spectrum_crop = spectrum_crop
        self.features = nn.Sequential(
            nn.Conv2d(3, w1, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w1, w2, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w2, w2, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w2, w3, 3, stride=2, padding=1), nn.ReLU(inplace=True),
        )
        reduced = math.ceil(spectrum_crop / 8)
        self.bits = nn.Linear(w3 * reduced * reduced, n_bits)
        # Binary head on the bit agreement: logit = scale * agreement + bias.
        self.score_scale = nn.Parameter(torch.tensor(8.0))
        self.score_bias = nn.Parameter(torch.tensor(-2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.working_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        features = self.features(whitened_spectrum(x, self.spectrum_crop))
        return self.bits(features.flatten(1))

    @staticmethod
    def agreement(bits: torch.Tensor, message: torch.Tensor) -> torch.Tensor:
        """Soft share of bits that agree, in [-1, 1]: (B, n_bits) x (B|1, n_bits) -> (B,)."""
        return (torch.tanh(bits) * message).mean(dim=-1)

    def score_logit(self, bits: torch.Tensor, message: torch.Tensor) -> torch.Tensor:
        return self.score_scale * self.agreement(bits, message) + self.score_bias
