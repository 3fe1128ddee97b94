"""Phase 2 detector fine-tuning: teach D the watermark as a personalized model reproduces it.

Batches (``batch_size`` images, half label 0, half label 1):

* **Phase 2 batches** (share ``1 - phase1_mix``): synthesized images S (made by the model personalized
  on clean X, label 0) and S_w (made by the model personalized on watermarked X_w, label 1);
* **Phase 1 batches** (share ``phase1_mix``), so D does not forget what it learned: clean images (0),
  the same images freshly watermarked with this profile's key (1) and, as in Phase 1, some
  watermarked with random other keys (0 for this key), each under a random SPEC distortion (identity
  with probability 0.2). Each watermark's LPIPS budget is one of the app's levels, drawn at random
  (``phase1_levels``), or ``p``: an installed detector scans protected copies made at any level, and
  trained at 0.05 alone it lost the faintest (``direct_copy_check``; README, Known limitations).

Loss: binary cross-entropy on D's score logit for its label (the paper's classifier), plus, for
watermarked images of a known message, cross-entropy on each message bit (a denser signal).

With a validation set (S / S_w from prompts and seeds the fine-tuning never sees), D is scored on it
before the first step and every ``validate_every`` steps; the state with the lowest validation
cross-entropy (after refitting the head's bias to those images) is kept, the Phase 1 detector itself
when no step beats it, and its bias is refitted there (``bias_refit``). Why: with a few dozen
synthesized images per class, D soon separates its training pairs completely and its own decision
(score 0.5) no longer sits between the classes on new images (measured in docs/history.md).

The model folder written keeps G unchanged and gets the fine-tuned D, plus a new calibration bank
(the old one holds the old D's outputs) in the form the scanner reads: D's evidence per scan-time
view (``decode_views``: bit logits, plus the matched filter's statistics when the model has one, so a
Phase 2 detector keeps the shipped model's matched filter) of the clean images seen here (S and the
Phase 1 images, undistorted and distorted), of Phase 1 images watermarked with other keys at ``p``
and at the faintest level. Thresholds drawn from it are somewhat optimistic for S (D trained on those
very images): the Phase 2 report sets its thresholds on held-out images instead.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gwm_desktop.core.detect import threshold_for_fpr
from gwm_desktop.core.devices import resolve_device
from gwm_desktop.core.jobs import CancelToken, Progress
from gwm_desktop.core.keys import message_from_key
from gwm_desktop.core.levels import LEVELS
from gwm_desktop.core.models import WatermarkDetector
from gwm_desktop.core.weights import load_model, save_model
from training.datasets import list_images
from training.distortion_layer import DistortionLayer
from training.metrics import auc
from training.phase2.phase1_data import (
    FreshWatermarker,
    as_float,
    calibration_bank,
    load_detector_images,
    phase1_batch,
)


@dataclass
class DetectorFinetuneConfig:
    steps: int = 300
    lr: float = 1e-3                 # chosen on validation images over 1e-4 / 3e-4 (training/miniature/README.md)
    batch_size: int = 16
    phase1_mix: float = 0.5          # share of batches from Phase 1 data (0 without phase1_images)
    p: float = 0.05                  # budget of Phase 1 watermarks without phase1_levels; of the bank's other keys
    phase1_levels: bool = True       # Phase 1 watermarks at a random app level's budget (levels.LEVELS)
    other_key_share: float = 0.5     # in Phase 1 batches, share of negatives watermarked with another key
    bit_loss_weight: float = 1.0
    distort_phase2: bool = False     # also apply random SPEC distortions to S / S_w
    validate_every: int = 25         # steps between validation scores (with a validation set)
    device: str = "auto"
    seed: int = 0
    threads: int = 0


def detection_loss(detector: WatermarkDetector, evidence: torch.Tensor, labels: torch.Tensor, message: torch.Tensor,
                   bit_targets: torch.Tensor | None, bit_weight: float) -> torch.Tensor:
    """BCE on the score logit of ``evidence`` (``WatermarkDetector.evidence``) for ``labels`` (B,), plus
    per-bit BCE on the bit logits where ``bit_targets`` (B, n_bits) is not NaN."""
    loss = F.binary_cross_entropy_with_logits(detector.score_logit(evidence, message.view(1, -1)), labels)
    if bit_targets is not None and bit_weight > 0:
        known = ~torch.isnan(bit_targets[:, 0])
        if known.any():
            bits = (evidence[:, 0] if evidence.dim() == 3 else evidence)[known, :detector.n_bits]  # views share them
            loss = loss + bit_weight * F.binary_cross_entropy_with_logits(bits, (bit_targets[known] + 1) / 2)
    return loss


@torch.no_grad()
def score_logits(detector: WatermarkDetector, message: torch.Tensor, images: torch.Tensor,
                 device: torch.device | str = "cpu", batch: int = 64) -> torch.Tensor:
    """(N,) D's score logits for this key's watermark on (N, 3, S, S) uint8 images (``evidence``: one view)."""
    device = torch.device(device)
    detector.eval()
    out = [detector.score_logit(detector.evidence(as_float(images[start:start + batch], device)),
                                message.to(device).view(1, -1)).float().cpu()
           for start in range(0, len(images), batch)]
    return torch.cat(out) if out else torch.zeros(0)


def mean_bce(detector: WatermarkDetector, message: torch.Tensor, clean: torch.Tensor, marked: torch.Tensor,
             device: torch.device) -> float:
    """Mean binary cross-entropy of D's score on clean (0) and marked (1) uint8 images."""
    total = sum(float(F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label), reduction="sum"))
                for logits, label in ((score_logits(detector, message, clean, device), 0.0),
                                      (score_logits(detector, message, marked, device), 1.0)))
    return total / max(len(clean) + len(marked), 1)


