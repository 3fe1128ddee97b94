"""Phase 2 of GenWatermark: personalize a text-to-image model on X and X_w, synthesize S and S_w,
fine-tune the detector on them, and report on held-out prompts and seeds.

Every long job is a generator of ``gwm_desktop.core.jobs.Progress`` that takes a ``CancelToken``
(the CLI drives it with a progress bar, the GUI with a worker, tests directly). Heavy modules
(diffusers, transformers, peft, accelerate) load only when a job runs.
"""
