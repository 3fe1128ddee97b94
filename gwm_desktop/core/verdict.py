"""The model-level verdict (SPEC section 2): did the model behind these images learn this key's watermark?

Under the null hypothesis the model never saw this key's watermark, so the images' evidence does not
depend on the key, and the profile's message is exchangeable with any random balanced message. The
set statistic computed with the true message is ranked among the same statistic for ``null_keys``
random messages from a seeded generator: p = (1 + #{random >= true}) / (K + 1) holds whatever the
images look like, and it is the p-value reported and decided on. A normal fit of the random keys'
statistics gives a tail estimate beyond 1 / (K + 1), shown only as such: it is not a bound.

The set statistic is a Stouffer sum of each image's own test: for a message, an image's term is its
key-rank p as the scanner computes it (``key_rank``: each group of readings' best agreement ranked,
divided by the group's share of the budget, the smallest kept, that ranked again), here against a
fixed reference draw of random keys and carried beyond the best of them by a normal fit, as a normal
score; the terms are summed over images and divided by sqrt(n). Every image counts in the same units, and the unmoved readings are held to their
own null, not to the searched ones'. The term is a fixed function of the message, whichever message
is the profile's, so the rank among the random keys stays exact.
Exchangeability needs evidence that does not depend on the key: use the shipped model's detector,
never a detector fine-tuned on the profile's key.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gwm_desktop.core.detect import Unreadable, frames_tensor, load_in_batches
from gwm_desktop.core.jobs import CancelToken, Progress
from gwm_desktop.core.key_rank import group_best, reading_groups
from gwm_desktop.core.models import WatermarkDetector
from gwm_desktop.core.random_keys import (
    NULL_SEED,
    MessageTable,
    chunks,
    null_table,
    reading_scores,
    seeded_table,
)

DEFAULT_ALPHA = 0.001
DEFAULT_NULL_KEYS = 100_000
# The verdict reads the phases' view at its 3 best shift peaks, not the scan's 16: its bound and power
# (README) were measured so, and all 16 would near triple its cost (a 32-image set's 100,000 keys).
VERDICT_PEAKS = 3
# Each image's test ranks a key against a fixed reference draw of random keys (its own seed, so no
# verdict key is ranked against itself by construction; a fixed function of the key either way).
REFERENCE_KEYS = 9_999
REFERENCE_SEED = NULL_SEED + 1
# Sums of the same terms in another order may differ in the last bits; a random key within this of the
# true key's statistic counts as reaching it (conservative), so the order never changes a p-value.
TIE_TOLERANCE = 1e-9
_BLOCK_ELEMENTS = 8_000_000  # readings x reference keys of a block of images, ~64 MB in float64


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
    z: float           # this image's term for it, in units of its spread over random keys
    p_value: float     # this image alone: (1 + #{random keys scoring >= it}) / (K + 1)


@dataclass
class VerdictResult:
    n: int
    p_value: float           # the Monte Carlo p: valid whatever the images, never below 1 / (K + 1)
    p_tail: float            # the normal tail model's estimate (not a bound; it can be too small)
    exceedances: int         # random keys whose statistic reached the true key's
    null_keys: int
    seed: int
    statistic: float         # the true key's statistic (sum of the images' terms / sqrt(n))
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


@functools.lru_cache(maxsize=4)
def _count_tables(size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tables by count, for ``size`` reference keys: the log tail of a key that ``count`` of them reach
    (itself not among them: 1 + count; one of them: count), and the normal score of a mid-p that
    ``count`` of them are at or below. Indexed, never written."""
    counts = torch.arange(size + 2, dtype=torch.float64)
    outside = ((counts + 1) / (size + 1)).log()
    own = (counts / (size + 1)).clamp_min(0.5 / (size + 1)).log()
    scores = -torch.special.ndtri((counts[:size + 1] + 0.5) / (size + 1))
    return outside, own, scores


