"""``gwm eval``'s report: detection figures per level and condition, from the detector's evidence.

Per condition: AUC, TPR at 1% and 0.1% FPR (thresholds from the clean images' scores under that
condition), and what the scanner decides at its own 1% rule: the key-rank test for a key-independent
detector (``core.key_rank``), the calibration bank's threshold otherwise. The scanner's figures are
given for five keys (SPEC section 3: the worst key beside the mean): the evaluation key on every
image, and each other key on the images whose other-key copies carry it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gwm_desktop.core.detect import profile_threshold, threshold_for_fpr
from gwm_desktop.core.key_rank import KeyRankTest, null_keys_for
from gwm_desktop.core.keys import message_from_key
from gwm_desktop.core.models import WatermarkDetector
from gwm_desktop.core.weights import ModelBundle, read_manifest
from training.metrics import auc, best_accuracy, tpr_at_fpr

SCANNER_FPR = 0.01
MIN_KEY_IMAGES = 10  # an other key enters the per-key figures when at least this many images carry it


def agreements(bits: torch.Tensor, message: torch.Tensor) -> np.ndarray:
    """(N, C, V, E) evidence -> (C, N) agreements (best view)."""
    return WatermarkDetector.best_agreement(bits, message.view(1, 1, -1)).T.numpy()


class Decisions:
    """The scanner's 1% decision for one key on (N, C, V, E) evidence: (C, N) booleans."""

    def __init__(self, bundle: ModelBundle, key: bytes) -> None:
        self.message = message_from_key(key, bundle.n_bits)
        self.rank = KeyRankTest(bundle.detector, self.message, null_keys_for(SCANNER_FPR)) \
            if bundle.key_independent else None
        self.threshold = None if self.rank is not None or not bundle.calibration \
            else profile_threshold(bundle.calibration, self.message, SCANNER_FPR)

    @property
    def available(self) -> bool:
        return self.rank is not None or self.threshold is not None

    def __call__(self, bits: torch.Tensor) -> np.ndarray:
        n, c = bits.shape[:2]
        if self.rank is None:
            return agreements(bits, self.message) > self.threshold
        flat = bits.reshape(n * c, *bits.shape[2:])
        p = torch.cat([self.rank.p_values(chunk) for chunk in flat.split(1024)])
        return (p <= SCANNER_FPR).view(n, c).T.numpy()


def per_key_figures(deciders: dict[int, Decisions], clean_flags: dict[int, np.ndarray], marked: torch.Tensor,
                    other: torch.Tensor, other_index: np.ndarray, own: tuple[np.ndarray, np.ndarray]
                    ) -> dict[str, np.ndarray]:
    """(keys, C) found, clean-flag and cross-key-flag shares: key 0 (the evaluation key; ``own``: its
    flags on ``marked`` and ``other``, already decided); key j >= 1 on its own ``other`` copies
    (``other_index == j - 1``) as positives and on ``marked`` plus the other keys' copies as cross-key
    images. ``deciders`` and ``clean_flags``: for each key entering the figures (``key_deciders``)."""
    found, false_cross = [], []
    for j, decide in deciders.items():
        if j == 0:
            found_flags, cross_flags = own
        else:
            found_flags = decide(other[torch.from_numpy(other_index == j - 1)])
            cross_flags = decide(torch.cat([marked, other[torch.from_numpy(other_index != j - 1)]]))
        found.append(found_flags.mean(1))
        false_cross.append(cross_flags.mean(1))
    return {"found": np.stack(found), "clean": np.stack([flags.mean(1) for flags in clean_flags.values()]),
            "cross": np.stack(false_cross)}


def key_deciders(bundle: ModelBundle, keys: list[bytes], other_index: np.ndarray) -> dict[int, Decisions]:
    """The evaluation key (0), and each other key that ``MIN_KEY_IMAGES`` images carry."""
    return {j: Decisions(bundle, key) for j, key in enumerate(keys)
            if j == 0 or int((other_index == j - 1).sum()) >= MIN_KEY_IMAGES}


