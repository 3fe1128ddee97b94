"""Many model-level verdicts over sets drawn from one pool of images, each image scored only once.

``core.verdict.set_verdict`` scores a set's images against K + 1 messages; a measurement of the
false-alarm rate runs thousands of overlapping sets. Here every image's term (``image_terms``: its
key-rank test against the fixed reference keys, a fixed function of the message) is computed once
for the K random messages and for each set's tested message, and the set statistic is assembled
from those terms by one matrix product per block of sets: the app's statistic exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from gwm_desktop.core.random_keys import MessageTable
from gwm_desktop.core.verdict import TIE_TOLERANCE, image_terms


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (n up to ~10^5)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    p = min(max(p, 1e-300), 1 - 1e-16)
    i = np.arange(k + 1)
    log_terms = (math.lgamma(n + 1) - np.vectorize(math.lgamma)(i + 1) - np.vectorize(math.lgamma)(n - i + 1)
                 + i * math.log(p) + (n - i) * math.log1p(-p))
    top = log_terms.max()
    return float(min(1.0, math.exp(top) * np.exp(log_terms - top).sum()))


def _solve_decreasing(f: Callable[[float], float], target: float) -> float:
    """p in (0, 1) with f(p) = target for f decreasing in p (bisection to 1e-12)."""
    low, high = 0.0, 1.0
    for _ in range(60):
        mid = (low + high) / 2
        if f(mid) > target:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def clopper_pearson(hits: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) binomial interval for hits / trials."""
    tail = (1 - confidence) / 2
    low = 0.0 if hits == 0 else _solve_decreasing(lambda p: _binomial_cdf(hits - 1, trials, p), 1 - tail)
    high = 1.0 if hits == trials else _solve_decreasing(lambda p: _binomial_cdf(hits, trials, p), tail)
    return low, high


def random_sets(rng: np.random.Generator, pool: int, size: int, count: int) -> np.ndarray:
    """(count, size) image indices: ``count`` random sets of ``size`` distinct images from ``pool``."""
    return np.stack([rng.choice(pool, size, replace=False) for _ in range(count)])


@dataclass
class SetScores:
    null: np.ndarray    # (N, K) each image's term (``core.verdict.image_terms``) for each random message
    tested: np.ndarray  # (N, T) ... for each message a set may be tested against

    @classmethod
    def build(cls, evidence: torch.Tensor, null: MessageTable, tested: MessageTable,
              groups: list[tuple[list[int], float]]) -> SetScores:
        return cls(image_terms(evidence, null, groups).numpy(), image_terms(evidence, tested, groups).numpy())

    def p_values(self, sets: np.ndarray, tested_index: np.ndarray, block: int = 250
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(M, n) image indices, (M,) tested-message index -> Monte Carlo p, normal-tail p, exceedances (M,)."""
        n_keys = self.null.shape[1]
        p_mc, p_tail, exceed = (np.empty(len(sets)) for _ in range(3))
        for start in range(0, len(sets), block):
            chunk, which = sets[start:start + block], tested_index[start:start + block]
            scale = 1 / math.sqrt(chunk.shape[1])
            dense = np.zeros((len(chunk), self.null.shape[0]))
            np.add.at(dense, (np.arange(len(chunk))[:, None], chunk), 1.0)
            statistics = (dense @ self.null) * scale                        # (m, K)
            observed = self.tested[chunk, which[:, None]].sum(1) * scale
            count = (statistics >= observed[:, None] - TIE_TOLERANCE).sum(1)
            centre, spread = statistics.mean(1), statistics.std(1, ddof=1)
            z = (observed - centre) / np.where(spread > 0, spread, np.inf)
            p_mc[start:start + len(chunk)] = (1 + count) / (n_keys + 1)
            p_tail[start:start + len(chunk)] = 0.5 * np.vectorize(math.erfc)(z / math.sqrt(2))
            exceed[start:start + len(chunk)] = count
        return p_mc, p_tail, exceed
