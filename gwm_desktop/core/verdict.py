"""The model-level verdict (SPEC section 2): did the model behind these images learn this key's watermark?

Under the null hypothesis the model never saw this key's watermark, so the images' evidence does not
depend on the key, and the profile's message is exchangeable with any random balanced message. The
set statistic computed with the true message is ranked among the same statistic for ``null_keys``
random messages from a seeded generator: p = (1 + #{random >= true}) / (K + 1) holds whatever the
images look like, and it is the p-value reported and decided on. A normal fit of the random keys'
statistics gives a tail estimate beyond 1 / (K + 1), shown only as such: it is not a bound.

The set statistic is a Stouffer sum: each image's best-view agreement is standardised against that
image's own spread over all K + 1 messages, and the standardised scores are summed over images and
divided by sqrt(n). Every image counts in the same units, so no single image whose evidence varies
widely across keys swamps the set. Exchangeability needs evidence that does not depend on the key:
use the shipped model's detector, never a detector fine-tuned on the profile's key.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gwm_desktop.core.detect import Unreadable, frames_tensor, load_in_batches
from gwm_desktop.core.jobs import CancelToken, Progress
from gwm_desktop.core.models import WatermarkDetector
from gwm_desktop.core.random_keys import NULL_SEED, MessageTable, chunks, message_scores, null_table

DEFAULT_ALPHA = 0.001
DEFAULT_NULL_KEYS = 100_000
# The verdict reads the phases' view at its 3 best shift peaks, not the scan's 16: its bound and power
# (README) were measured so, and all 16 would near triple its cost (a 32-image set's 100,000 keys).
VERDICT_PEAKS = 3
_KEPT_SCORES = 16_000_000  # best-view scores (images x messages) kept between the two passes, ~128 MB


@dataclass
class ImageEvidence:
    """One input's detector evidence (V, E) from the key-independent model, or why it has none."""

    path: Path
    evidence: np.ndarray | None
    error: str | None = None


@dataclass
class ImageContribution:
    path: Path
    agreement: float   # best-view agreement with the profile's message, -1..1
    z: float           # that agreement in units of this image's spread over random keys
    p_value: float     # this image alone: (1 + #{random keys scoring >= it}) / (K + 1)