def build_report(config: Any, bundle: ModelBundle, keys: list[bytes], clean_bits: list[torch.Tensor],
                 marked_bits: dict[float, list[torch.Tensor]], other_bits: dict[float, list[torch.Tensor]],
                 other_index: list[int], quality: dict[float, dict[str, list[float]]], failures: list[str],
                 seconds: float, n_paths: int, grey_flags: list[bool]) -> dict[str, Any]:
    """``keys``: the evaluation key, then the other keys (``other_index`` says which each image's copies carry)."""
    if not clean_bits:
        raise ValueError("no image could be evaluated")
    grey = np.asarray(grey_flags, dtype=bool)
    message = message_from_key(keys[0], bundle.n_bits)
    clean_t = torch.stack(clean_bits)
    clean = agreements(clean_t, message)
    index = np.asarray(other_index)
    deciders = key_deciders(bundle, keys, index)
    decide = deciders[0]
    bank_threshold = profile_threshold(bundle.calibration, message, SCANNER_FPR) if bundle.calibration else None
    clean_flags = {j: d(clean_t) for j, d in deciders.items()} if decide.available else {}  # the same at every level
    flags_clean = clean_flags.get(0)
    levels: dict[str, Any] = {}
    for p in config.levels:
        marked_t, other_t = torch.stack(marked_bits[p]), torch.stack(other_bits[p])
        marked, other = agreements(marked_t, message), agreements(other_t, message)
        flags_marked = decide(marked_t) if decide.available else None
        flags_other = decide(other_t) if decide.available else None
        per_key = per_key_figures(deciders, clean_flags, marked_t, other_t, index, (flags_marked, flags_other)) \
            if decide.available else None
        per_condition = {}
        for c, name in enumerate(config.conditions):
            t1 = threshold_for_fpr(clean[c], 0.01)
            entry: dict[str, Any] = {
                "auc": auc(clean[c], marked[c]), "tpr_at_1pct_fpr": tpr_at_fpr(clean[c], marked[c], 0.01),
                "tpr_at_0.1pct_fpr": tpr_at_fpr(clean[c], marked[c], 0.001),
                "accuracy": best_accuracy(clean[c], marked[c]), "cross_key_fpr_at_1pct": float((other[c] > t1).mean())}
            if flags_marked is not None and per_key is not None:
                found = flags_marked[c]
                entry["scanner"] = {
                    "tpr": float(found.mean()), "fpr_clean": float(flags_clean[c].mean()),
                    "fpr_cross_key": float(flags_other[c].mean()),
                    "tpr_colour_images": float(found[~grey].mean()) if (~grey).any() else None,
                    "tpr_greyscale_images": float(found[grey].mean()) if grey.any() else None,
                    "tpr_mean_key": float(per_key["found"][:, c].mean()),
                    "tpr_worst_key": float(per_key["found"][:, c].min()),
                    "fpr_clean_worst_key": float(per_key["clean"][:, c].max()),
                    "fpr_cross_key_worst_key": float(per_key["cross"][:, c].max())}
            if bank_threshold is not None and decide.rank is not None:
                entry["bank_threshold"] = {"tpr": float((marked[c] > bank_threshold).mean()),
                                           "fpr_clean": float((clean[c] > bank_threshold).mean()),
                                           "fpr_cross_key": float((other[c] > bank_threshold).mean())}
            per_condition[name] = _rounded(entry)
        lp = np.asarray(quality[p]["lpips"])
        levels[f"{p:g}"] = {
            "invisibility": {"lpips_max": round(float(lp.max()), 4), "lpips_mean": round(float(lp.mean()), 4),
                             "share_within_p": round(float((lp <= p).mean()), 4),
                             "psnr_mean_db": round(float(np.mean(quality[p]["psnr"])), 2),
                             "ssim_mean": round(float(np.mean(quality[p]["ssim"])), 4)},
            "detection": per_condition,
        }
    rule = (f"key rank test, {null_keys_for(SCANNER_FPR)} random keys" if decide.rank is not None
            else "calibration bank threshold" if decide.available else None)
    return {"model": str(config.model), "data": config.data, "split": config.split, "images": len(clean_bits),
            "greyscale_images": int(grey.sum()),
            "images_listed": n_paths, "failures": failures, "other_keys": config.other_keys,
            "scanner_rule": rule, "scanner_keys": len(deciders),
            "bank_threshold_at_1pct": bank_threshold,
            "seconds": round(seconds, 1), "levels": levels}


def _rounded(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: _rounded(v) if isinstance(v, dict) else round(v, 4) if isinstance(v, float) else v
            for k, v in entry.items()}


def record_metrics(folder: Path, name: str, report: dict[str, Any]) -> None:
    """Store an evaluation report in the model's manifest (the manifest is not part of the hashes)."""
    from gwm_desktop.core.weights import write_manifest

    manifest = read_manifest(folder)
    report = dict(report, command="gwm eval " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["eval"] else sys.argv[1:]))
    manifest.setdefault("metrics", {})[name] = report
    write_manifest(folder, manifest)


def format_report(report: dict[str, Any]) -> str:
    lines = [f"{report['images']} images ({report.get('greyscale_images', 0)} greyscale; {report['split']} split "
             f"of {', '.join(report['data'])}), {report['seconds']} s; scanner: {report.get('scanner_rule')}"]
    for p, level in report["levels"].items():
        inv = level["invisibility"]
        lines.append(f"\np = {p}: LPIPS max {inv['lpips_max']} mean {inv['lpips_mean']} "
                     f"(within p: {inv['share_within_p']:.1%}), PSNR {inv['psnr_mean_db']} dB, SSIM {inv['ssim_mean']}")
        lines.append(f"  {'condition':24} {'AUC':>7} {'TPR@1%':>8} {'TPR@0.1%':>9} {'acc':>6} {'xkeyFPR':>8}"
                     "  scanner: TPR / FPR / xkey (colour / grey) | "
                     f"{report.get('scanner_keys', 1)} keys: TPR mean / worst, FPR worst / xkey worst")
        for name, d in level["detection"].items():
            line = (f"  {name:24} {d['auc']:7.4f} {d['tpr_at_1pct_fpr']:8.1%} {d['tpr_at_0.1pct_fpr']:9.1%} "
                    f"{d['accuracy']:6.1%} {d['cross_key_fpr_at_1pct']:8.1%}")
            if "scanner" in d:
                s = d["scanner"]
                line += (f"  {s['tpr']:6.1%} / {s['fpr_clean']:5.1%} / {s['fpr_cross_key']:5.1%} ("
                         + " / ".join("-" if v is None else f"{v:.1%}"
                                      for v in (s["tpr_colour_images"], s["tpr_greyscale_images"]))
                         + f") | {s['tpr_mean_key']:6.1%} / {s['tpr_worst_key']:6.1%}, "
                           f"{s['fpr_clean_worst_key']:5.1%} / {s['fpr_cross_key_worst_key']:5.1%}")
            lines.append(line)
    if report["failures"]:
        lines.append(f"\n{len(report['failures'])} images failed: " + "; ".join(report["failures"][:5]))
    return "\n".join(lines)
