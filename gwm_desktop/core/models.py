"""The detector D of GenWatermark (finds the watermark), and ``networks_for_size``, which builds it with
its generator G (``generator.py``, makes the watermark).

Both work at the *working resolution* ``WORKING_SIZE`` (256 px). New models are *isotropic*: G tiles
its textures in square pixels of the image's shorter side (at 256 px) and the detector reads the
centred square of the shorter side, so a trainer's square crop or bucket only moves the watermark; the
earlier form (older manifests) stretched a 256 x 256 frame to the image's width and height.

* **Key conditioning.** A profile's secret key is hashed into a message ``m`` of ``n_bits`` signs
  (``keys.message_from_key``). G's watermark is a key-weighted sum of learned patterns, so a new
  profile protects at once, and D decodes ``n_bits`` logits whose agreement with ``m`` is the
  detection score; another key's watermark agrees only by chance.
* **D = a small CNN on the luma's whitened power spectrum** (``spectrum.py``): shift-invariant and
  one FFT per image, so scans are fast on a CPU.
* **Plus a matched filter** (shipped models): D also correlates the luma with G's key-signed
  textures (``WatermarkDetector.coherent``); phase survives where the power spectrum's faint peak
  drowns at the lowest budgets. Isotropic models register the frame first (``core.registration``:
  mirror-symmetric textures make a flip a shift; the shift and a crop's zoom are found without the key).

Why each choice, with the measurements: docs/history.md and README.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gwm_desktop.core.agreement import MATCHED_WEIGHT, matched_agreement
from gwm_desktop.core.generator import DEFAULT_BITS, DEFAULT_TILE, WORKING_SIZE, WatermarkGenerator
from gwm_desktop.core.registration import (
    PHASE_ZOOMS,
    SMALLEST_TURN,
    PhaseAlignment,
    coherence_frame,
    estimate_frame,
    estimate_shifts,
    half_tile_signs,
    mirrored_components,
    normalised_components,
    shift_ramps,
)
from gwm_desktop.core.spectrum import (
    SCAN_ZOOMS,
    SMOOTHING_MARGIN,
    band_spectrum,
    band_width,
    box_mean,
    luma,
    rotate_about_centre,
    whiten,
    whitened_spectrum,
    zoom_out,
)
from gwm_desktop.core.textures import PATTERN_BAND, pattern_frequencies

READINGS = 5  # an isotropic matched filter's readings per view: unmoved, then four after the shift search
# New models' phases' registered view is read at its 16 best shift peaks (docs/history.md has the choice).
REGISTRATION_PEAKS = 16
# Bins of the whitened spectrum D reads at 256 px: the default band's peaks (up to 30) with room for a
# 1.3x zoom (``networks_for_size`` works it out for other sizes and bands).
SPECTRUM_CROP = 80
# The phases' zoom search also tries the view unturned when the power's turn is this large (degrees): a
# smaller error costs the matched filter little, and each candidate costs a coarse search.
UNTURNED_ALSO_FROM = 1.0


def networks_for_size(working_size: int = WORKING_SIZE, n_bits: int = DEFAULT_BITS, tile: int = 0,
                      isotropic: bool = True, band: tuple[float, float] = PATTERN_BAND,
                      ) -> tuple[WatermarkGenerator, WatermarkDetector]:
    """Fresh G and D for a working size: tile half the frame (0), spectrum crop just wide enough.

    The crop keeps every pattern's peak with room for a 1.3x zoom (80 bins at 256 px, 128 px tiles).
    ``isotropic``: the frame new models use (``WatermarkGenerator``); False builds the earlier form.
    """
    tile = tile or working_size // 2
    frequencies = pattern_frequencies(n_bits, tile, mirrored=isotropic, band=band)
    highest = max(math.hypot(u, v) for u, v in frequencies) * working_size / tile
    crop = min(working_size - 8, max(8, math.ceil(2 * 1.3 * highest / 8) * 8))
    return (WatermarkGenerator(n_bits=n_bits, tile=tile, working_size=working_size, isotropic=isotropic, band=band),
            WatermarkDetector(n_bits=n_bits, working_size=working_size, spectrum_crop=crop, tile=tile,
                              isotropic=isotropic, registration_peaks=REGISTRATION_PEAKS if isotropic else 0,
                              band=band))


class WatermarkDetector(nn.Module):
    """D: image -> message logits, and the binary "watermarked with this key?" logit.

    forward(x: (B, 3, S, S) in [0, 1], S = working_size; other sizes are resized) -> bit logits (B, n_bits): is texture k there?
    score_logit(bits, message) -> (B,) binary logit; trained with cross-entropy (clean 0,
    watermarked with this key 1, watermarked with another key 0).

    A small CNN reads the whitened spectrum (``whitened_spectrum``), keeping position in it (frequency and
    orientation identify a texture); it learns tolerance to a crop's or a resize's zoom (peaks move radially).
    """

    def __init__(self, n_bits: int = DEFAULT_BITS, widths: tuple[int, int, int] = (16, 32, 64),
                 spectrum_crop: int = SPECTRUM_CROP, working_size: int = WORKING_SIZE,
                 matched_filter: bool = False, tile: int = DEFAULT_TILE, isotropic: bool = False,
                 registration_peaks: int = 0, band: tuple[float, float] = PATTERN_BAND) -> None:
        super().__init__()
        if spectrum_crop % 2:
            raise ValueError(f"spectrum_crop must be even (the band is centred on zero frequency), got {spectrum_crop}")
        self.working_size = working_size
        # Isotropic (``WatermarkGenerator``): read the centred square of the shorter side, and register
        # the frame (``core.registration``) before reading (``decode_views``, ``READINGS``).
        self.isotropic = isotropic
        # 0: the one registered view and shift peak of models calibrated before 2 Dec 2026 (``view_count``)
        self.registration_peaks = registration_peaks
        self.band = tuple(band)  # G's textures' frequencies, which the registration looks for
        self.components = (mirrored_components(pattern_frequencies(n_bits, tile, mirrored=True, band=self.band),
                                               working_size, tile) if isotropic else None)
        self.matched_filter = matched_filter
        if matched_filter:
            # G's textures (``adopt_templates``): the matched filter correlates the image with them.
            self.register_buffer("templates", torch.zeros(n_bits, tile, tile))
        self._template_cache: tuple[tuple, torch.Tensor, torch.Tensor] | None = None
        self._alignment_cache: tuple[tuple, PhaseAlignment] | None = None
        w1, w2, w3 = widths
        self.n_bits = n_bits
        self.spectrum_crop = spectrum_crop
        self.features = nn.Sequential(
            nn.Conv2d(1, w1, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w1, w2, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w2, w2, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w2, w3, 3, stride=2, padding=1), nn.ReLU(inplace=True),
        ).to(memory_format=torch.channels_last)  # oneDNN's fast path for these thin convolutions on a CPU
        reduced = math.ceil(spectrum_crop / 8)
        self.bits = nn.Linear(w3 * reduced * reduced, n_bits)
        # Binary head on the bit agreement: logit = scale * agreement + bias.
        self.score_scale = nn.Parameter(torch.tensor(8.0))
        self.score_bias = nn.Parameter(torch.tensor(-2.0))

    def _at_working_size(self, x: torch.Tensor) -> torch.Tensor:
        size = self.working_size
        if x.shape[-2:] == (size, size):
            return x
        if self.isotropic:  # the centred square of the shorter side, as the scanner's loader reads files
            side = min(x.shape[-2:])
            top, left = (x.shape[-2] - side) // 2, (x.shape[-1] - side) // 2
            x = x[..., top:top + side, left:left + side]
        return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(whitened_spectrum(self._at_working_size(x), self.spectrum_crop))
        return self.bits(features.flatten(1))

    @torch.no_grad()
    def adopt_templates(self, generator: WatermarkGenerator) -> None:
        """Copy G's textures into the matched filter (after G's training; G must be ``signed``)."""
        if not self.matched_filter:
            raise ValueError("this detector was built without a matched filter")
        self.templates.copy_(generator.textures().detach()[:, 0])

    def _template_spectra(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n_bits, crop, crop) complex spectra of the tiled textures, and their |T|^2 (cached)."""
        key = (self.templates._version, like.device, like.dtype)
        if self._template_cache is None or self._template_cache[0] != key:
            size, crop = self.working_size, self.spectrum_crop
            repeats = math.ceil(size / self.templates.shape[-1])
            tiled = self.templates.to(like.device, like.dtype).repeat(1, repeats, repeats)[:, None, :size, :size]
            spectra = band_spectrum(tiled, crop // 2)[:, 0, :crop, :crop]
            self._template_cache = (key, spectra, spectra.real**2 + spectra.imag**2)
        return self._template_cache[1], self._template_cache[2]

    def coherent(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, n_bits): the matched filter's statistic c_k for each texture.

        c_k = Re sum_f conj(X(f)) T_k(f) / P(f) / sqrt(sum_f |T_k(f)|^2 / P(f)) over the kept band,
        P the image's local mean power: a correlation with texture k, whitened by the image's own
        spectrum. It keeps the phase, which the power spectrum throws away: where the image is where
        the watermark was applied (every standard distortion but the crop, which the 0.8 view undoes),
        a faint texture adds coherently. Scale: about 1.9 standard deviations on clean images (the
        window correlates bins).
        """
        return self._correlate(band_spectrum(luma(x), band_width(self.spectrum_crop)))

    def _correlate(self, band: torch.Tensor, register: bool = False, peaks: int = 1) -> torch.Tensor:
        """``coherent`` from the luma's ``band_spectrum`` (which ``decode_views`` shares with the CNN).

        ``register``: (B, 1 + 4 peaks, n_bits), the statistics where an unmoved isotropic watermark sits
        (its origin at the frame's centre), then after undoing each of the ``peaks`` best shifts of
        ``registration.estimate_shifts`` under each half-tile reading (``half_tile_signs``).
        """
        weighted, local, denominator = self._whitened_correlation(band)
        templates, _ = self._template_spectra(weighted.real)
        if not register:
            return torch.einsum("bhw,khw->bk", weighted, templates).real / denominator  # never adopted: 0
        centre = float((self.working_size // 2) % self.components.tile)
        expected = torch.full((weighted.shape[0], 1, 2), centre, device=weighted.device)
        found = estimate_shifts(normalised_components(weighted, templates, local, self.components),
                                self.components, peaks)
        shifts = torch.cat([expected, found], dim=1)                                  # (B, 1 + peaks, 2)
        ramp_x, ramp_y = shift_ramps(shifts.flatten(0, 1), weighted.shape[-1], self.working_size)
        aligned = weighted.repeat_interleave(shifts.shape[1], 0) * ramp_y[:, :, None] * ramp_x[:, None, :]
        readings = (torch.einsum("bhw,khw->bk", aligned, templates).real
                    / denominator.repeat_interleave(shifts.shape[1], 0)).view(*shifts.shape[:2], -1)
        signs = half_tile_signs(self.components).to(readings)                         # (4, n_bits)
        searched = (readings[:, 1:, None] * signs[None, None]).flatten(1, 2)          # (B, 4 peaks, n_bits)
        return torch.cat([readings[:, :1], searched], dim=1)

    def _whitened_correlation(self, band: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The kept band's conj(X) / P, the local power P and each texture's normaliser (``coherent``)."""
        crop, margin = self.spectrum_crop, SMOOTHING_MARGIN
        local = box_mean(band.real**2 + band.imag**2, 2 * margin + 1)[:, 0, :crop, :crop] + 1e-12
        kept = band[:, 0, margin:margin + crop, margin:margin + crop]
        _, energy = self._template_spectra(kept.real)
        denominator = torch.sqrt(torch.einsum("bhw,khw->bk", 1.0 / local, energy)).clamp_min(1e-12)
        return kept.conj() / local, local, denominator

    def phase_alignment(self, size: int, device: torch.device | str = "cpu") -> PhaseAlignment:
        """The phase search's alignment of ``size`` px views at ``PHASE_ZOOMS`` (``registration.coherence_frame``;
        cached: its operators depend only on the textures, the size and the device)."""
        key = (self.templates._version, torch.device(device), size)
        if self._alignment_cache is None or self._alignment_cache[0] != key:
            templates = self._template_spectra(torch.zeros(()))[0]
            self._alignment_cache = (key, PhaseAlignment(self.components, templates, size, SMOOTHING_MARGIN,
                                                         PHASE_ZOOMS, device))
        return self._alignment_cache[1]

    def _evidence_of_luma(self, grey: torch.Tensor) -> torch.Tensor:
        """(N, 1, S, S) luma -> (N, E): bit logits, then the matched filter's statistics when D has it;
        the CNN and the matched filter share one FFT (``band_spectrum``). Isotropic: (N, READINGS, E), the
        matched filter's readings (``_correlate``), the bit logits repeated for each."""
        return self._evidence_of_band(band_spectrum(grey, band_width(self.spectrum_crop)))

    def _evidence_of_band(self, band: torch.Tensor, peaks: int = 1) -> torch.Tensor:
        """``_evidence_of_luma`` from the luma's ``band_spectrum``; isotropic: ``peaks`` shifts read."""
        evidence = self.bits(self.features(whiten(band, self.spectrum_crop)).flatten(1))
        if not self.matched_filter:
            return evidence
        if not self.isotropic:
            return torch.cat([evidence, self._correlate(band)], dim=-1)
        readings = self._correlate(band, register=True, peaks=peaks)
        return torch.cat([evidence[:, None].expand(-1, readings.shape[1], -1), readings], dim=-1)

    def registered_zoom(self, x: torch.Tensor, band: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, S, S) luma or RGB -> the same, each image zoomed out by its estimated crop magnification
        and turned back by its estimated rotation (``band``: the luma's ``band_spectrum``, when the caller
        has it already); with ``phase_registration``, (2 B, ...): also zoomed out by the phases' estimate
        (``registration.coherence_frame``, at half the frame where the band fits), after the same turn or
        none, whichever the phases line up with better."""
        if band is None:
            band = band_spectrum(luma(x), band_width(self.spectrum_crop))
        zooms, angles = estimate_frame(whiten(band, self.spectrum_crop), self.components)
        angles = torch.where(angles.abs() < SMALLEST_TURN, torch.zeros_like(angles), angles)
        turned = rotate_about_centre(x, angles)
        if self.phase_registration:   # the phases' zoom, on the turned view or on the view as is
            size = self.working_size // (2 if 4 * band_width(self.spectrum_crop) <= self.working_size else 1)
            candidates = torch.cat([luma(turned), luma(x)], dim=1)
            tried = torch.stack([torch.ones_like(angles, dtype=torch.bool), angles.abs() >= UNTURNED_ALSO_FROM], dim=1)
            phase_zooms, choice = coherence_frame(self.phase_alignment(size, x.device), candidates, tried)
            zooms = torch.cat([zooms, phase_zooms])
            turned = torch.cat([turned, torch.where(choice.view(-1, 1, 1, 1) == 0, turned, x)])
        return torch.cat([zoom_out(turned[i:i + 1], float(zoom)) for i, zoom in enumerate(zooms)])

    def evidence(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, E): one unzoomed view's evidence, with gradients (Phase 2 trains D on it);
        isotropic: (B, V, E), that view's readings (``score_logit`` takes the best).

        The same E as ``decode_views``: bit logits, then the matched filter's statistics when D has it,
        so the binary head learns on the agreement the scanner computes.
        """
        return self._evidence_of_luma(luma(self._at_working_size(x)))

    @torch.no_grad()
    def decode_views(self, x: torch.Tensor, zooms: tuple[float, ...] = SCAN_ZOOMS, peaks: int | None = None) -> torch.Tensor:
        """(B, 3, S, S) -> (B, V, E): the evidence of each scan-time view (``SCAN_ZOOMS``; isotropic: the
        ``SCAN_ZOOMS`` and the registered view, each read ``READINGS`` ways, then with
        ``phase_registration`` the phases' registered view read 1 + 4 ``registration_peaks`` ways, or at
        fewer ``peaks``: the best come first, so those are the leading readings, as the verdict reads).

        E = n_bits bit logits, followed by n_bits matched-filter statistics (``coherent``) when the
        detector has the matched filter; ``agreement`` reads both.
        """
        grey = luma(self._at_working_size(x))  # zoomed once per view on one channel: the views need only luma
        if not self.isotropic:
            evidence = self._evidence_of_luma(torch.cat([zoom_out(grey, zoom) for zoom in zooms]))
            return evidence.view(len(zooms), x.shape[0], -1).transpose(0, 1)
        width = band_width(self.spectrum_crop)
        as_is = band_spectrum(grey, width)  # read, and the registration's estimate: one FFT for both
        fixed = band_spectrum(torch.cat([zoom_out(grey, zoom) for zoom in zooms[1:]]), width)
        registered = band_spectrum(self.registered_zoom(grey, as_is), width)
        parts = [self._evidence_of_band(torch.cat([as_is, fixed, registered[:x.shape[0]]]))]
        if self.phase_registration:   # the phases' view, read at more peaks: a batch of its own
            read = self.registration_peaks if peaks is None else min(peaks, self.registration_peaks)
            parts.append(self._evidence_of_band(registered[x.shape[0]:], read))
        views = []
        for evidence in (part[:, None] if part.dim() == 2 else part for part in parts):
            views.extend(evidence.reshape(-1, x.shape[0], *evidence.shape[1:]).unbind(0))
        return torch.cat(views, dim=1)

    @property
    def view_count(self) -> int:
        """V of ``decode_views``: the scan-time zooms (isotropic: and the registered views) x their readings."""
        if not self.isotropic:
            return len(SCAN_ZOOMS)
        unregistered = (len(SCAN_ZOOMS) + 1) * (READINGS if self.matched_filter else 1)
        return unregistered + (1 + 4 * self.registration_peaks if self.phase_registration else 0)

    @property
    def phase_registration(self) -> bool:
        """Whether the scan adds the phases' zoom and reads ``registration_peaks`` shifts (matched filter only)."""
        return bool(self.registration_peaks and self.matched_filter)

    @staticmethod
    def agreement(bits: torch.Tensor, message: torch.Tensor) -> torch.Tensor:
        """Agreement with ``message`` in [-1, 1]: (B, E) x (B|1, n_bits) -> (B,).

        E = n_bits (bit logits): the soft share of bits that agree. E = 2 n_bits (bit logits, then
        matched-filter statistics): a weighted mean of that and ``matched_agreement``.
        """
        n_bits = message.shape[-1]
        soft = (torch.tanh(bits[..., :n_bits]) * message).mean(dim=-1)
        if bits.shape[-1] == n_bits:
            return soft
        return (1 - MATCHED_WEIGHT) * soft + MATCHED_WEIGHT * matched_agreement(bits[..., n_bits:], message)

    @staticmethod
    def best_agreement(view_bits: torch.Tensor, message: torch.Tensor) -> torch.Tensor:
        """(..., V, n_bits) x (..., n_bits) -> (...): the agreement of the best view."""
        return WatermarkDetector.agreement(view_bits, message.unsqueeze(-2)).amax(dim=-1)

    def score_from_agreement(self, agreement: torch.Tensor) -> torch.Tensor:
        """Agreement -> D's probability that the key's watermark is present (the binary head)."""
        return torch.sigmoid(self.score_scale * agreement + self.score_bias)

    def score_logit(self, bits: torch.Tensor, message: torch.Tensor) -> torch.Tensor:
        """(B, E) or (B, V, E) evidence (the best view) x (B|1, n_bits) -> (B,) binary logit."""
        agreement = self.best_agreement(bits, message) if bits.dim() == 3 else self.agreement(bits, message)
        return self.score_scale * agreement + self.score_bias