def _image_paths(items: Path | str | list[Path]) -> list[Path]:
    """Image files of a folder (searched recursively), or of a list of folders and files (files kept as given)."""
    paths = [Path(item) for item in items] if isinstance(items, (list, tuple)) else [Path(items)]
    found: list[Path] = []
    for path in paths:
        found += [path] if path.is_file() else list_images([path])
    return found


ImageSource = Path | list[Path]  # a folder, or a list of folders and image files (``_image_paths``)


class ValidationTracker:
    """Scores D on validation S / S_w, remembers the best state (lowest binary cross-entropy once the
    head's bias is refitted; ties keep the earlier step) and finally refits the bias of the kept state."""

    def __init__(self, detector: WatermarkDetector, message: torch.Tensor, clean: torch.Tensor,
                 marked: torch.Tensor, device: torch.device) -> None:
        self.detector, self.message, self.clean, self.marked, self.device = detector, message, clean, marked, device
        self.best_loss, self.best_step, self.best_state = math.inf, 0, None
        self.history: list[dict[str, float]] = []

    def _scores(self) -> tuple[np.ndarray, np.ndarray]:
        return (score_logits(self.detector, self.message, self.clean, self.device).numpy(),
                score_logits(self.detector, self.message, self.marked, self.device).numpy())

    def check(self, step: int) -> float:
        negatives, positives = self._scores()
        _, loss = bias_refit(negatives, positives)
        self.history.append({"step": step, "loss": loss, "auc": auc(negatives, positives)})
        if self.best_state is None or loss < self.best_loss - 1e-6:  # step 0 always counts (even a NaN loss)
            self.best_loss, self.best_step = loss, step
            self.best_state = copy.deepcopy(self.detector.state_dict())
        return loss

    @torch.no_grad()
    def restore_best_and_calibrate(self) -> dict[str, Any]:
        if self.best_state is not None:
            self.detector.load_state_dict(self.best_state)
        negatives, positives = self._scores()
        shift, loss = bias_refit(negatives, positives)
        self.detector.score_bias += shift
        return {"chosen_step": self.best_step, "validation_loss": loss,
                "validation_auc": auc(negatives, positives),
                "validation_accuracy": _accuracy(negatives, positives, -shift), "bias_shift": shift,
                "n_validation": int(len(negatives) + len(positives)), "history": self.history}


def bias_refit(negatives: np.ndarray, positives: np.ndarray) -> tuple[float, float]:
    """(shift, loss): the shift of every logit that minimises the mean binary cross-entropy of clean (0)
    and marked (1) scores, and that loss. Finite whenever both classes are present, separable or not."""
    logits = torch.from_numpy(np.concatenate([negatives, positives])).double()
    labels = torch.cat([torch.zeros(len(negatives)), torch.ones(len(positives))]).double()
    lo, hi = -float(logits.abs().max()) - 20.0, float(logits.abs().max()) + 20.0

    def loss(shift: float) -> float:
        return float(F.binary_cross_entropy_with_logits(logits + shift, labels))

    for _ in range(100):  # the loss is convex in the shift: ternary search
        a, b = lo + (hi - lo) / 3, hi - (hi - lo) / 3
        lo, hi = (lo, b) if loss(a) < loss(b) else (a, hi)
    shift = (lo + hi) / 2
    return shift, loss(shift)


