"""The training jobs the Advanced tab offers: each kind registers a ``TrainingJob`` in ``JOBS``.

A job has a title, the modules it needs (found, never imported, so listing jobs stays cheap) and
``build``, which returns a generator of ``Progress`` (payload: a metrics dict) that finally returns a
``JobOutcome``. New jobs plug in by adding an entry; tests swap in a fake one.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gwm_desktop.core.jobs import CancelToken, Progress
from gwm_desktop.jobs.phase1 import PHASE1_CURVES, phase1_job
from gwm_desktop.jobs.phase2 import PHASE2_CURVES, phase2_job
from gwm_desktop.jobs.spec import JobSpec

JobBuilder = Callable[[JobSpec, CancelToken], Iterator[Progress]]


@dataclass(frozen=True)
class TrainingJob:
    kind: str
    title: str
    module: str
    build: JobBuilder | None
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


JOBS: dict[str, TrainingJob] = {
    "phase1": TrainingJob("phase1", "Phase 1: train watermark generator and detector", "training.phase1", phase1_job,
                          "Joint training of G and D on a general image folder (fine-tunes the shipped model "
                          "when “Start from the shipped model” is on)."),
    "phase2": TrainingJob("phase2", "Phase 2: fine-tune on synthesized images", "training.phase2", phase2_job,
                          "Personalise a Stable Diffusion model on your art (clean and watermarked), then "
                          "fine-tune the detector on what it generates and report held-out accuracy.",
                          requires=("diffusers", "transformers", "accelerate", "peft"), curves=PHASE2_CURVES),
}


def start(spec: JobSpec) -> Callable[[CancelToken], Iterator[Progress]]:
    """The job factory a worker runs, or RuntimeError (a one-line reason) when the job cannot run here."""
    job = JOBS[spec.kind]
    build = job.build
    if build is None or not job.available():
        raise RuntimeError(f"{job.title}: {job.unavailable_reason()}")
    return lambda cancel: build(spec, cancel)
