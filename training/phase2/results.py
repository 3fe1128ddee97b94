"""The Phase 2 report's figures: the Phase 1 detector and every Phase 2 detector on every method's
held-out images (never trained on, never used to choose a step), the model-level verdict on each
personalized model, plus what each stage recorded.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.phase2.detector_finetune import detection_metrics, score_images
from training.phase2.loading import read_personalization

if TYPE_CHECKING:
    from training.phase2.layout import RunLayout


def build_report(run: RunLayout, key: bytes, started: float) -> dict[str, Any]:
    """The report dict (``format: gwm-phase2-report-v1``) that ``report.write_report`` renders."""
    from gwm_desktop.core.devices import resolve_device
    from gwm_desktop.core.keys import message_from_key
    from gwm_desktop.core.weights import load_model

    cfg = run.config
    device = resolve_device(cfg.device)
    heldout = {m: run.sets_of([m], "heldout") for m in cfg.methods}

    def metrics_for(model_dir: Path) -> dict[str, dict[str, Any]]:
        bundle = load_model(model_dir, device)
        message = message_from_key(key, bundle.n_bits)
        results = {}
        for method, (clean, marked) in heldout.items():
            results[method] = detection_metrics(score_images(bundle.detector, message, clean, device),
                                                score_images(bundle.detector, message, marked, device))
        return results

    phase1 = metrics_for(run.watermark_model_dir())
    verdicts = model_verdicts(run, key, device)
    sets = cfg.detector_sets()
    matrix = {name: metrics_for(run.detector_dir(name)) for name in sets}
    watermark_log = json.loads((run.marked_images_dir / "watermark.json").read_text())
    lpips_values = [e["lpips"] for e in watermark_log["images"].values() if e.get("marked")]
    return {
        "format": "gwm-phase2-report-v1",
        "config": {k: v for k, v in asdict(cfg).items() if k != "key_file"},
        "watermark_fraction": cfg.watermark_fraction,
        "subject": {"n_images": len(run.images), "n_watermarked": len(lpips_values),
                    "mean_lpips": sum(lpips_values) / len(lpips_values) if lpips_values else None},
        "prompts": {"train": run.train_prompts, "heldout": run.heldout_prompts,
                    "validation": run.validation_prompts, "train_seeds": run.train_seeds,
                    "validation_seeds": run.validation_seeds, "heldout_seeds": run.heldout_seeds,
                    "paired_seeds": cfg.paired_seeds, "seeds": run.seeds_record()},
        "selection": {name: _selection_summary(run.detector_dir(name)) for name in sets},
        "personalizations": {m: {v: _personalization_summary(run.model_dir(m, v))
                                 for v in ("clean", run.marked_name)} for m in cfg.methods},
        "phase1_detector": phase1,
        "phase2_detector": {m: matrix[m][m] for m in cfg.methods},
        "cross_method": {name: results for name, results in matrix.items()},
        "verdict": verdicts,
        "elapsed_s": round(time.monotonic() - started, 1),
    }


VERDICT_FIELDS = ("n", "p_value", "p_tail_estimate", "effect_z", "statistic", "verdict", "alpha", "null_keys",
                  "exceedances")


def model_verdicts(run: RunLayout, key: bytes, device: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """{method: {"marked" | "clean": verdict or None}}: ``core.verdict.set_verdict`` at its default alpha over
    the held-out images of the model personalized on X_w and of its clean twin, as an artist would test
    a suspect model. The evidence comes from the run's watermark model (the shipped one unless
    ``model_dir`` names another), never from a fine-tuned detector: its evidence depends on the key,
    which breaks the test's exchangeability."""
    import numpy as np

    from gwm_desktop.core.key_rank import reading_groups
    from gwm_desktop.core.keys import message_from_key
    from gwm_desktop.core.verdict import evidence_of_paths, set_verdict
    from gwm_desktop.core.weights import load_model

    bundle = load_model(run.watermark_model_dir(), device)
    message = message_from_key(key, bundle.n_bits)
    verdicts: dict[str, dict[str, dict[str, Any]]] = {}
    for method in run.config.methods:
        verdicts[method] = {}
        for label, variant in (("marked", run.marked_name), ("clean", "clean")):
            paths = run.split_images(method, variant, "heldout")
            found = [p.payload for p in evidence_of_paths(bundle.detector, paths, len(paths), device)]
            readable = [item for item in found if item.evidence is not None]
            if not readable:  # recorded, not raised: the rest of the report is still worth having
                verdicts[method][label] = None
                continue
            evidence = np.stack([item.evidence for item in readable])
            result = set_verdict(evidence, message, paths=[item.path for item in readable],
                                 groups=reading_groups(bundle.detector, evidence.shape[1])).to_json()
            verdicts[method][label] = {k: result[k] for k in VERDICT_FIELDS}
    return verdicts


def _personalization_summary(folder: Path) -> dict[str, Any]:
    saved = read_personalization(folder)
    return {k: saved.get(k) for k in ("method", "steps_done", "learning_rate", "mixed_precision", "n_images")}


def _selection_summary(detector_dir: Path) -> dict[str, Any] | None:
    """What the validation images chose for a fine-tuned detector (None without validation)."""
    manifest = json.loads((detector_dir / "manifest.json").read_text(encoding="utf-8"))
    selection = (manifest.get("metrics") or {}).get("selection")
    return None if selection is None else {k: v for k, v in selection.items() if k != "history"}