@dataclass
class VerdictResult:
    n: int
    p_value: float           # the Monte Carlo p: valid whatever the images, never below 1 / (K + 1)
    p_tail: float            # the normal tail model's estimate (not a bound; it can be too small)
    exceedances: int         # random keys whose statistic reached the true key's
    null_keys: int
    seed: int
    statistic: float         # the true key's Stouffer statistic
    effect_z: float          # how far it stands out: (statistic - mean) / sd of the random keys'
    alpha: float
    verdict: bool
    images: list[ImageContribution] = field(default_factory=list)
    errors: list[tuple[Path, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"n": self.n, "p_value": self.p_value, "verdict": self.verdict, "alpha": self.alpha,
                "p_tail_estimate": self.p_tail,
                "exceedances": self.exceedances, "null_keys": self.null_keys, "seed": self.seed,
                "statistic": self.statistic, "effect_z": self.effect_z,
                "images": [{"path": str(c.path), "agreement": c.agreement, "z": c.z, "p_value": c.p_value}
                           for c in self.images],
                "errors": [{"path": str(path), "error": reason} for path, reason in self.errors]}


def normal_tail(null: np.ndarray, observed: float) -> tuple[float, float]:
    """(z, P(X >= observed)) under a normal fit of the random keys' statistics."""
    mean, sd = float(null.mean()), float(null.std(ddof=1))
    if sd <= 0:
        return 0.0, 1.0
    z = (observed - mean) / sd
    return z, 0.5 * math.erfc(z / math.sqrt(2))


def check_alpha(alpha: float, null_keys: int) -> None:
    """Refuse an ``alpha`` the Monte Carlo p (at least 1 / (K + 1)) could never reach: ValueError."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if alpha * (null_keys + 1) < 1:
        raise ValueError(f"alpha {alpha:g} needs at least {math.ceil(1 / alpha) - 1:,} random keys "
                         f"(the smallest p-value {null_keys:,} keys can give is 1/{null_keys + 1:,})")


def decide(p_value: float | np.ndarray, alpha: float) -> bool | np.ndarray:
    """The verdict at ``alpha``, on the Monte Carlo p-value."""
    return np.asarray(p_value <= alpha)


def set_verdict(evidence: np.ndarray | torch.Tensor, true_message: torch.Tensor, alpha: float = DEFAULT_ALPHA,
                null_keys: int = DEFAULT_NULL_KEYS, seed: int = NULL_SEED,
                paths: list[Path] | None = None, cancel: CancelToken | None = None) -> VerdictResult:
    """(N, V, E) key-independent evidence of N images -> the verdict for the set (N = 1: one image's).

    ``cancel`` is checked between blocks of messages (raises JobCancelled): thousands of images take a while.
    """
    cancel = cancel or CancelToken()
    check_alpha(alpha, null_keys)
    evidence = torch.as_tensor(np.asarray(evidence)).double()
    if evidence.dim() != 3 or evidence.shape[0] == 0:
        raise ValueError("the verdict needs the evidence of at least one image, shaped (N, views, E)")
    n_images, n_views, _ = evidence.shape
    table = null_table(true_message, null_keys, seed)
    true_scores = message_scores(evidence, MessageTable.of(true_message.view(1, -1)))[:, 0]
    total = len(table) + 1
    sums, squares = true_scores.clone(), true_scores**2
    image_exceed = torch.zeros(n_images, dtype=torch.float64)
    # the first pass's scores, kept for the second where they fit (a few images x many keys): half the work
    kept: list[torch.Tensor] | None = [] if n_images * len(table) <= _KEPT_SCORES else None
    for start, stop in chunks(n_images, n_views, len(table)):
        cancel.raise_if_cancelled()
        scores = message_scores(evidence, table.rows(start, stop))
        if kept is not None:
            kept.append(scores)
        sums += scores.sum(-1)
        squares += (scores**2).sum(-1)
        image_exceed += (scores >= true_scores[:, None]).double().sum(-1)
    # Moments over all K + 1 messages (true one included), a symmetric function of them: exchangeable.
    mean = sums / total
    sd = ((squares - total * mean**2).clamp_min(0) / (total - 1)).sqrt()
    scale = torch.where(sd > 0, 1 / sd.clamp_min(1e-300), torch.zeros_like(sd))
    observed = float(((true_scores - mean) * scale).sum() / math.sqrt(n_images))
    statistics = torch.empty(len(table), dtype=torch.float64)
    for index, (start, stop) in enumerate(chunks(n_images, n_views, len(table))):
        cancel.raise_if_cancelled()
        scores = kept[index] if kept is not None else message_scores(evidence, table.rows(start, stop))
        statistics[start:stop] = ((scores - mean[:, None]) * scale[:, None]).sum(0) / math.sqrt(n_images)
    null = statistics.numpy()
    exceed = int((null >= observed).sum())
    p_mc = (1 + exceed) / (null_keys + 1)
    effect_z, p_tail = normal_tail(null, observed)
    verdict = decide(p_mc, alpha)
    z_true = ((true_scores - mean) * scale).tolist()
    paths = paths or [Path(f"image {i + 1}") for i in range(n_images)]
    images = [ImageContribution(path, float(a), float(z), (1 + float(e)) / (null_keys + 1))
              for path, a, z, e in zip(paths, true_scores.tolist(), z_true, image_exceed.tolist(), strict=True)]
    return VerdictResult(n_images, p_mc, p_tail, exceed, null_keys, seed, observed, effect_z, alpha, bool(verdict),
                         images)


def evidence_of_paths(detector: WatermarkDetector, paths: Iterable[Path], total: int, device: torch.device | str,
                      batch_size: int = 16, cancel: CancelToken | None = None) -> Iterator[Progress]:
    """One Progress per image, its payload an ImageEvidence (unreadable files carry a one-line reason)."""
    done = 0
    for item in load_in_batches(paths, detector.working_size, batch_size, cancel, centre_square=detector.isotropic):
        if isinstance(item, Unreadable):
            done += 1
            yield Progress(done, total, item.path.name, ImageEvidence(item.path, None, item.reason))
            continue
        with torch.no_grad():
            batch = frames_tensor(np.stack([image for _, image in item]), device)
            views = detector.decode_views(batch, peaks=VERDICT_PEAKS).cpu().numpy()
        for (path, _), evidence in zip(item, views, strict=True):
            done += 1
            yield Progress(done, total, path.name, ImageEvidence(path, evidence))


def verdict_job(detector: WatermarkDetector, true_message: torch.Tensor, paths: list[Path],
                device: torch.device | str, alpha: float = DEFAULT_ALPHA, null_keys: int = DEFAULT_NULL_KEYS,
                seed: int = NULL_SEED, cancel: CancelToken | None = None) -> Iterator[Progress]:
    """Evidence of every image (one Progress each, payload ImageEvidence), then one last Progress whose
    payload is the VerdictResult, or None when no image could be read."""
    cancel = cancel or CancelToken()
    found: list[ImageEvidence] = []
    errors: list[tuple[Path, str]] = []
    for progress in evidence_of_paths(detector, paths, len(paths), device, cancel=cancel):
        item: ImageEvidence = progress.payload
        if item.evidence is None:
            errors.append((item.path, item.error or "unreadable"))
        else:
            found.append(item)
        yield progress
    if cancel.cancelled:
        return
    result = None
    if found:
        result = set_verdict(np.stack([item.evidence for item in found if item.evidence is not None]),
                             true_message, alpha, null_keys, seed, [item.path for item in found], cancel)
        result.errors = errors
    yield Progress(len(paths), len(paths), "verdict", result)
