"""The real Phase 1 and Phase 2 jobs end to end, driven as the Advanced tab's worker drives them (no Qt):
the GUI tests use fakes of these (tests/jobs/fake.py), so this is where the real ones are run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gwm_desktop.core.jobs import CancelToken, JobCancelled, Progress
from gwm_desktop.jobs.registry import start
from gwm_desktop.jobs.spec import JobSpec
from tests.training.phase2_tiny import (
    save_tiny_pipeline,
    single_thread_torch,
    tiny_watermark_model,
    write_subject_images,
)

pytestmark = pytest.mark.slow

TINY = {"resolution": 32, "synth_steps": 2, "n_train_prompts": 2, "n_heldout_prompts": 2, "images_per_prompt": 2,
        "heldout_images_per_prompt": 2, "finetune_steps": 4, "finetune_batch_size": 4, "checkpoint_every": 0,
        "method_overrides": {"lora": {"validation_images": 0, "train_steps": 2}}}


@pytest.fixture(autouse=True)
def _one_thread():
    yield from single_thread_torch()


def drive(spec: JobSpec, cancel: CancelToken | None = None,
          on_progress: Callable[[Progress], None] | None = None) -> tuple[Any, list[Progress]]:
    """Run a job as the GUI worker does; returns (its outcome, every Progress it yielded)."""
    job = start(spec)(cancel or CancelToken())
    seen = []
    while True:
        try:
            progress = next(job)
        except StopIteration as finished:
            return finished.value, seen
        seen.append(progress)
        if on_progress is not None:
            on_progress(progress)


def test_phase1_completes_then_a_cancelled_run_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    data = tmp_path / "train"
    write_subject_images(data, n=8, size=96)
    spec = JobSpec("phase1", [str(data)], str(tmp_path / "run"), steps=2, batch_size=2, device="cpu")
    outcome, seen = drive(spec)
    assert (outcome.model_dir / "manifest.json").exists() and outcome.steps_done == 2
    assert [p.payload["step"] for p in seen if "step" in (p.payload or {})] == [1, 2]

    cancel, steps = CancelToken(), []

    def cancel_at_first_step(progress: Progress) -> None:
        if (progress.payload or {}).get("step"):
            steps.append(progress.done)
            cancel.cancel()

    resumed = JobSpec("phase1", [str(data)], spec.out, steps=500, batch_size=2, device="cpu", resume=True)
    with pytest.raises(JobCancelled):
        drive(resumed, cancel, cancel_at_first_step)
    assert steps == [3]  # continued after the 2 finished steps
    assert list((Path(spec.out) / "checkpoints").iterdir())


def test_phase2_completes_then_resumes_or_starts_over(tmp_path: Path) -> None:
    write_subject_images(tmp_path / "X", n=3, size=40)
    (tmp_path / "key.bin").write_bytes(bytes(range(32)))
    extra = {**TINY, "base": str(save_tiny_pipeline(tmp_path / "base")), "methods": ("lora",),
             "key_file": str(tmp_path / "key.bin")}
    run = tmp_path / "run"
    spec = JobSpec("phase2", [str(tmp_path / "X")], str(run), steps=2, device="cpu",
                   init_from=str(tiny_watermark_model(tmp_path / "wm")), extra=extra)
    outcome, seen = drive(spec)
    assert outcome.model_dir == run / "detectors" / "lora" and (outcome.model_dir / "manifest.json").exists()
    assert (run / "report.md").exists() and outcome.note.splitlines()[1].startswith("lora: accuracy ")
    assert "Phase 1 detector vs Phase 2 detector" in outcome.report
    # the Advanced tab's report view and the job's note give each model's verdict (and its clean twin's)
    assert "| lora | personalized on X_w | 4 |" in outcome.report and "| lora | clean twin (on X) | 4 |" in outcome.report
    assert "model-level p " in outcome.note and "clean twin " in outcome.note
    clean, marked = outcome.heldout
    assert len(clean) == len(marked) == 4  # 2 held-out prompts x 2 seeds
    stages = {p.payload.get("stage", "") for p in seen if p.payload}
    assert {"personalize lora on clean", "personalize lora on marked", "fine-tune detector lora"} <= stages
    curves = {k for p in seen for k in (p.payload or {}) if k.endswith("_loss")}
    assert curves == {"personalize_loss", "detector_loss"}

    spec.resume = True
    _, again = drive(spec)
    assert not [p for p in again if "step" in (p.payload or {})]  # every stage reused

    stale = run / "synth" / "stale.txt"
    stale.write_text("from an earlier run")
    spec.resume = False
    _, over = drive(spec)
    assert not stale.exists() and over[0].message.startswith("Starting over")
    assert "personalize lora on marked" in {p.payload.get("stage") for p in over if p.payload}
