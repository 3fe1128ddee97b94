"""Phase 2 as a job: a ``JobSpec`` becomes a ``Phase2Config``; progress is relayed, the report returned.

How the JobSpec maps (every other ``Phase2Config`` field keeps its default unless ``extra`` sets it):
``data[0]`` is the subject's images, ``out`` the run folder; ``steps`` the personalization steps of a
method with no ``extra["method_overrides"][method]["train_steps"]``; ``init_from`` the watermark model
(None: the shipped one); ``resume`` True reuses every stage the last run in ``out`` finished, False
deletes those outputs first; ``extra`` holds ``base`` (required), ``methods``, ``prompts``,
``key_file`` or ``profile`` and any other field. The outcome's ``model_dir`` is the detector
``gwm train phase2 --install`` would install, ``heldout`` the images the install step judges it on.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gwm_desktop.core.jobs import CancelToken, Progress
from gwm_desktop.jobs.spec import JobOutcome, JobSpec

if TYPE_CHECKING:
    from training.phase2.config import Phase2Config

OUTPUT_DIRS = ("data", "models", "synth")  # with detectors*/ and report*.json/.md: what start-over deletes
PHASE2_CURVES = ("personalize_loss", "detector_loss")


HUB_ID = re.compile(r"^[\w.\-]+/[\w.\-]+$")
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")


def base_model_problem(base: str) -> str | None:
    """Why ``base`` cannot be a Phase 2 base model, in a sentence for the form (None: it looks usable; a hub
    id is checked when the run loads it), so a bad path is refused before anything starts."""
    if not base:
        return ("Choose a base model: a Hugging Face id such as stable-diffusion-v1-5/stable-diffusion-v1-5, "
                "a diffusers folder or a .safetensors file.")
    path = Path(base).expanduser()
    if path.is_dir():
        return None if (path / "model_index.json").exists() else \
            f"{path} is not a diffusers model folder (it has no model_index.json)."
    if path.is_file():
        return None if path.suffix.lower() in CHECKPOINT_SUFFIXES else \
            f"{path} is not a model file (.safetensors or .ckpt)."
    if HUB_ID.match(base) and not base.startswith((".", "~")):
        return None
    return f"The base model {base} does not exist (neither a folder, a file nor a Hugging Face id)."


def config_from_spec(spec: JobSpec) -> Phase2Config:
    from training.phase2.config import Phase2Config

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


def start_over(out: Path) -> Iterator[Progress]:
    """Delete what an earlier run left in ``out`` (saying so first), so every stage runs again."""
    earlier = earlier_outputs(out)
    if earlier:
        yield Progress(0, 1, f"Starting over: deleting the last Phase 2 run's results in {out}", {})
    for path in earlier:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def prepare_run(spec: JobSpec) -> Generator[Progress, None, Phase2Config]:
    """The spec's ``Phase2Config``, after clearing the last run's outputs unless the spec resumes."""
    config = config_from_spec(spec)
    if not spec.resume:
        yield from start_over(Path(config.out))
    return config


def headline(report: dict[str, Any]) -> str:
    """One line per method: held-out accuracy and AUC of the Phase 2 detector vs the Phase 1 detector, and
    the model-level p-value of the model personalized on X_w and of its clean twin."""
    from training.phase2.report import number as num
    from training.phase2.report import p_text
    from training.phase2.report import percent as pct

    lines = []
    for method, new in report["phase2_detector"].items():
        old = report["phase1_detector"][method]
        line = (f"{method}: accuracy {pct(new['accuracy'])} (Phase 1 detector {pct(old['accuracy'])}), "
                f"AUC {num(new['auc'])} (Phase 1 {num(old['auc'])}), {new['n']} held-out images")
        verdict = (report.get("verdict") or {}).get(method)
        if verdict:
            line += (f"; model-level p {p_text(verdict['marked'])} "
                     f"(clean twin {p_text(verdict['clean'])})")
        lines.append(line)
    return "\n".join(lines)


def _relayed(progress: Progress) -> dict[str, Any]:
    """The payload the tab plots: the stage, and a loss curve point for training steps."""
    payload = progress.payload or {}
    sub = payload.get("sub")
    metrics = sub.payload if sub is not None and isinstance(sub.payload, dict) else {}
    stage = payload.get("stage", "")
    relayed: dict[str, Any] = {"stage": stage} if stage else {}
    if "step" in metrics and isinstance(metrics.get("loss"), (int, float)):
        curve = "detector_loss" if stage.startswith("fine-tune") else "personalize_loss"
        relayed.update({"step": progress.done, curve: float(metrics["loss"])})
    return relayed


def phase2_job(spec: JobSpec, cancel: CancelToken) -> Iterator[Progress]:
    """Run (or resume) Phase 2 for one subject; returns a ``JobOutcome`` with the report."""
    from training.phase2.pipeline import Phase2Run
    from training.phase2.report import render_markdown
    from training.phase2_methods import installed_detector

    config = yield from prepare_run(spec)
    out = Path(config.out)
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
        if "report" in (progress.payload or {}):
            report = progress.payload["report"]
        yield Progress(progress.done, progress.total, progress.message, _relayed(progress))
    if report is None:
        raise RuntimeError("Phase 2 ended without a report")
    name = installed_detector(config.methods, config.joint_detector)
    model_dir = phase2.detector_dir(name)
    clean, marked = phase2.sets_of(config.methods, "heldout")
    report_path = out / f"report{config.tag}.md"
    note = (f"fine-tuned detector ({name}) in {model_dir}; report in {report_path}\n" + headline(report))
    return JobOutcome(model_dir, phase2.done, note, report=render_markdown(report), heldout=(clean, marked))
