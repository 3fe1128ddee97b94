"""Many model-level verdicts over sets drawn from one pool of images, each image scored only once.

``core.verdict.set_verdict`` scores a set's images against K + 1 messages; a measurement of the
false-alarm rate runs thousands of overlapping sets. Here every image is scored once against the K
random messages and against each set's tested message, and the set statistic is assembled from
those scores by one matrix product per block of sets, with exactly the same moments (over all K + 1
messages, the tested one included) as the app.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from gwm_desktop.core.random_keys import MessageTable, message_scores_in_chunks


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
    null: np.ndarray    # (N, K) each image's best-view agreement with each random message
    tested: np.ndarray  # (N, T) ... with each message a set may be tested against

    @classmethod
    def build(cls, evidence: torch.Tensor, null: MessageTable, tested: MessageTable) -> SetScores:
        return cls(message_scores_in_chunks(evidence, null).numpy(), message_scores_in_chunks(evidence, tested).numpy())

    def p_values(self, sets: np.ndarray, tested_index: np.ndarray, block: int = 250
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(M, n) image indices, (M,) tested-message index -> Monte Carlo p, normal-tail p, exceedances (M,)."""
        n_keys = self.null.shape[1]
        total = n_keys + 1
        sums, squares = self.null.sum(1), (self.null**2).sum(1)
        p_mc, p_tail, exceed = (np.empty(len(sets)) for _ in range(3))
        for start in range(0, len(sets), block):
            chunk, which = sets[start:start + block], tested_index[start:start + block]
            true = self.tested[chunk, which[:, None]]                      # (m, n)
            mean = (sums[chunk] + true) / total
            var = np.clip((squares[chunk] + true**2 - total * mean**2) / (total - 1), 0, None)
            sd = np.sqrt(var)
            weight = np.where(sd > 0, 1 / np.where(sd > 0, sd, 1), 0) / math.sqrt(chunk.shape[1])
            dense = np.zeros((len(chunk), self.null.shape[0]))
            np.add.at(dense, (np.arange(len(chunk))[:, None], chunk), weight)
            offset = (weight * mean).sum(1)
            statistics = dense @ self.null - offset[:, None]                # (m, K)
            observed = (weight * (true - mean)).sum(1)
            count = (statistics >= observed[:, None]).sum(1)
            centre, spread = statistics.mean(1), statistics.std(1, ddof=1)
            z = (observed - centre) / np.where(spread > 0, spread, np.inf)
            p_mc[start:start + len(chunk)] = (1 + count) / total
            p_tail[start:start + len(chunk)] = 0.5 * np.vectorize(math.erfc)(z / math.sqrt(2))
            exceed[start:start + len(chunk)] = count
        return p_mc, p_tail, exceed