def _log_tails(bests: list[torch.Tensor], reference: _Reference, groups: list[tuple[list[int], float]],
               own: bool = False) -> torch.Tensor:
    """Each group's best readings (N, M) -> (N, M) log of the joined tail (``key_rank``'s join): each
    group's tail among the reference keys (beyond the best of them, carried on by a normal fit of
    theirs, so stronger evidence always scores lower), divided by the group's share, the smallest kept.
    ``own``: the reference keys themselves (each already counted among them)."""
    size = reference.ranked[0].shape[-1]
    log_tail_of = _count_tables(size)[1 if own else 0]
    logs = []
    for best, (_, share), ranked, mean, sd in zip(bests, groups, reference.ranked, reference.mean, reference.sd,
                                                   strict=True):
        at_least = size - torch.searchsorted(ranked, best.contiguous(), side="left")  # reference keys scoring >= it
        log_tail = log_tail_of[at_least]
        beyond = at_least == 0
        if beyond.any():
            rows = beyond.nonzero()[:, 0]
            log_tail[beyond] += (torch.special.log_ndtr(-(best[beyond] - mean[rows, 0]) / sd[rows, 0])
                                 - torch.special.log_ndtr(-(ranked[rows, -1] - mean[rows, 0]) / sd[rows, 0])).clamp_max(0)
        logs.append(log_tail - math.log(share))
    return torch.stack(logs).amin(dim=0)


def _image_terms(readings: torch.Tensor, reference: _Reference, groups: list[tuple[list[int], float]]) -> torch.Tensor:
    """(N, V, M) agreements of M messages -> (N, M) each message's per-image term: its joined tail
    ranked among the reference keys' own (the scanner's p against them; beyond the best of them, scaled
    by how far beyond), as a normal score (mid-p, so a p of 1 stays finite)."""
    log_joined = _log_tails([group_best(readings, group) for group, _ in groups], reference, groups)
    size = reference.joined.shape[-1]
    below = torch.searchsorted(reference.joined, log_joined.contiguous(), side="right")  # reference keys <= it
    terms = _count_tables(size)[2][below]
    beyond = below == 0
    if beyond.any():
        rows = beyond.nonzero()[:, 0]
        log_mid = math.log(0.5 / (size + 1)) + (log_joined[beyond] - reference.joined[rows, 0]).clamp_max(0)
        terms[beyond] = -torch.special.ndtri(log_mid.clamp_min(-700).exp())
    return terms


@dataclass
class _Reference:
    """A block of images' fixed yardstick: each group's best reading for every reference key, sorted
    (N, R) per image, with their mean and spread (N, 1) for the tail beyond them, and the reference
    keys' own joined log tails, sorted (N, R)."""

    ranked: list[torch.Tensor]
    mean: list[torch.Tensor]
    sd: list[torch.Tensor]
    joined: torch.Tensor

    @classmethod
    def of(cls, evidence: torch.Tensor, table: MessageTable, groups: list[tuple[list[int], float]]) -> _Reference:
        readings = reading_scores(evidence, table)
        bests = [group_best(readings, group) for group, _ in groups]
        partial = cls([best.sort(dim=-1).values for best in bests], [best.mean(-1, keepdim=True) for best in bests],
                      [best.std(-1, keepdim=True).clamp_min(1e-12) for best in bests], torch.empty(0))
        partial.joined = _log_tails(bests, partial, groups, own=True).sort(dim=-1).values
        return partial


def image_terms(evidence: torch.Tensor, table: MessageTable, groups: list[tuple[list[int], float]]) -> torch.Tensor:
    """(N, V, E) evidence -> (N, M) each image's term for every message of ``table``, as ``set_verdict``
    computes it (for measurements that assemble many sets from one pool of images)."""
    reference = seeded_table(REFERENCE_KEYS, table.messages.shape[-1], REFERENCE_SEED)
    evidence = evidence.double()
    n_images, n_views, _ = evidence.shape
    check_groups(groups, n_views)
    out = torch.empty(n_images, len(table), dtype=torch.float64)
    block = _image_block(n_views)
    for first in range(0, n_images, block):
        part = evidence[first:first + block]
        yardstick = _Reference.of(part, reference, groups)
        for start, stop in chunks(len(part), n_views, len(table)):
            out[first:first + len(part), start:stop] = _image_terms(reading_scores(part, table.rows(start, stop)),
                                                                    yardstick, groups)
    return out


def check_groups(groups: list[tuple[list[int], float]], n_views: int) -> None:
    """Groups that name only readings the evidence has, none twice, with positive shares (else ValueError)."""
    named = [r for group, _ in groups for r in group]
    if not groups or any(share <= 0 or not group for group, share in groups):
        raise ValueError("the verdict needs at least one non-empty group of readings, each with a positive share")
    if len(set(named)) != len(named) or min(named) < 0 or max(named) >= n_views:
        raise ValueError(f"the reading groups do not fit evidence of {n_views} readings an image "
                         "(each reading at most once): were they made for another detector's views?")


