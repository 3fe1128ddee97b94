"""Phase 2 of GenWatermark: personalize a text-to-image model on X and X_w, synthesize S and S_w,
fine-tune the detector on them, and report on held-out prompts and seeds.

Every long job is a generator of ``gwm_desktop.core.jobs.Progress`` that takes a ``CancelToken``
(the house style: the CLI drives it with a progress bar, the GUI with a worker, tests directly).
``drive`` runs one with a plain callback for callers that prefer that. Heavy modules (diffusers,
transformers, peft, accelerate) load only when a job runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from gwm_desktop.core.jobs import Progress


def drive(job: Iterator[Progress], on_progress: Callable[[Progress], None] | None = None) -> Progress | None:
    """Run ``job`` to the end, calling ``on_progress`` with each record; returns the last record.

    Cancel through the job's ``CancelToken`` (from another thread, or from the callback itself): the job
    raises ``JobCancelled`` between units, which propagates from here.
    """
    last = None
    for last in job:
        if on_progress is not None:
            on_progress(last)
    return last