def finetune_detector(model_dir: Path, key: bytes, clean_dir: ImageSource, marked_dir: ImageSource,
                      out_dir: Path,
                      config: DetectorFinetuneConfig, phase1_images: list[Path] | None = None,
                      cancel: CancelToken | None = None,
                      validation: tuple[ImageSource, ImageSource] | None = None) -> Iterator[Progress]:
    """Fine-tune D of ``model_dir`` on S (``clean_dir``, 0) vs S_w (``marked_dir``, 1); write a model folder.

    clean_dir / marked_dir: a folder (searched recursively) or a list of folders and image files.
    validation: (clean, marked) folders or files of S / S_w from other prompts and seeds; they choose
    the step kept and D's decision threshold (module docstring). None: the last step, bias as trained.

    Yields one Progress per step (payload: step, loss, phase); the last one's payload also holds
    ``bce_before`` / ``bce_after`` on the training pairs and, with validation, ``selection``
    (chosen_step, validation_loss / _auc / _accuracy, bias_shift, history). Nothing is written until
    the steps are done.
    """
    cancel = cancel or CancelToken()
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    bundle = load_model(Path(model_dir), device)
    generator, detector = bundle.generator, bundle.detector
    size = detector.working_size
    message = message_from_key(key, bundle.n_bits).to(device)
    clean = load_detector_images(_image_paths(clean_dir), size, detector.isotropic)
    marked = load_detector_images(_image_paths(marked_dir), size, detector.isotropic)
    if not len(clean) or not len(marked):
        raise ValueError(f"need synthesized images in both {clean_dir} (S) and {marked_dir} (S_w)")
    phase1 = load_detector_images(list(phase1_images or []), size, detector.isotropic)
    mix = config.phase1_mix if len(phase1) else 0.0
    rng = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    distort = DistortionLayer(seed=config.seed, p_identity=0.2)
    fresh = FreshWatermarker(generator, config.p, device) if mix > 0 else None
    level_budgets = torch.tensor([level.p for level in LEVELS], device=device) if config.phase1_levels else None
    half = max(1, config.batch_size // 2)
    bce_before = mean_bce(detector, message, clean, marked, device)
    tracker = None
    if validation is not None:
        tracker = ValidationTracker(detector, message, load_detector_images(_image_paths(validation[0]), size, detector.isotropic),
                                    load_detector_images(_image_paths(validation[1]), size, detector.isotropic), device)
        if not len(tracker.clean) or not len(tracker.marked):
            raise ValueError("need validation images of both kinds (clean S and watermarked S_w)")
        tracker.check(0)
    optimizer = torch.optim.Adam(detector.parameters(), lr=config.lr)
    started = time.monotonic()
    for step in range(1, config.steps + 1):
        cancel.raise_if_cancelled()
        detector.train()
        use_phase1 = bool(torch.rand(1, generator=rng) < mix)
        if use_phase1:
            x, labels, targets = phase1_batch(phase1, half, message, fresh, distort, rng, device,
                                               config.other_key_share, level_budgets)
        else:
            neg = clean[torch.randint(len(clean), (half,), generator=rng)]
            pos = marked[torch.randint(len(marked), (half,), generator=rng)]
            x = as_float(torch.cat([neg, pos]), device)
            if config.distort_phase2:
                x = distort(x)
            labels = torch.cat([torch.zeros(half), torch.ones(half)]).to(device)
            targets = torch.cat([torch.full((half, bundle.n_bits), float("nan")),
                                 message.cpu().expand(half, -1)]).to(device)
        loss = detection_loss(detector, detector.evidence(x), labels, message, targets, config.bit_loss_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        metrics: dict[str, Any] = {"step": step, "loss": float(loss.detach()), "phase": 1 if use_phase1 else 2,
                                   "elapsed_s": round(time.monotonic() - started, 2)}
        if tracker is not None and (step % max(config.validate_every, 1) == 0 or step == config.steps):
            metrics["validation_loss"] = tracker.check(step)
        if step == config.steps:
            if tracker is not None:
                metrics["selection"] = tracker.restore_best_and_calibrate()
            metrics.update(bce_before=bce_before, bce_after=mean_bce(detector, message, clean, marked, device))
            cancel.raise_if_cancelled()
            detector.eval()
            calibration = calibration_bank(detector, [clean, phase1], phase1, fresh, distort, rng, device)
            save_model(Path(out_dir), generator, detector, calibration=calibration,
                       manifest_extra={"training": {"phase": 2, "base_model": str(model_dir),
                                                    "config": asdict(config), "steps_done": step,
                                                    "n_clean": len(clean), "n_marked": len(marked),
                                                    "n_phase1": len(phase1)},
                                       "metrics": {"bce_before": bce_before, "bce_after": metrics["bce_after"],
                                                   "selection": metrics.get("selection")}})
        yield Progress(step, config.steps, f"detector step {step}/{config.steps}", metrics)


# -- evaluation ----------------------------------------------------------------------------------------
def score_images(detector: WatermarkDetector, message: torch.Tensor, paths: list[Path],
                 device: torch.device | str = "cpu", batch: int = 64) -> np.ndarray:
    """(N,) D's score logits for this key's watermark, images read as the scanner reads them (one
    unzoomed view: the images are whole, so the scanner's crop view has nothing to undo)."""
    return score_logits(detector, message, load_detector_images(paths, detector.working_size, detector.isotropic), device, batch).numpy()


def _accuracy(negatives: np.ndarray, positives: np.ndarray, threshold: float) -> float:
    correct = (negatives <= threshold).sum() + (positives > threshold).sum()
    return float(correct / (len(negatives) + len(positives)))


def best_threshold(negatives: np.ndarray, positives: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy of ``score > threshold`` on these very scores."""
    values = np.unique(np.concatenate([negatives, positives]))
    # Midpoints between neighbouring scores: the threshold generalises best away from both classes.
    candidates = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2, [values[-1] + 1.0]])
    accuracies = [_accuracy(negatives, positives, t) for t in candidates]
    best = int(np.argmax(accuracies))
    return float(candidates[best]), float(accuracies[best])


def detection_metrics(negatives: np.ndarray, positives: np.ndarray, threshold_logit: float = 0.0) -> dict[str, Any]:
    """Metrics of SPEC section 3 from score logits of clean (negatives) and watermarked (positives) images.

    * ``accuracy``: at ``threshold_logit`` (0 = D's own decision, probability 0.5);
    * ``accuracy_cv``: threshold chosen for best accuracy on one half of each set (even / odd
      index), measured on the other half, averaged over both ways: an honest accuracy for a detector
      whose own decision boundary is not calibrated for synthesized images (the Phase 1 detector);
    * ``best_accuracy``: the oracle threshold on all the images (optimistic; for reference only);
    * ``auc``; ``tpr_at_1pct_fpr``: threshold at the clean images' 1% quantile (strictly above).
    """
    negatives, positives = np.asarray(negatives, dtype=np.float64), np.asarray(positives, dtype=np.float64)
    folds = []
    for train, test in ((0, 1), (1, 0)):
        if len(negatives[train::2]) and len(positives[train::2]) and len(negatives[test::2]) and len(positives[test::2]):
            t, _ = best_threshold(negatives[train::2], positives[train::2])
            folds.append(_accuracy(negatives[test::2], positives[test::2], t))
    fpr_threshold = threshold_for_fpr(negatives, 0.01) if len(negatives) else math.inf
    best_t, best_acc = best_threshold(negatives, positives)
    return {
        "n": int(len(negatives) + len(positives)), "n_clean": int(len(negatives)), "n_marked": int(len(positives)),
        "accuracy": _accuracy(negatives, positives, threshold_logit),
        "threshold": float(1 / (1 + math.exp(-threshold_logit))),
        "accuracy_cv": float(np.mean(folds)) if folds else float("nan"),
        "best_accuracy": best_acc, "best_threshold": float(1 / (1 + math.exp(-best_t))) if math.isfinite(best_t) else 0.0,
        "auc": auc(negatives, positives),
        "tpr_at_1pct_fpr": float((positives > fpr_threshold).mean()) if len(positives) else float("nan"),
        "mean_score_clean": float(np.mean(1 / (1 + np.exp(-negatives)))) if len(negatives) else float("nan"),
        "mean_score_marked": float(np.mean(1 / (1 + np.exp(-positives)))) if len(positives) else float("nan"),
    }


def evaluate_detector(model_dir: Path, key: bytes, clean_dir: Path | list[Path], marked_dir: Path | list[Path],
                      threshold: float | None = None,
                      device: torch.device | str = "cpu") -> dict[str, Any]:
    """Detection metrics of ``model_dir``'s D on clean S (``clean_dir``) vs watermarked S_w (``marked_dir``).

    threshold: a score in (0, 1) for ``accuracy``; None uses D's own decision boundary (score 0.5).
    See ``detection_metrics`` for every figure returned (accuracy, accuracy_cv, auc, tpr_at_1pct_fpr, n, ...).
    """
    bundle = load_model(Path(model_dir), device)
    message = message_from_key(key, bundle.n_bits)
    negatives = score_images(bundle.detector, message, _image_paths(clean_dir), device)
    positives = score_images(bundle.detector, message, _image_paths(marked_dir), device)
    threshold_logit = 0.0 if threshold is None else math.log(threshold / (1 - threshold))
    return detection_metrics(negatives, positives, threshold_logit)
