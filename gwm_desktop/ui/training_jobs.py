"""The seam between the Advanced tab and training code: a ``JobSpec`` becomes a core generator.

Each kind of job registers a ``TrainingJob``: a title, whether its code is installed, and ``build``,
which returns a generator of ``Progress`` (payload: a metrics dict) and finally returns a
``JobOutcome``. The tab knows nothing about Phase 1 or Phase 2 beyond this; new jobs plug in by
adding an entry to ``JOBS``.
"""

from __future__ import annotations

import importlib.util
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gwm_desktop.core.jobs import CancelToken, JobCancelled, Progress


@dataclass
class JobSpec:
    kind: str
    data: list[str]
    out: str
    steps: int = 200
    batch_size: int = 4
    device: str = "auto"
    resume: bool = False
    init_from: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobOutcome:
    model_dir: Path | None
    steps_done: int
    note: str = ""                                    # where the result is; further lines: headline figures
    report: str = ""                                  # markdown the tab shows after the run (Phase 2)
    heldout: tuple[list[Path], list[Path]] | None = None  # (clean, watermarked) images to judge the new detector
                                                      # on before installing it; None: watermark the job's images


PHASE1_CURVES = ("loss_d", "loss_g", "lpips", "bit_acc", "agree_marked")


@dataclass(frozen=True)
class TrainingJob:
    kind: str
    title: str
    module: str
    build: Callable[[JobSpec, CancelToken], Iterator[Progress]] | None
    description: str
    requires: tuple[str, ...] = ()        # third-party packages the job needs (found, never imported here)
    curves: tuple[str, ...] = PHASE1_CURVES  # payload keys plotted (the first four) and shown

    def missing(self) -> str | None:
        for name in (self.module, *self.requires):
            try:
                found = importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                return name
        return None

    def available(self) -> bool:
        return self.build is not None and self.missing() is None

    def unavailable_reason(self) -> str:
        if self.available():
            return ""
        missing = self.missing()
        return f"not installed yet ({missing} is missing)" if missing else "not available yet"


def phase1_job(spec: JobSpec, cancel: CancelToken) -> Iterator[Progress]:
    """Phase 1 (G and D jointly); checkpoints on cancel too, so Resume continues where it stopped."""
    from training.checkpoints import save_checkpoint
    from training.phase1 import Phase1Config, Phase1Trainer

    yield Progress(0, spec.steps, "Loading networks and images…", {})
    config = Phase1Config(data=list(spec.data), out=spec.out, steps=spec.steps, batch_size=spec.batch_size,
                          device=spec.device, resume="latest" if spec.resume else None, init_from=spec.init_from,
                          checkpoint_every=max(1, min(200, spec.steps)), **spec.extra)
    trainer = Phase1Trainer(config, cancel)
    if trainer.step >= spec.steps:
        yield Progress(trainer.step, spec.steps, f"Already at step {trainer.step}; raise Steps to train further", {})
    saved_at = trainer.step
    try:
        yield from trainer.run()
    except (JobCancelled, GeneratorExit):
        if trainer.step > saved_at:
            save_checkpoint(trainer.state(), Path(spec.out) / "checkpoints", trainer.step, config.keep_checkpoints)
        raise
    model_dir = Path(spec.out) / "model"
    command = "gwm train phase1 " + " ".join(
        shlex.quote(a) for a in [*(x for d in spec.data for x in ("--data", d)), "--out", spec.out,
                                 "--steps", str(spec.steps), "--batch-size", str(spec.batch_size)])
    trainer.export(model_dir, command)
    return JobOutcome(model_dir, trainer.step, f"model written to {model_dir}")


def phase2_job(spec: JobSpec, cancel: CancelToken) -> Iterator[Progress]:
    """Phase 2 for one subject (see ``gwm_desktop.ui.phase2_run`` for how a JobSpec maps to it)."""
    from gwm_desktop.ui import phase2_run

    return (yield from phase2_run.run(spec, cancel))


JOBS: dict[str, TrainingJob] = {
    "phase1": TrainingJob("phase1", "Phase 1: train watermark generator and detector", "training.phase1", phase1_job,
                          "Joint training of G and D on a general image folder (fine-tunes the shipped model "
                          "when “Start from the shipped model” is on)."),
    "phase2": TrainingJob("phase2", "Phase 2: fine-tune on synthesized images", "training.phase2", phase2_job,
                          "Personalise a Stable Diffusion model on your art (clean and watermarked), then "
                          "fine-tune the detector on what it generates and report held-out accuracy.",
                          requires=("diffusers", "transformers", "accelerate", "peft"),
                          curves=("personalize_loss", "detector_loss")),
}


def start(spec: JobSpec) -> Callable[[CancelToken], Iterator[Progress]]:
    job = JOBS[spec.kind]
    if not job.available():
        raise RuntimeError(f"{job.title}: {job.unavailable_reason()}")
    assert job.build is not None
    return lambda cancel: job.build(spec, cancel)
