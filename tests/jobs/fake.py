"""Fake training jobs for GUI tests (like krita-ai-diffusion's tests/mock): registered in ``JOBS`` in place
of the real Phase 1 and Phase 2 jobs, they keep the real jobs' contract at a few milliseconds a step.

What the tab relies on is kept: the same ``Progress`` payloads (a ``step`` and the job's curves; Phase 2
also a ``stage``), cooperative cancel between steps, a checkpoint on cancel that Resume continues
from, Phase 2's folder layout with reuse of finished stages and start-over through
``jobs.phase2.prepare_run``, a real model folder as the result (a copy of the watermark model, so the
install step can load and score it) and real held-out image files.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gwm_desktop.core.jobs import CancelToken, JobCancelled, Progress
from gwm_desktop.jobs import registry
from gwm_desktop.jobs.phase2 import prepare_run
from gwm_desktop.jobs.spec import JobOutcome, JobSpec
from training.phase2_methods import installed_detector

STEP_S = 0.002  # long enough that a cancel from the UI thread lands while the job is still running
FINETUNE_STEPS = 3


def _phase1_metrics(step: int) -> dict[str, float]:
    return {"step": step, "loss_d": 1 / step, "loss_g": 2 / step, "lpips": 0.05, "bit_acc": 1 - 1 / (step + 1),
            "agree_marked": 0.5}


def fake_phase1_job(spec: JobSpec, cancel: CancelToken) -> Iterator[Progress]:
    """Phase 1's contract: steps to ``spec.steps``, a checkpoint on cancel, ``out/model`` at the end."""
    out = Path(spec.out)
    checkpoints = out / "checkpoints"
    saved = sorted(int(p.stem.split("-")[1]) for p in checkpoints.glob("step-*.json")) if spec.resume else []
    step = saved[-1] if saved else 0
    yield Progress(step, spec.steps, "Loading networks and images…", {})

    def checkpoint() -> None:
        checkpoints.mkdir(parents=True, exist_ok=True)
        (checkpoints / f"step-{step:07d}.json").write_text(json.dumps({"step": step}))

    try:
        while step < spec.steps:
            cancel.raise_if_cancelled()
            time.sleep(STEP_S)
            step += 1
            yield Progress(step, spec.steps, f"step {step}", _phase1_metrics(step))
    except (JobCancelled, GeneratorExit):
        checkpoint()
        raise
    checkpoint()
    if spec.init_from is None:
        raise ValueError("the fake Phase 1 job copies its starting model: give init_from")
    model_dir = out / "model"
    shutil.rmtree(model_dir, ignore_errors=True)
    shutil.copytree(spec.init_from, model_dir)
    return JobOutcome(model_dir, step, f"model written to {model_dir}")


def _write_images(folder: Path, count: int, seed: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def fake_phase2_job(spec: JobSpec, cancel: CancelToken) -> Iterator[Progress]:
    """Phase 2's contract: the real JobSpec mapping and start-over, stages that are skipped once done."""
    config = yield from prepare_run(spec)
    out = Path(config.out)
    steps = {m: config.personalize_config(m).resolved_steps() for m in config.methods}
    total = 2 * sum(steps.values()) + FINETUNE_STEPS
    done = 0
    yield Progress(done, total, f"Phase 2 on {config.images_dir} with {config.base}", {})
    for method in config.methods:
        for variant in ("clean", "marked"):
            folder, stage = out / "models" / method / variant, f"personalize {method} on {variant}"
            if (folder / "personalization.json").exists():
                done += steps[method]
                continue
            for step in range(1, steps[method] + 1):
                cancel.raise_if_cancelled()
                time.sleep(STEP_S)
                done += 1
                yield Progress(done, total, f"{stage}: {method} step {step}/{steps[method]}",
                               {"stage": stage, "step": done, "personalize_loss": 1 / step})
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "personalization.json").write_text(json.dumps({"method": method, "steps_done": step}))
    name = installed_detector(config.methods, config.joint_detector)
    detector = out / "detectors" / name
    if not (detector / "manifest.json").exists():
        for step in range(1, FINETUNE_STEPS + 1):
            cancel.raise_if_cancelled()
            done += 1
            yield Progress(done, total, f"fine-tune detector {name}: step {step}",
                           {"stage": f"fine-tune detector {name}", "step": done, "detector_loss": 1 / step})
        shutil.copytree(config.model_dir, detector)
    heldout = config.n_heldout_prompts * config.heldout_images_per_prompt
    clean = _write_images(out / "synth" / name / "clean" / "heldout", heldout, seed=1)
    marked = _write_images(out / "synth" / name / "marked" / "heldout", heldout, seed=2)
    report = "\n".join(["# Phase 2 report", "", "## Phase 1 detector vs Phase 2 detector", "",
                        *(f"- {m}: accuracy 75.0% (Phase 1 detector 50.0%)" for m in config.methods)])
    (out / "report.md").write_text(report + "\n")
    note = f"fine-tuned detector ({name}) in {detector}\n" + "\n".join(
        f"{m}: accuracy 75.0% (Phase 1 detector 50.0%), {2 * heldout} held-out images" for m in config.methods)
    return JobOutcome(detector, done, note, report=report, heldout=(clean, marked))


def use_fake_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Swap the fake jobs into the registry for one test (call from an autouse fixture)."""
    jobs = registry.JOBS
    monkeypatch.setitem(jobs, "phase1", replace(jobs["phase1"], build=fake_phase1_job))
    monkeypatch.setitem(jobs, "phase2", replace(jobs["phase2"], build=fake_phase2_job))
