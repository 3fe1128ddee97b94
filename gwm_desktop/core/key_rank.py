"""The scanner's per-image test: does this image agree with the profile's key more than with random keys?

Under the null hypothesis (the image does not carry this profile's watermark: a clean image, another
key's watermark, any kind of art) the profile's message is exchangeable with random balanced messages,
because the shipped detector never learned any particular key. The image's statistic computed with
every message, ranked, gives p = #{messages, the profile's included, at least as extreme} / (K + 1),
and flagging p <= fpr flags at most that share of such images, averaged over keys, whatever the images
look like: no calibration bank that paintings or flat art could sit outside of. (A Phase 2 detector
was fine-tuned on one key's watermark; its evidence depends on the key, and it keeps the bank's threshold.)

The statistic joins two groups of readings by their ranks: the readings of the watermark where it was
put (the as-is and the 0.8 view, unmoved), and the searched ones (shifts, zooms, turns). The maximum
over all of them would hold the unmoved readings to the searched ones' higher null; ranked separately,
each is held to its own, and the smaller of the two weighted tails counts (``UNMOVED_SHARE``).
"""

from __future__ import annotations

import functools
import math

import torch

from gwm_desktop.core.models import READINGS, WatermarkDetector
from gwm_desktop.core.random_keys import NULL_SEED, MessageTable, null_messages, reading_scores

# The unmoved readings' share of the test's false-positive budget; chosen on the calibration split's
# own keys (docs/history.md, "The per-image key-rank test").
UNMOVED_SHARE = 0.7
FEWEST_NULL_KEYS = 999


def null_keys_for(fpr: float) -> int:
    """Random keys a scan at ``fpr`` ranks against: enough that p <= fpr allows at least 9 of them above."""
    return max(FEWEST_NULL_KEYS, math.ceil(10 / fpr) - 1)


def one_group(view_count: int) -> list[tuple[list[int], float]]:
    """Every reading ranked together, with the whole budget: the groups of a detector that reads one kind."""
    return [(list(range(view_count)), 1.0)]


def reading_groups(detector: WatermarkDetector, view_count: int) -> list[tuple[list[int], float]]:
    """The readings ranked together, each group with its share of the budget: an isotropic matched
    filter's unmoved readings of the as-is and the 0.8 view, then the rest; else one group of all."""
    if not (detector.isotropic and detector.matched_filter) or view_count <= READINGS + 1:
        return one_group(view_count)
    unmoved = [0, READINGS]
    return [(unmoved, UNMOVED_SHARE), ([r for r in range(view_count) if r not in unmoved], 1 - UNMOVED_SHARE)]


def tail_shares(scores: torch.Tensor) -> torch.Tensor:
    """(..., M) -> (..., M): for each message, the share of the M messages scoring at least as high
    (itself included; ties count against it)."""
    ascending = scores.sort(dim=-1).values
    below = torch.searchsorted(ascending.contiguous(), scores.contiguous(), side="left")
    return (scores.shape[-1] - below).to(scores.dtype) / scores.shape[-1]


def group_best(readings: torch.Tensor, group: list[int]) -> torch.Tensor:
    """(N, V, M) -> (N, M): the best of a group's readings, read through slices of its consecutive runs
    (indexing by the list would copy nearly all of a large (N, V, M) block first)."""
    runs, start = [], 0
    for i in range(1, len(group) + 1):
        if i == len(group) or group[i] != group[i - 1] + 1:
            runs.append(readings[:, group[start]:group[i - 1] + 1].amax(dim=1))
            start = i
    return functools.reduce(torch.maximum, runs)


def joined_tails(readings: torch.Tensor, groups: list[tuple[list[int], float]]) -> torch.Tensor:
    """(N, V, M) per-reading agreements -> (N, M): the smallest of each group's best-reading tail share
    divided by its budget share (smaller: more extreme). The same function of every message."""
    return torch.stack([tail_shares(group_best(readings, group)) / share for group, share in groups]).amin(dim=0)


class KeyRankTest:
    """One profile's test on one detector's evidence: the messages and groups prepared once."""

    def __init__(self, detector: WatermarkDetector, message: torch.Tensor, null_keys: int,
                 seed: int = NULL_SEED, groups: list[tuple[list[int], float]] | None = None) -> None:
        """``groups``: other groupings of the readings than ``reading_groups`` (to measure them)."""
        nulls = null_messages(message, null_keys, seed)
        self.detector = detector
        self.null_keys = null_keys
        self.groups = groups
        self.table = MessageTable.of(torch.cat([message.view(1, -1).to(nulls), nulls]))

    def p_values(self, evidence: torch.Tensor) -> torch.Tensor:
        """(N, V, E) key-independent evidence -> (N,) each image's p-value, in steps of 1 / (K + 1)."""
        readings = reading_scores(evidence.cpu(), self.table, torch.float32)  # ties count against the key
        tails = joined_tails(readings, self.groups or reading_groups(self.detector, evidence.shape[1]))
        return (tails <= tails[:, :1]).sum(dim=-1).double() / tails.shape[-1]
