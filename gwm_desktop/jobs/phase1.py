"""Phase 1 (G and D trained jointly) as a job: a ``JobSpec`` becomes a ``Phase1Config`` run."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

from gwm_desktop.core.jobs import CancelToken, JobCancelled, Progress
from gwm_desktop.jobs.spec import JobOutcome, JobSpec

PHASE1_CURVES = ("loss_d", "loss_g", "lpips", "bit_acc", "agree_marked")


def phase1_job(spec: JobSpec, cancel: CancelToken) -> Iterator[Progress]:
    """Checkpoints on cancel too, so Resume continues where it stopped; returns a ``JobOutcome``."""
    from training.checkpoints import save_checkpoint
    from training.phase1 import Phase1Trainer
    from training.phase1_config import Phase1Config

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