def _image_block(n_views: int) -> int:
    return max(1, _BLOCK_ELEMENTS // (n_views * REFERENCE_KEYS))


def set_verdict(evidence: np.ndarray | torch.Tensor, true_message: torch.Tensor,
                groups: list[tuple[list[int], float]], alpha: float = DEFAULT_ALPHA,
                null_keys: int = DEFAULT_NULL_KEYS, seed: int = NULL_SEED,
                paths: list[Path] | None = None, cancel: CancelToken | None = None) -> VerdictResult:
    """(N, V, E) key-independent evidence of N images -> the verdict for the set (N = 1: one image's).

    ``groups``: the readings each image's test joins, ``key_rank.reading_groups`` of the detector that
    read them (required: a default of one group would silently test the shipped detector's readings
    otherwise than its scan does). ``cancel`` is checked between blocks (raises JobCancelled).
    """
    cancel = cancel or CancelToken()
    check_alpha(alpha, null_keys)
    evidence = torch.as_tensor(np.asarray(evidence)).double()
    if evidence.dim() != 3 or evidence.shape[0] == 0:
        raise ValueError("the verdict needs the evidence of at least one image, shaped (N, views, E)")
    n_images, n_views, _ = evidence.shape
    check_groups(groups, n_views)
    table = null_table(true_message, null_keys, seed)
    reference_table = seeded_table(REFERENCE_KEYS, true_message.shape[-1], REFERENCE_SEED)  # the same for every key
    true_readings = reading_scores(evidence, MessageTable.of(true_message.view(1, -1)))   # (N, V, 1)
    total = len(table) + 1
    statistics = torch.zeros(len(table), dtype=torch.float64)
    observed = 0.0
    z_true, image_exceed = torch.empty(n_images, dtype=torch.float64), torch.empty(n_images, dtype=torch.float64)
    block = _image_block(n_views)
    for first in range(0, n_images, block):   # a block of images against every key; the terms summed as they come
        cancel.raise_if_cancelled()
        part = evidence[first:first + block]
        reference = _Reference.of(part, reference_table, groups)
        true_terms = _image_terms(true_readings[first:first + block], reference, groups)[:, 0]
        sums, squares = true_terms.clone(), true_terms**2
        exceed = torch.zeros(len(part), dtype=torch.float64)
        for start, stop in chunks(len(part), n_views, len(table)):
            cancel.raise_if_cancelled()
            terms = _image_terms(reading_scores(part, table.rows(start, stop)), reference, groups)
            statistics[start:stop] += terms.sum(0)
            sums += terms.sum(-1)
            squares += (terms**2).sum(-1)
            exceed += (terms >= true_terms[:, None] - TIE_TOLERANCE).double().sum(-1)
        mean = sums / total
        sd = ((squares - total * mean**2).clamp_min(0) / (total - 1)).sqrt()
        z_true[first:first + len(part)] = torch.where(sd > 0, (true_terms - mean) / sd.clamp_min(1e-300), 0.0)
        image_exceed[first:first + len(part)] = exceed
        observed += float(true_terms.sum())
    null = (statistics / math.sqrt(n_images)).numpy()
    observed /= math.sqrt(n_images)
    exceed = int((null >= observed - TIE_TOLERANCE).sum())
    p_mc = (1 + exceed) / (null_keys + 1)
    effect_z, p_tail = normal_tail(null, observed)
    verdict = decide(p_mc, alpha)
    paths = paths or [Path(f"image {i + 1}") for i in range(n_images)]
    images = [ImageContribution(path, float(a), float(z), (1 + float(e)) / (null_keys + 1))
              for path, a, z, e in zip(paths, true_readings.amax(dim=1)[:, 0].tolist(), z_true.tolist(), image_exceed.tolist(), strict=True)]
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
        evidence = np.stack([item.evidence for item in found if item.evidence is not None])
        result = set_verdict(evidence, true_message, reading_groups(detector, evidence.shape[1]), alpha, null_keys,
                             seed, [item.path for item in found], cancel)
        result.errors = errors
    yield Progress(len(paths), len(paths), "verdict", result)
