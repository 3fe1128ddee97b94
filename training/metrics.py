"""Detection and image-quality metrics of SPEC section 3 (AUC, TPR at a fixed FPR, SSIM)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gwm_desktop.core.detect import threshold_for_fpr


def auc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve = P(positive > negative) + 0.5 P(tie) (Mann-Whitney)."""
    negatives, positives = np.asarray(negatives, float), np.asarray(positives, float)
    if len(negatives) == 0 or len(positives) == 0:
        return float("nan")
    scores = np.concatenate([negatives, positives])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks for ties
    start = 0
    while start < len(scores):
        end = start
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2 + 1
        start = end + 1
    positive_ranks = ranks[len(negatives):].sum()
    n_pos, n_neg = len(positives), len(negatives)
    return float((positive_ranks - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def tpr_at_fpr(negatives: np.ndarray, positives: np.ndarray, fpr: float) -> float:
    """Share of positives flagged at the scanner's threshold for ``fpr`` on these negatives."""
    threshold = threshold_for_fpr(np.asarray(negatives, float), fpr)
    return float((np.asarray(positives) > threshold).mean())


def best_accuracy(negatives: np.ndarray, positives: np.ndarray) -> float:
    scores = np.concatenate([negatives, positives])
    labels = np.concatenate([np.zeros(len(negatives)), np.ones(len(positives))])
    best = 0.0
    for t in np.unique(scores):
        best = max(best, float(((scores > t) == labels).mean()), float(((scores >= t) == labels).mean()))
    return best


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM (Wang et al. 2004, Gaussian 11x11, sigma 1.5) on 8-bit RGB, averaged over channels."""
    x = torch.from_numpy(np.ascontiguousarray(a)).float().permute(2, 0, 1).unsqueeze(1) / 255.0
    y = torch.from_numpy(np.ascontiguousarray(b)).float().permute(2, 0, 1).unsqueeze(1) / 255.0
    window = _gaussian_window()
    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = F.conv2d(x, window), F.conv2d(y, window)
    sxx = F.conv2d(x * x, window) - mu_x**2
    syy = F.conv2d(y * y, window) - mu_y**2
    sxy = F.conv2d(x * y, window) - mu_x * mu_y
    value = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return float(value.mean())
