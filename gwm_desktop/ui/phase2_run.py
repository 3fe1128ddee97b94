"""Phase 2 as an Advanced-tab job: a ``JobSpec`` becomes a ``Phase2Config``; progress is relayed, the report returned.

How the JobSpec maps (everything else in ``Phase2Config`` keeps its default unless ``extra`` sets it):

* ``data[0]``: the subject's images X; ``out``: the run folder (``data/ models/ synth/ detectors/ report.md``);
* ``steps``: personalization steps of each method that has no count of its own in
  ``extra["method_overrides"][method]["train_steps"]`` (the tab's form always gives one per method);
* ``device``; ``init_from``: the watermark model (G and the Phase 1 detector), None: the shipped one;
* ``resume``: Phase 2 caches stage by stage, so True reuses everything the last run in ``out`` finished
  (watermarked X, personalizations, synthesized images, fine-tuned detectors made with the same settings)
  and continues an interrupted personalization from its last checkpoint; False deletes those outputs
  first and starts over;
* ``extra``: ``Phase2Config`` fields: ``base`` (required), ``methods``, ``prompts``, ``key_file`` (the tab
  passes the profile's own ``key.bin``, so the key is never copied) or ``profile``, and any other field.

The outcome's ``model_dir`` is the fine-tuned detector folder (the joint one with several methods, as
``gwm train phase2 --install`` picks), its ``note`` the headline figures, ``report`` the markdown report
and ``heldout`` the held-out images the install step judges detectors on. Qt-free.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gwm_desktop.core.jobs import CancelToken, Progress
from gwm_desktop.ui.training_jobs import JobOutcome, JobSpec

OUTPUT_DIRS = ("data", "models", "synth")  # with detectors*/ and report*.json/.md: what start-over deletes


def config_from_spec(spec: JobSpec):  # noqa: ANN201 - Phase2Config (imported lazily)
    from training.phase2.pipeline import Phase2Config

    extra: dict[str, Any] = dict(spec.extra)
    if not extra.get("base"):
        raise ValueError("Phase 2 needs a base model (extra['base']): a Hugging Face id, a diffusers folder "
                         "or a .safetensors file")
    if not spec.data or not spec.data[0]:
        raise ValueError("Phase 2 needs the folder of the subject's images")
    extra["methods"] = tuple(extra.get("methods", ("lora",)))
    extra.setdefault("train_steps", spec.steps)
    extra.setdefault("model_dir", spec.init_from)
    return Phase2Config(images_dir=spec.data[0], out=spec.out, device=spec.device, **extra)


def earlier_outputs(out: Path) -> list[Path]:
    """What an earlier Phase 2 run left in ``out`` (and start-over deletes)."""
    out = Path(out)
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir()
                  if p.name in OUTPUT_DIRS or p.name.startswith(("detectors", "report")))


def detector_name(config: Any) -> str:
    return "joint" if config.joint_detector and len(config.methods) > 1 else config.methods[0]


def headline(report: dict[str, Any]) -> str:
    """One line per method: held-out accuracy and AUC of the Phase 2 detector vs the Phase 1 detector."""
    from training.phase2.report import number as num
    from training.phase2.report import percent as pct

    lines = []
    for method, new in report["phase2_detector"].items():
        old = report["phase1_detector"][method]
        lines.append(f"{method}: accuracy {pct(new['accuracy'])} (Phase 1 detector {pct(old['accuracy'])}), "
                     f"AUC {num(new['auc'])} (Phase 1 {num(old['auc'])}), {new['n']} held-out images")
    return "\n".join(lines)


def run(spec: JobSpec, cancel: CancelToken) -> Iterator[Progress]:
    from training.phase2.pipeline import Phase2Run
    from training.phase2.report import render_markdown

    config = config_from_spec(spec)
    out = Path(config.out)
    if not spec.resume and earlier_outputs(out):
        yield Progress(0, 1, f"Starting over: deleting the last Phase 2 run's results in {out}", {})
        for path in earlier_outputs(out):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    phase2 = Phase2Run(config, cancel)
    steps = ", ".join(f"{m} {config.personalize_config(m).resolved_steps()} steps" for m in config.methods)
    per_model = sum(map(len, phase2.train_seeds))
    validation_per_model = sum(map(len, phase2.validation_seeds))
    heldout_per_model = sum(map(len, phase2.heldout_seeds))
    yield Progress(phase2.done, phase2.total,
                   f"Phase 2 on {len(phase2.images)} subject images with {config.base}; {steps} (each twice: clean "
                   f"and watermarked X), {per_model} training + {validation_per_model} validation + "
                   f"{heldout_per_model} held-out images per model, "
                   f"{config.finetune_steps} detector steps" + (" (reusing finished stages)" if spec.resume else ""),
                   {})
    report = None
    for progress in phase2.run():
        payload = progress.payload or {}
        sub = payload.get("sub")
        metrics = sub.payload if sub is not None and isinstance(sub.payload, dict) else {}
        stage = payload.get("stage", "")
        if "report" in payload:
            report = payload["report"]
        relayed: dict[str, Any] = {"stage": stage} if stage else {}
        if "step" in metrics and isinstance(metrics.get("loss"), (int, float)):
            curve = "detector_loss" if stage.startswith("fine-tune") else "personalize_loss"
            relayed.update({"step": progress.done, curve: float(metrics["loss"])})
        yield Progress(progress.done, progress.total, progress.message, relayed)
    if report is None:
        raise RuntimeError("Phase 2 ended without a report")
    name = detector_name(config)
    model_dir = phase2.detector_dir(name)
    methods = config.methods
    clean, marked = phase2.pairs_of(methods, "heldout")
    report_path = out / f"report{config.tag}.md"
    note = (f"fine-tuned detector ({name}) in {model_dir}; report in {report_path}\n" + headline(report))
    return JobOutcome(model_dir, phase2.done, note, report=render_markdown(report), heldout=(clean, marked))
