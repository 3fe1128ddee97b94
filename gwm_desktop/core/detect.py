"""Detection: score images for one profile's watermark, and decide at a chosen FPR.

The detector decodes which textures are present (bit logits ``b``); the profile's message ``m``
turns them into an *agreement* in [-1, 1] and a score in [0, 1] (D's binary head). A key-independent
detector (every shipped model) decides by ``key_rank``: the image's p-value among random keys, flagged
at p <= FPR. A detector fine-tuned on one key (Phase 2) decides by a threshold from its calibration
bank: its outputs on clean held-out images and on images watermarked with random other keys, from
which any key's own negative scores follow at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gwm_desktop.core.image_io import ImageLoadError, load_luma_resized
from gwm_desktop.core.jobs import CancelToken, Progress
from gwm_desktop.core.key_rank import KeyRankTest, null_keys_for
from gwm_desktop.core.models import WatermarkDetector

DEFAULT_FPR = 0.01
# The calibration banks of negatives, each held to the FPR on its own: clean images; images carrying
# other keys' watermarks at every level; and other keys' watermarks at the faintest level, where
# another key looks most like a faint copy of this one (its strong textures no longer count against
# it). Which of the three thresholds binds depends on the key (docs/history.md).
NEGATIVE_BANKS = ("clean_bits", "other_bits", "faint_other_bits")


@dataclass
class ScanResult:
    path: Path
    score: float | None        # D's probability that this profile's watermark is present, 0..1
    agreement: float | None    # share of message bits that agree, -1..1 (best reading)
    flagged: bool
    error: str | None = None
    p_value: float | None = None  # the key-rank test's p (key-independent detectors), what the FPR applies to


class CalibrationMissing(RuntimeError):
    pass


def threshold_for_fpr(negative_agreements: torch.Tensor | np.ndarray, fpr: float) -> float:
    """Flag scores strictly above the returned value: at most ``fpr`` of the negatives are.

    The one rule for a threshold at a false-positive rate: the scanner's verdict, and the figures
    of ``gwm eval`` and Phase 2 reports, all use it.
    """
    if not 0 < fpr < 1:
        raise ValueError(f"false-positive rate must be in (0, 1), got {fpr}")
    values = torch.sort(torch.as_tensor(negative_agreements).flatten().double(), descending=True).values
    allowed = int(math.floor(fpr * len(values)))
    # Flag agreement > values[allowed]: at most `allowed` negatives are above it.
    return float(values[min(allowed, len(values) - 1)])


def negative_agreements(calibration: dict[str, torch.Tensor], message: torch.Tensor) -> dict[str, torch.Tensor]:
    """Agreements with ``message`` of each negative bank: clean images, and other keys' watermarks."""
    if "clean_bits" not in calibration:
        raise CalibrationMissing("this model has no calibration bank; run `gwm eval --calibrate` on it")
    names = [name for name in NEGATIVE_BANKS if name in calibration]
    return {name: bank_agreement(calibration[name].float(), message.view(1, -1)) for name in names}


def bank_agreement(bits: torch.Tensor, message: torch.Tensor) -> torch.Tensor:
    """Agreement of (N, V, n_bits) per-view logits (best view) or (N, n_bits) single-view logits."""
    if bits.dim() == 3:
        return WatermarkDetector.best_agreement(bits, message)
    return WatermarkDetector.agreement(bits, message)


def profile_threshold(calibration: dict[str, torch.Tensor], message: torch.Tensor, fpr: float) -> float:
    """The verdict threshold: at most ``fpr`` of clean images *and* at most ``fpr`` of images carrying
    another profile's watermark are flagged (each bank on its own; pooling them would let the smaller,
    harder bank, other keys, run at a multiple of the rate asked for)."""
    return max(threshold_for_fpr(bank, fpr) for bank in negative_agreements(calibration, message).values())


