"""The whole of Phase 2 for one subject, as one job (``run_phase2``), resumable stage by stage.

1. watermark the subject's images X into X_w (``watermark_fraction`` < 1: only that share of X);
2. personalize the base model on X and on X_w with each method;
3. synthesize S and S_w with each personalized model on training, validation and held-out prompts
   (disjoint sets, every image with a seed of its own, S_w's seeds apart from S's: ``splits``);
4. fine-tune the detector per method (and one on all methods together: ``phase2_methods.detector_sets``);
   the validation images choose the step kept and D's decision threshold;
5. report on the held-out images (``results``): Phase 1 detector vs each Phase 2 detector, and the
   cross-method matrix.

Output folder (``out``); the tag (``Phase2Config.tag``) is empty at watermark_fraction 1 and p = 0.05::

    data/X_w{tag}/                          watermarked copies of X (PNG)
    models/{method}/clean|marked{tag}/      personalizations (``personalize``)
    synth/{method}/clean|marked{tag}/train|validation|heldout/   PNGs + records.jsonl (``synthesize``)
    detectors{tag}/{method}|joint/           fine-tuned model folders (``finetune_detector``)
    report{tag}.json, report{tag}.md

Every stage skips work already done (``cache``), so rerunning a cancelled run resumes it. The key is
never written. Under ``accelerate launch`` every process personalizes; the rest runs on the main one.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gwm_desktop.core.atomic import write_atomic
from gwm_desktop.core.jobs import CancelToken, Progress
from training.datasets import list_images
from training.phase2.cache import (
    SETTINGS_FILE,
    detector_current,
    personalization_current,
    personalization_stamp,
)
from training.phase2.config import DEFAULT_P, Phase2Config
from training.phase2.detector_finetune import finetune_detector
from training.phase2.layout import RunLayout
from training.phase2.loading import inference_dtype, load_personalized
from training.phase2.personalize import personalize
from training.phase2.personalize_config import PersonalizeConfig
from training.phase2.splits import HELDOUT_SEED_OFFSET, VALIDATION_SEED_OFFSET, distinct_seeds, split_prompts
from training.phase2.subject_key import read_key
from training.phase2.synthesize import synthesize


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


class Phase2Run(RunLayout):
    """Stage bookkeeping and the stages of one ``run_phase2`` (paths and splits: ``RunLayout``)."""

    def __init__(self, config: Phase2Config, cancel: CancelToken | None = None) -> None:
        super().__init__(config)
        self.cancel = cancel or CancelToken()
        self.done = 0
        self.total = self._count_units()
        self.started = time.monotonic()

    # -- progress ------------------------------------------------------------------------------------
    def _count_units(self) -> int:
        cfg = self.config
        steps = sum(2 * cfg.personalize_config(m).resolved_steps() for m in cfg.methods)
        synth = len(cfg.methods) * sum(sum(map(len, seeds)) for variant in ("clean", self.marked_name)
                                       for _, _, seeds in self.synth_splits(variant))
        detectors = len(cfg.detector_sets())
        return len(self.images) + steps + synth + detectors * cfg.finetune_steps + 1

    def _relay(self, stage: str, jobs: Iterator[Progress], units: int) -> Iterator[Progress]:
        """Re-yield a sub-job's progress as overall progress; ``units`` is what the stage counts for."""
        start = self.done
        for sub in jobs:
            self.done = start + min(sub.done, units)
            yield Progress(self.done, self.total, f"{stage}: {sub.message}", {"stage": stage, "sub": sub},
                           started_at=self.started)
        self.done = start + units

    # -- stages --------------------------------------------------------------------------------------
    def watermark_subject(self, key: bytes) -> Iterator[Progress]:
        """X -> X_w: ``watermark_fraction`` of the images (seeded choice) watermarked at budget p, PNG."""
        from gwm_desktop.core.devices import resolve_device
        from gwm_desktop.core.image_io import EncodeOptions, load_image
        from gwm_desktop.core.keys import message_from_key
        from gwm_desktop.core.lpips_metric import build_lpips
        from gwm_desktop.core.watermark import Embedder
        from gwm_desktop.core.weights import load_model

        cfg = self.config
        folder = self.marked_images_dir
        folder.mkdir(parents=True, exist_ok=True)
        n_marked = max(1, math.ceil(cfg.watermark_fraction * len(self.images))) if cfg.watermark_fraction > 0 else 0
        chosen = set(random.Random(cfg.seed).sample(range(len(self.images)), n_marked))
        done_file = folder / "watermark.json"
        previous = json.loads(done_file.read_text()) if done_file.exists() else {}
        embedder = None
        log: dict[str, Any] = {"p": cfg.p, "fraction": cfg.watermark_fraction, "images": {}}
        for index, source in enumerate(self.images):
            self.cancel.raise_if_cancelled()
            target = folder / (source.stem + ".png")
            entry = previous.get("images", {}).get(source.name)
            if target.exists() and entry and entry.get("marked") == (index in chosen) and previous.get("p") == cfg.p:
                log["images"][source.name] = entry
            elif index in chosen:
                if embedder is None:
                    device = resolve_device(cfg.device)
                    bundle = load_model(self.watermark_model_dir(), device)
                    embedder = Embedder(bundle.generator, message_from_key(key, bundle.n_bits),
                                        build_lpips(device), device)
                result = embedder.protect(load_image(source), cfg.p, EncodeOptions(format="png"))
                write_atomic(target, result.data)
                log["images"][source.name] = {"marked": True, "lpips": result.lpips, "psnr": result.psnr}
            else:
                from io import BytesIO

                from PIL import Image, ImageOps

                with Image.open(source) as image:
                    ImageOps.exif_transpose(image).convert("RGB").save(buffer := BytesIO(), format="PNG")
                write_atomic(target, buffer.getvalue())
                log["images"][source.name] = {"marked": False}
            yield Progress(index + 1, len(self.images), source.name, log["images"][source.name])
        write_atomic(done_file, (json.dumps(log, indent=2) + "\n").encode("utf-8"))

    def personalize_all(self) -> Iterator[Progress]:
        cfg = self.config
        for method in cfg.methods:
            pconfig = self.personalize_config_for(method)
            for variant, images in (("clean", Path(cfg.images_dir)), (self.marked_name, self.marked_images_dir)):
                folder = self.model_dir(method, variant)
                units = pconfig.resolved_steps()
                if personalization_current(folder, pconfig):
                    self.done += units
                    continue
                # Images synthesized by an earlier model in this folder are not this model's.
                shutil.rmtree(self.synth_dir(method, variant, "train").parent, ignore_errors=True)
                pconfig.resume = "latest"
                yield from self._relay(f"personalize {method} on {variant}",
                                       personalize(cfg.base, images, folder, pconfig, self.cancel), units)

    def personalize_config_for(self, method: str) -> PersonalizeConfig:
        # Device, seed and threads come from the run unless the method's overrides set them (a second
        # personalization seed is how the miniature measures run-to-run spread).
        return self.config.personalize_config(method)


    def synthesize_all(self) -> Iterator[Progress]:
        from gwm_desktop.core.devices import resolve_device

        cfg = self.config
        device = resolve_device(cfg.device)
        for method in cfg.methods:
            pconfig = self.personalize_config_for(method)
            for variant in ("clean", self.marked_name):
                pipeline = None
                for split, prompts, seeds in self.synth_splits(variant):
                    units = sum(map(len, seeds))
                    folder = self.synth_dir(method, variant, split)
                    if pipeline is None and len(self.split_images(method, variant, split)) < units:
                        pipeline = load_personalized(cfg.base, self.model_dir(method, variant), pconfig, device,
                                                     inference_dtype(device, cfg.mixed_precision))
                    if pipeline is None:
                        self.done += units
                        continue
                    job = synthesize(pipeline, prompts, seeds, folder, steps=cfg.synth_steps, guidance=cfg.guidance,
                                     resolution=cfg.synth_resolution or pconfig.resolution, cancel=self.cancel,
                                     batch_size=cfg.synth_batch_size, negative_prompt=cfg.negative_prompt)
                    yield from self._relay(f"synthesize {method} {variant} {split}", job, units)
                del pipeline

    def detector_sets(self) -> dict[str, list[str]]:
        return self.config.detector_sets()

    def finetune_all(self, key: bytes) -> Iterator[Progress]:
        cfg = self.config
        ft = cfg.finetune_config()
        phase1 = list_images([Path(d) for d in cfg.phase1_data]) if cfg.phase1_data else self.images
        for name, methods in self.detector_sets().items():
            folder = self.detector_dir(name)
            settings = self.detector_settings(methods)
            if detector_current(folder, settings):
                self.done += ft.steps
                continue
            clean, marked = self.sets_of(methods, "train")
            validation = self.sets_of(methods, "validation") if self.validation_prompts else None
            stamp = folder / SETTINGS_FILE
            stamp.unlink(missing_ok=True)
            yield from self._relay(f"fine-tune detector {name}",
                                   finetune_detector(self.watermark_model_dir(), key, clean, marked, folder, ft,
                                                     phase1_images=phase1, cancel=self.cancel,
                                                     validation=validation), ft.steps)
            write_atomic(stamp, (json.dumps(settings, indent=2) + "\n").encode("utf-8"))

    def detector_settings(self, methods: list[str]) -> dict[str, Any]:
        """What a detector fine-tuned on ``methods``' images depends on: reused only when all match."""
        cfg = self.config
        return {"finetune": asdict(cfg.finetune_config()), "methods": methods, "personalization_tag": cfg.tag,
                "train": [self.train_prompts, self.train_seeds],
                "validation": [self.validation_prompts, self.validation_seeds],
                "marked_seeds": {split: self.seeds[(split, True)] for split in ("train", "validation")},
                "personalizations": {m: {v: personalization_stamp(self.model_dir(m, v))
                                         for v in ("clean", self.marked_name)} for m in methods}}

    def evaluate(self, key: bytes) -> dict[str, Any]:
        """Held-out metrics (``results.build_report``)."""
        from training.phase2.results import build_report

        return build_report(self, key, self.started)

    def run(self) -> Iterator[Progress]:
        key = read_key(self.config)
        self.out.mkdir(parents=True, exist_ok=True)
        ready = self.marked_images_dir / "watermark.json"
        if is_main_process():
            yield from self._relay("watermark X", self.watermark_subject(key), len(self.images))
        else:
            _wait_for(ready, self.cancel)
            self.done += len(self.images)
        yield from self.personalize_all()
        if not is_main_process():
            return  # under accelerate launch, only the main process synthesizes, fine-tunes and reports
        yield from self.synthesize_all()
        yield from self.finetune_all(key)
        self.cancel.raise_if_cancelled()
        report = self.evaluate(key)
        from training.phase2.report import write_report

        write_report(report, self.out / f"report{self.config.tag}.json", self.out / f"report{self.config.tag}.md")
        self.done = self.total
        yield Progress(self.total, self.total, "report written", {"stage": "report", "report": report},
                       started_at=self.started)


def _wait_for(path: Path, cancel: CancelToken, poll_s: float = 2.0) -> None:
    while not path.exists():
        cancel.raise_if_cancelled()
        time.sleep(poll_s)


def run_phase2(config: Phase2Config, cancel: CancelToken | None = None) -> Iterator[Progress]:
    """Run (or resume) Phase 2 for one subject; the last Progress's payload holds ``{"report": ...}``.

    Progress.done/total count work units (images watermarked, training steps, images synthesized,
    detector steps); ``payload["stage"]`` names the stage and ``payload["sub"]`` is the sub-job's own
    Progress. Cancelling stops between units; rerunning resumes.
    """
    yield from Phase2Run(config, cancel).run()


__all__ = ["DEFAULT_P", "HELDOUT_SEED_OFFSET", "VALIDATION_SEED_OFFSET", "Phase2Config", "Phase2Run",
           "distinct_seeds", "read_key", "run_phase2", "split_prompts"]
