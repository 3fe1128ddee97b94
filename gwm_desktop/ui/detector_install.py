"""Install a new detector for a profile only when its evaluation beats the current one, with rollback.

Layout inside the profile folder: ``detector/`` is the one in use (a model folder with a manifest);
``detector.previous/`` is the one it replaced. Swaps go through a temporary folder and renames, so a
crash never leaves the profile without a complete detector.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

CURRENT, PREVIOUS = "detector", "detector.previous"


@dataclass
class Evaluation:
    """One number that decides; higher is better (e.g. balanced accuracy on held-out images)."""

    metric: str
    value: float
    details: str = ""


@dataclass
class InstallDecision:
    installed: bool
    reason: str


def install_if_better(profile_folder: Path, candidate: Path, candidate_eval: Evaluation | None,
                      current_eval: Evaluation | None) -> InstallDecision:
    if candidate_eval is None:
        return InstallDecision(False, "the new detector could not be evaluated; the current one stays")
    if current_eval is not None and candidate_eval.value <= current_eval.value:
        return InstallDecision(False, f"kept the current detector: {candidate_eval.metric} "
                                      f"{candidate_eval.value:.3f} is not better than {current_eval.value:.3f}")
    profile_folder = Path(profile_folder)
    staging = Path(tempfile.mkdtemp(prefix=".detector.", dir=profile_folder))
    try:
        shutil.copytree(candidate, staging / "model")
        current, previous = profile_folder / CURRENT, profile_folder / PREVIOUS
        if current.exists():
            if previous.exists():
                shutil.rmtree(previous)
            current.rename(previous)
        (staging / "model").rename(current)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    before = f" (was {current_eval.value:.3f})" if current_eval else ""
    return InstallDecision(True, f"installed: {candidate_eval.metric} {candidate_eval.value:.3f}{before}")


def can_roll_back(profile_folder: Path) -> bool:
    return (Path(profile_folder) / PREVIOUS / "manifest.json").exists()


def roll_back(profile_folder: Path) -> None:
    """Swap ``detector.previous`` back in (the rolled-back one becomes the new 'previous')."""
    profile_folder = Path(profile_folder)
    current, previous = profile_folder / CURRENT, profile_folder / PREVIOUS
    if not can_roll_back(profile_folder):
        raise FileNotFoundError("there is no previous detector to restore")
    swap = profile_folder / ".detector.swap"
    if swap.exists():
        shutil.rmtree(swap)
    if current.exists():
        current.rename(swap)
    previous.rename(current)
    if swap.exists():
        swap.rename(previous)


def score_bundle(bundle, profile, marked: list[Path], clean: list[Path], device, fpr: float = 0.01,  # noqa: ANN001
                 cancel=None) -> Evaluation | None:  # noqa: ANN001
    """Balanced accuracy of ``bundle``'s detector at the scanner's threshold (from its calibration bank at
    ``fpr``) on ``marked`` (should be found) and ``clean`` images; None without a calibration bank."""
    from gwm_desktop.core.detect import CalibrationMissing, Scanner
    from gwm_desktop.core.keys import message_from_key

    try:
        scanner = Scanner(bundle.detector, message_from_key(profile.key, bundle.n_bits), bundle.calibration,
                          device, fpr)
    except CalibrationMissing:
        return None
    found = [p.payload.flagged for p in scanner.scan_paths(marked, cancel=cancel)]
    false = [p.payload.flagged for p in scanner.scan_paths(clean, cancel=cancel)]
    tpr = sum(found) / max(len(found), 1)
    tnr = 1 - sum(false) / max(len(false), 1)
    return Evaluation("balanced accuracy", (tpr + tnr) / 2, f"TPR {tpr:.2f}, FPR {1 - tnr:.2f}")


def evaluate_detectors(engine, profile, candidate: Path, images: list[Path], fpr: float = 0.01,  # noqa: ANN001
                       cancel=None):  # noqa: ANN001, ANN201
    """Job: watermark ``images`` with the shipped generator, then score marked and clean copies with the
    profile's current detector and with ``candidate``. Returns (current Evaluation | None, candidate
    Evaluation | None); None when a model has no calibration bank to set its threshold."""
    from gwm_desktop.core.jobs import Progress
    from gwm_desktop.core.weights import load_model

    with tempfile.TemporaryDirectory(prefix="gwm-eval-") as tmp:
        marked = []
        for progress in engine.protect_files(images, Path(tmp), profile, 0.05, None, cancel, record=False):
            if progress.payload.ok:
                marked.append(progress.payload.output)
            yield Progress(progress.done, len(images) * 2, f"watermarking {progress.message}", {})
        if not marked:
            return None, None
        current = score_bundle(engine.bundle_for(profile), profile, marked, images, engine.device, fpr, cancel)
        yield Progress(len(images) * 2 - 1, len(images) * 2, "scoring the new detector", {})
        new = score_bundle(load_model(candidate, engine.device), profile, marked, images, engine.device, fpr, cancel)
        return current, new


def evaluate_on_images(engine, profile, candidate: Path, clean: list[Path], marked: list[Path],  # noqa: ANN001
                       fpr: float = 0.01, cancel=None):  # noqa: ANN001, ANN201
    """Job: like ``evaluate_detectors`` on given clean and watermarked images (Phase 2: the held-out
    images its personalized models made), so the detector is judged on what it was trained for."""
    from gwm_desktop.core.jobs import Progress
    from gwm_desktop.core.weights import load_model

    yield Progress(0, 2, f"scoring the current detector on {len(marked)} + {len(clean)} held-out images", {})
    current = score_bundle(engine.bundle_for(profile), profile, marked, clean, engine.device, fpr, cancel)
    yield Progress(1, 2, "scoring the new detector", {})
    new = score_bundle(load_model(candidate, engine.device), profile, marked, clean, engine.device, fpr, cancel)
    return current, new