class Scanner:
    """Scores images for one profile: ``scan_paths`` is the job generator the CLI and GUI drive.

    ``key_independent``: decide by the key-rank test (``key_rank``), the bank is not read; else by
    the calibration bank's threshold (a detector fine-tuned on this key)."""

    def __init__(self, detector: WatermarkDetector, message: torch.Tensor, calibration: dict[str, torch.Tensor],
                 device: torch.device | str = "cpu", fpr: float = DEFAULT_FPR, batch_size: int = 16,
                 key_independent: bool = False) -> None:
        self.detector = detector
        self.message = message.view(1, -1)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.fpr = fpr
        self.rank_test = KeyRankTest(detector, message, null_keys_for(fpr)) if key_independent else None
        if self.rank_test is not None:
            self.threshold = None
            self.use_views = True
            return
        self.threshold = profile_threshold(calibration, self.message, fpr)
        # Score images the way the bank was built: per scan-time view (shipped model) or one view
        # (a bank written by an older or a Phase 2 job), or the threshold would not mean the FPR.
        self.use_views = calibration["clean_bits"].dim() == 3
        if self.use_views and calibration["clean_bits"].shape[1] != detector.view_count:
            raise CalibrationMissing(f"this model's calibration bank holds {calibration['clean_bits'].shape[1]} views "
                                     f"per image where its scanner reads {detector.view_count}; recalibrate it "
                                     "with `gwm eval --calibrate`")

    @torch.no_grad()
    def score_arrays(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(B, S, S) luma or (B, S, S, 3) RGB, uint8 at the working size -> (scores (B,), agreements (B,),
        p-values (B,) or None)."""
        x = frames_tensor(images, self.device)
        bits = self.detector.decode_views(x) if self.use_views else self.detector(x)
        agreement = bank_agreement(bits, self.message.to(self.device))
        score = self.detector.score_from_agreement(agreement)
        p_values = None if self.rank_test is None else self.rank_test.p_values(bits).numpy()
        return score.cpu().numpy(), agreement.cpu().numpy(), p_values

    def _result(self, path: Path, score: float, agreement: float, p_value: float | None) -> ScanResult:
        if p_value is not None:
            return ScanResult(path, score, agreement, bool(p_value <= self.fpr), p_value=p_value)
        return ScanResult(path, score, agreement, bool(agreement > self.threshold))

    def scan_paths(self, paths: Iterable[Path], total: int | None = None,
                   cancel: CancelToken | None = None) -> Iterator[Progress]:
        """Yields one Progress per image, its payload a ScanResult (errors included, never raised)."""
        paths = list(paths) if total is None else paths
        total = len(paths) if total is None else total
        done = 0
        for item in load_in_batches(paths, self.detector.working_size, self.batch_size, cancel,
                                    centre_square=self.detector.isotropic):
            if isinstance(item, Unreadable):
                done += 1
                yield Progress(done, total, item.path.name, ScanResult(item.path, None, None, False, item.reason))
                continue
            scores, agreements, p_values = self.score_arrays(np.stack([image for _, image in item]))
            p_list = [None] * len(item) if p_values is None else [float(p) for p in p_values]
            for (path, _), score, agreement, p in zip(item, scores, agreements, p_list, strict=True):
                done += 1
                yield Progress(done, total, path.name, self._result(path, float(score), float(agreement), p))


def frames_tensor(images: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """(B, S, S) luma or (B, S, S, 3) RGB uint8 frames -> (B, 1 or 3, S, S) float in [0, 1] on ``device``."""
    x = torch.from_numpy(images).to(device)
    return (x[:, None] if x.dim() == 3 else x.permute(0, 3, 1, 2)).float() / 255.0


@dataclass
class Unreadable:
    """An input that could not be read as an image, and why (one line)."""

    path: Path
    reason: str


def load_in_batches(paths: Iterable[Path], size: int, batch_size: int, cancel: CancelToken | None = None,
                    centre_square: bool = False) -> Iterator[list[tuple[Path, np.ndarray]] | Unreadable]:
    """Inputs' luma (all the detector reads) at ``size`` x ``size``, uint8 (size, size), in batches of up to
    ``batch_size``, in input order: a bad file ends the batch before it and comes as an ``Unreadable``. Stops on cancel.
    ``centre_square``: the centred square of the shorter side (an isotropic model's frame)."""
    cancel = cancel or CancelToken()
    pending: list[tuple[Path, np.ndarray]] = []
    for path in paths:
        if cancel.cancelled:
            return
        path = Path(path)
        try:
            pending.append((path, load_luma_resized(path, (size, size), centre_square)))
        except (ImageLoadError, OSError, ValueError) as error:
            if pending:
                yield pending
                pending = []
            yield Unreadable(path, _reason(error))
            continue
        if len(pending) >= batch_size:
            yield pending
            pending = []
    if pending:
        yield pending


def _reason(error: Exception) -> str:
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, IsADirectoryError):
        return "is a folder"
    return str(error) or type(error).__name__
