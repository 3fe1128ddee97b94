"""Evaluate a newly trained detector against a profile's current one, then install it only if better.

The two detectors are judged on the same images with ``core.detector_eval`` (balanced accuracy at the
scanner's threshold at its default FPR); installing and rolling back are ``Profile`` methods. The Advanced tab runs
``evaluation_job`` in a worker and hands its result to ``install_if_better``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from gwm_desktop.core.jobs import CancelToken, Progress
from gwm_desktop.core.profiles import Evaluation, InstallDecision, Profile
from gwm_desktop.jobs.spec import JobOutcome

if TYPE_CHECKING:  # the engine loads torch; the tab imports this module before the model is loaded
    from gwm_desktop.core.engine import Engine

Result = tuple[Evaluation | None, Evaluation | None]


def evaluate_detectors(engine: Engine, profile: Profile, candidate: Path, images: list[Path],
                       cancel: CancelToken | None = None) -> Iterator[Progress]:
    """Job: watermark ``images`` with the engine's generator, then score marked and clean copies with the
    profile's current detector and with ``candidate``. Returns (current, candidate) ``Evaluation``s."""
    from gwm_desktop.core.detector_eval import score_bundle
    from gwm_desktop.core.weights import load_model

    with tempfile.TemporaryDirectory(prefix="gwm-eval-") as tmp:
        marked = []
        for progress in engine.protect_files(images, Path(tmp), profile, 0.05, None, cancel, record=False):
            if progress.payload.ok:
                marked.append(progress.payload.output)
            yield Progress(progress.done, len(images) * 2, f"watermarking {progress.message}", {})
        if not marked:
            return None, None
        key, device = profile.key, engine.device
        current = score_bundle(engine.bundle_for(profile), key, marked, images, device, cancel=cancel)
        yield Progress(len(images) * 2 - 1, len(images) * 2, "scoring the new detector", {})
        new = score_bundle(load_model(candidate, device), key, marked, images, device, cancel=cancel)
        return current, new


def evaluate_on_images(engine: Engine, profile: Profile, candidate: Path, clean: list[Path], marked: list[Path],
                       cancel: CancelToken | None = None) -> Iterator[Progress]:
    """Job: like ``evaluate_detectors`` on given clean and watermarked images (Phase 2: the held-out
    images its personalized models made), so the detector is judged on what it was trained for."""
    from gwm_desktop.core.detector_eval import compare_on_images
    from gwm_desktop.core.weights import load_model

    return (yield from compare_on_images(engine.bundle_for(profile), load_model(candidate, engine.device),
                                         profile.key, clean, marked, engine.device, cancel=cancel))


def evaluation_job(engine: Engine, profile: Profile, outcome: JobOutcome, fallback_images: list[Path]
                   ) -> tuple[str, Callable[[CancelToken], Iterator[Progress]]]:
    """(what to tell the user, the job) that judges ``outcome``'s detector: on its held-out images when it
    has them (Phase 2), else on ``fallback_images`` watermarked here."""
    candidate = outcome.model_dir
    if candidate is None:
        raise ValueError("the job produced no model to evaluate")
    if outcome.heldout is not None:
        clean, marked = outcome.heldout
        return (f"Evaluating the new detector against the current one on {len(marked)} watermarked and "
                f"{len(clean)} clean held-out images…",
                lambda cancel: evaluate_on_images(engine, profile, candidate, clean, marked, cancel=cancel))
    return (f"Evaluating the new detector against the current one on {len(fallback_images)} images…",
            lambda cancel: evaluate_detectors(engine, profile, candidate, fallback_images, cancel=cancel))


def install_if_better(engine: Engine | None, profile: Profile, candidate: Path, result: Result
                      ) -> tuple[InstallDecision, list[str]]:
    """Install ``candidate`` when it scored better; the engine forgets the old detector. Returns the
    decision and the log lines that explain it."""
    from gwm_desktop.core.detector_eval import explain

    current, new = result
    decision = profile.install_detector_if_better(candidate, new, current)
    if decision.installed and engine is not None:
        engine.invalidate_profile(profile)  # the scanner must not keep using the old detector
    return decision, explain(current, new, decision)


def roll_back(engine: Engine | None, profile: Profile) -> None:
    """Restore the profile's previous detector (FileNotFoundError when there is none)."""
    profile.roll_back_detector()
    if engine is not None:
        engine.invalidate_profile(profile)
