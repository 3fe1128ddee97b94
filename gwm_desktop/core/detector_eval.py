"""Judge two detectors on the same images, so a new one is installed only when it does better.

The score is balanced accuracy at the scanner's own decision at ``fpr`` (the key-rank test for a
key-independent detector, the calibration bank's threshold for a Phase 2 one): the figure a user of
``gwm scan`` sees, not a training loss. Used by the Advanced tab and by
``gwm train phase2 --install``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from gwm_desktop.core.detect import DEFAULT_FPR, CalibrationMissing, Scanner
from gwm_desktop.core.jobs import CancelToken, Progress
from gwm_desktop.core.keys import message_from_key
from gwm_desktop.core.profiles import Evaluation, InstallDecision, Profile
from gwm_desktop.core.weights import ModelBundle


def score_bundle(bundle: ModelBundle, key: bytes, marked: list[Path], clean: list[Path], device: torch.device,
                 fpr: float = DEFAULT_FPR, cancel: CancelToken | None = None) -> Evaluation | None:
    """Balanced accuracy of ``bundle``'s detector on ``marked`` (should be found) and ``clean`` images;
    None when the model has no calibration bank to set its threshold."""
    try:
        scanner = Scanner(bundle.detector, message_from_key(key, bundle.n_bits), bundle.calibration, device, fpr,
                          key_independent=bundle.key_independent)
    except CalibrationMissing:
        return None
    found = [p.payload.flagged for p in scanner.scan_paths(marked, cancel=cancel)]
    false = [p.payload.flagged for p in scanner.scan_paths(clean, cancel=cancel)]
    tpr = sum(found) / max(len(found), 1)
    tnr = 1 - sum(false) / max(len(false), 1)
    return Evaluation("balanced accuracy", (tpr + tnr) / 2, f"TPR {tpr:.2f}, FPR {1 - tnr:.2f}")


def compare_on_images(current: ModelBundle, candidate: ModelBundle, key: bytes, clean: list[Path],
                      marked: list[Path], device: torch.device, fpr: float = DEFAULT_FPR,
                      cancel: CancelToken | None = None
                      ) -> Iterator[Progress]:
    """Job: score the current and the candidate detector on the same clean and watermarked images.
    Returns (current Evaluation | None, candidate Evaluation | None)."""
    yield Progress(0, 2, f"scoring the current detector on {len(marked)} + {len(clean)} held-out images", {})
    before = score_bundle(current, key, marked, clean, device, fpr, cancel)
    yield Progress(1, 2, "scoring the new detector", {})
    after = score_bundle(candidate, key, marked, clean, device, fpr, cancel)
    return before, after


def explain(current: Evaluation | None, new: Evaluation | None, decision: InstallDecision) -> list[str]:
    """The lines that tell the user how both detectors scored and what was decided."""
    lines = [f"  {name}: " + (f"{ev.metric} {ev.value:.3f} ({ev.details})" if ev
                              else "no calibration bank, cannot be evaluated")
             for name, ev in (("current", current), ("new", new))]
    lines.append(("Installed. " if decision.installed else "Not installed: ") + decision.reason)
    return lines


def install_if_better(profile: Profile, candidate: Path, current_bundle: ModelBundle, device: torch.device,
                      clean: list[Path], marked: list[Path]) -> tuple[InstallDecision, list[str]]:
    """Score ``current_bundle`` and the model folder ``candidate`` on the same images, then let the profile
    install the candidate only if it did better. Returns the decision and the lines that explain it."""
    from gwm_desktop.core.weights import load_model

    job = compare_on_images(current_bundle, load_model(candidate, device), profile.key, clean, marked, device)
    while True:
        try:
            next(job)
        except StopIteration as finished:
            current, new = finished.value
            break
    decision = profile.install_detector_if_better(candidate, new, current)
    return decision, explain(current, new, decision)
