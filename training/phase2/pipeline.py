"""The whole of Phase 2 for one subject, as one job (``run_phase2``), resumable stage by stage.

1. watermark the subject's images X into X_w (``watermark_fraction`` < 1: only that share of X is
   watermarked, the rest copied clean; 0.25 is the paper's partially protected case);
2. personalize the base model on X and on X_w with each method;
3. synthesize S and S_w with each personalized model, on training, validation and held-out prompts
   (disjoint sets), every image with a seed of its own (``distinct_seeds``);
4. fine-tune the detector per method on the training S / S_w (and one on all methods together); the
   validation images choose the step kept and D's decision threshold (``finetune_detector``);
5. report on the held-out images: the Phase 1 detector vs each Phase 2 detector (accuracy, AUC,
   TPR at 1% FPR), and the cross-method matrix (fine-tuned on one method, tested on another).

Output folder (``out``); the tag (``Phase2Config.tag``) is empty at watermark_fraction 1 and p = 0.05, else
``_wf0.25`` and/or ``_p0.01``::

    data/X_w{tag}/                          watermarked copies of X (PNG)
    models/{method}/clean|marked{tag}/      personalizations (``personalize``)
    synth/{method}/clean|marked{tag}/train|validation|heldout/   PNGs + records.jsonl (``synthesize``)
    detectors{tag}/{method}|joint/           fine-tuned model folders (``finetune_detector``)
    report{tag}.json, report{tag}.md

Every stage skips work already done (a finished personalization, recorded images, a detector
fine-tuned with the same settings), so a cancelled or crashed run resumes by running it again, and
runs at several watermark fractions share the clean models and images. The key is never written.
Under ``accelerate launch`` every process takes part in personalization; the rest runs on the main
process only.
"""

from __future__ import annotations

import base64
import json
import math
import os
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from gwm_desktop.core.jobs import CancelToken, Progress
from training.datasets import list_images
from training.phase2.detector_finetune import (
    DetectorFinetuneConfig,
    detection_metrics,
    finetune_detector,
    score_images,
)
from training.phase2.personalize import (
    METHODS,
    PersonalizeConfig,
    inference_dtype,
    is_personalized,
    load_personalized,
    personalize,
    read_personalization,
)
from training.phase2.synthesize import load_prompts, synthesize

HELDOUT_SEED_OFFSET = 100_000
DEFAULT_P = 0.05  # the app's default level; other budgets get their own folders (Phase2Config.tag)
VALIDATION_SEED_OFFSET = 50_000


@dataclass
class Phase2Config:
    base: str                                       # HF id, diffusers folder or .safetensors
    images_dir: str                                 # the subject's images X
    out: str = "runs/phase2"
    methods: tuple[str, ...] = ("lora",)
    model_dir: str | None = None                    # watermark model (G + Phase 1 D); None: the shipped default
    key_file: str | None = None                     # raw 32-byte key or a `gwm profile export` JSON
    profile: str | None = None                      # a profile name (used when key_file is None; default "default")
    p: float = DEFAULT_P                            # LPIPS budget of X_w
    watermark_fraction: float = 1.0                 # share of X watermarked in X_w (0.25: the paper's partial case)
    prompts: str = "art"                            # "art" | "face" | a text file, one prompt per line
    n_train_prompts: int = 12
    n_heldout_prompts: int = 8
    n_validation_prompts: int = 4                   # choose D's step and threshold (0: last step, bias as trained)
    images_per_prompt: int = 4                      # seeds per training / validation prompt (distinct_seeds)
    heldout_images_per_prompt: int = 4              # held-out seeds per held-out prompt
    synth_steps: int = 30
    guidance: float = 7.5
    synth_resolution: int | None = None             # None: the personalization resolution
    synth_batch_size: int = 1
    negative_prompt: str | None = None
    # personalization (shared by every method; per-method overrides in method_overrides)
    instance_prompt: str = "a painting in the style of <sks>"
    placeholder_token: str = "<sks>"
    initializer_token: str = "painting"
    resolution: int = 512
    train_steps: int | None = None                  # None: each method's default (DB 400, LoRA 500, TI 2000)
    learning_rate: float | None = None              # None: each method's default (DB 5e-6, LoRA 1e-4, TI 5e-4)
    batch_size: int = 1
    gradient_accumulation: int = 1
    lora_rank: int = 4
    lora_targets: str = "attention"               # attention | transformer (personalize.LORA_TARGET_SETS)
    prior_preservation: bool = False
    class_prompt: str | None = None
    class_images_dir: str | None = None
    num_class_images: int = 100
    mixed_precision: str = "auto"
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # {"lora": {"train_steps": 300}}
    # detector fine-tuning
    finetune_steps: int = 300
    finetune_lr: float = 1e-3                      # chosen on validation images (training/miniature/README.md)
    finetune_batch_size: int = 16
    phase1_mix: float = 0.5
    phase1_data: list[str] = field(default_factory=list)  # folders; empty: the subject's own clean images X
    joint_detector: bool = True                     # also fine-tune one detector on all methods' images
    device: str = "auto"
    seed: int = 0
    threads: int = 0

    @property
    def tag(self) -> str:
        """Suffix of everything made from X_w: a run at another fraction or budget must not reuse models
        trained on other watermarked images (the personalization records know nothing of X_w)."""
        fraction = "" if self.watermark_fraction >= 1.0 else f"_wf{self.watermark_fraction:g}"
        return fraction + ("" if self.p == DEFAULT_P else f"_p{self.p:g}")

    def personalize_config(self, method: str) -> PersonalizeConfig:
        names = {f.name for f in fields(PersonalizeConfig)}
        values = {k: v for k, v in asdict(self).items() if k in names and k != "method"}
        values.update(self.method_overrides.get(method, {}))
        return PersonalizeConfig(method=method, **values)

    def finetune_config(self) -> DetectorFinetuneConfig:
        return DetectorFinetuneConfig(steps=self.finetune_steps, lr=self.finetune_lr,
                                      batch_size=self.finetune_batch_size, phase1_mix=self.phase1_mix, p=self.p,
                                      device=self.device, seed=self.seed, threads=self.threads)

    def validate(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"methods must be among {', '.join(METHODS)}, got {list(self.methods)}")
        if not 0 < self.watermark_fraction <= 1:
            raise ValueError("watermark_fraction must be in (0, 1]")
        if not 0 < self.p < 1:
            raise ValueError("p must be in (0, 1)")


def read_key(config: Phase2Config) -> bytes:
    """The profile key from ``key_file`` (raw bytes or a profile export) or the named profile; never logged."""
    from gwm_desktop.core.keys import KEY_BYTES

    if config.key_file:
        data = Path(config.key_file).read_bytes()
        if len(data) == KEY_BYTES:
            return data
        try:
            payload = json.loads(data.decode("utf-8"))
            return base64.b64decode(payload["key"], validate=True)
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, ValueError) as error:
            raise ValueError(f"{config.key_file} is neither a {KEY_BYTES}-byte key nor a profile export") from error
    from gwm_desktop.core.profiles import ProfileStore

    store = ProfileStore()
    return (store.get(config.profile) if config.profile else store.get_or_create_default()).key


def split_prompts(prompts: list[str], n_train: int, n_heldout: int, seed: int,
                  n_validation: int = 0) -> tuple[list[str], list[str], list[str]]:
    """Disjoint (training, held-out, validation) prompts, drawn from a seeded shuffle of the list."""
    if n_train + n_heldout + n_validation > len(prompts):
        raise ValueError(f"{n_train} training + {n_heldout} held-out + {n_validation} validation prompts requested, "
                         f"but only {len(prompts)} given")
    order = list(prompts)
    random.Random(seed).shuffle(order)
    heldout_end = n_train + n_heldout
    return order[:n_train], order[n_train:heldout_end], order[heldout_end:heldout_end + n_validation]


def distinct_seeds(first: int, n_prompts: int, per_prompt: int) -> list[list[int]]:
    """One list of ``per_prompt`` seeds for each prompt, no seed used twice.

    Why not the same seeds for every prompt: the seed fixes the starting noise, and in a small model
    (the miniature) it decides an image's composition more than the prompt does, so shared seeds made
    a split's images near-copies of one another across prompts, and validation images near-copies of
    the training ones.
    """
    return [[first + j * per_prompt + i for i in range(per_prompt)] for j in range(n_prompts)]


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _bank_is_per_view(detector_dir: Path) -> bool:
    """Whether a detector folder's calibration bank holds per-view evidence, as the scanner reads it;
    detectors written before it did (bits of one view) are fine-tuned again rather than reused."""
    from safetensors import safe_open

    from gwm_desktop.core.weights import CALIBRATION_FILE

    path = detector_dir / CALIBRATION_FILE
    if not path.exists():
        return False
    with safe_open(str(path), framework="pt") as bank:
        return len(bank.get_slice("clean_bits").get_shape()) == 3


class Phase2Run:
    """Paths, stage bookkeeping and the stages of one ``run_phase2``."""

    def __init__(self, config: Phase2Config, cancel: CancelToken | None = None) -> None:
        config.validate()
        self.config = config
        self.cancel = cancel or CancelToken()
        self.out = Path(config.out)
        self.images = list_images([Path(config.images_dir)])
        if not self.images:
            raise ValueError(f"no images in {config.images_dir}")
        prompts = load_prompts(config.prompts, config.placeholder_token)
        # Validation prompts come last in the shuffle, so adding them keeps the training and held-out split.
        self.train_prompts, self.heldout_prompts, self.validation_prompts = split_prompts(
            prompts, config.n_train_prompts, config.n_heldout_prompts, config.seed, config.n_validation_prompts)
        self.train_seeds = distinct_seeds(config.seed, len(self.train_prompts), config.images_per_prompt)
        self.validation_seeds = distinct_seeds(config.seed + VALIDATION_SEED_OFFSET, len(self.validation_prompts),
                                               config.images_per_prompt)
        self.heldout_seeds = distinct_seeds(config.seed + HELDOUT_SEED_OFFSET, len(self.heldout_prompts),
                                            config.heldout_images_per_prompt)
        self.marked_name = f"marked{config.tag}"
        self.done = 0
        self.total = self._count_units()
        self.started = time.monotonic()

    # -- paths ---------------------------------------------------------------------------------------
    @property
    def marked_images_dir(self) -> Path:
        return self.out / "data" / f"X_w{self.config.tag}"

    def model_dir(self, method: str, variant: str) -> Path:
        return self.out / "models" / method / variant

    def synth_dir(self, method: str, variant: str, split: str) -> Path:
        return self.out / "synth" / method / variant / split

    def detector_dir(self, name: str) -> Path:
        return self.out / f"detectors{self.config.tag}" / name

    def watermark_model_dir(self) -> Path:
        from gwm_desktop.core.engine import default_model_dir

        return Path(self.config.model_dir) if self.config.model_dir else default_model_dir()

    # -- progress ------------------------------------------------------------------------------------
    def _count_units(self) -> int:
        cfg = self.config
        n_methods = len(cfg.methods)
        steps = sum(2 * cfg.personalize_config(m).resolved_steps() for m in cfg.methods)
        synth = 2 * n_methods * sum(sum(map(len, seeds)) for _, _, seeds in self.synth_splits())
        detectors = n_methods + (1 if cfg.joint_detector and n_methods > 1 else 0)
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
        from gwm_desktop.core.atomic import write_atomic
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
        done_file.write_text(json.dumps(log, indent=2) + "\n", encoding="utf-8")

    def personalize_all(self) -> Iterator[Progress]:
        cfg = self.config
        for method in cfg.methods:
            pconfig = self.personalize_config_for(method)
            for variant, images in (("clean", Path(cfg.images_dir)), (self.marked_name, self.marked_images_dir)):
                folder = self.model_dir(method, variant)
                units = pconfig.resolved_steps()
                if self._personalization_current(folder, pconfig):
                    self.done += units
                    continue
                pconfig.resume = "latest"
                yield from self._relay(f"personalize {method} on {variant}",
                                       personalize(cfg.base, images, folder, pconfig, self.cancel), units)

    def personalize_config_for(self, method: str) -> PersonalizeConfig:
        # Device, seed and threads come from the run unless the method's overrides set them (a second
        # personalization seed is how the miniature measures run-to-run spread).
        return self.config.personalize_config(method)

    @staticmethod
    def _personalization_current(folder: Path, pconfig: PersonalizeConfig) -> bool:
        if not is_personalized(folder):
            return False
        saved = read_personalization(folder)
        same = dict(saved.get("config", {}))
        mine = asdict(pconfig)
        # A setting added after a folder was written had its default then (e.g. lora_targets).
        defaults = asdict(PersonalizeConfig(method=pconfig.method))
        ignore = {"resume", "device", "threads", "mixed_precision", "checkpoint_every", "keep_checkpoints"}
        return all(same.get(k, defaults[k]) == v for k, v in mine.items() if k not in ignore)

    def synthesize_all(self) -> Iterator[Progress]:
        from gwm_desktop.core.devices import resolve_device

        cfg = self.config
        device = resolve_device(cfg.device)
        for method in cfg.methods:
            pconfig = self.personalize_config_for(method)
            for variant in ("clean", self.marked_name):
                pipeline = None
                for split, prompts, seeds in self.synth_splits():
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

    def synth_splits(self) -> list[tuple[str, list[str], list[list[int]]]]:
        """(split, prompts, seeds per prompt) of every set synthesized per model; validation only when asked for."""
        splits = [("train", self.train_prompts, self.train_seeds), ("heldout", self.heldout_prompts, self.heldout_seeds)]
        if self.validation_prompts:
            splits.insert(1, ("validation", self.validation_prompts, self.validation_seeds))
        return splits

    def split_images(self, method: str, variant: str, split: str) -> list[Path]:
        """The images of this run's (prompt, seed) pairs in a synthesized set, sorted by (prompt, seed);
        files made for other prompts or seeds (an earlier run's settings) are left out."""
        from training.phase2.synthesize import read_records

        folder = self.synth_dir(method, variant, split)
        _, prompts, seeds = next(entry for entry in self.synth_splits() if entry[0] == split)
        wanted = {(prompt, seed) for prompt, own in zip(prompts, seeds, strict=True) for seed in own}
        files = {(r.prompt, r.seed): folder / r.file for r in read_records(folder)}
        return [files[pair] for pair in sorted(wanted) if pair in files and files[pair].exists()]

    def pairs_of(self, methods: list[str] | tuple[str, ...], split: str) -> tuple[list[Path], list[Path]]:
        """(S, S_w) of a split: the clean and the watermarked models' images, every method's together."""
        return ([path for m in methods for path in self.split_images(m, "clean", split)],
                [path for m in methods for path in self.split_images(m, self.marked_name, split)])

    def detector_sets(self) -> dict[str, list[str]]:
        methods = list(self.config.methods)
        sets = {m: [m] for m in methods}
        if self.config.joint_detector and len(methods) > 1:
            sets["joint"] = methods
        return sets

    def finetune_all(self, key: bytes) -> Iterator[Progress]:
        cfg = self.config
        ft = cfg.finetune_config()
        phase1 = list_images([Path(d) for d in cfg.phase1_data]) if cfg.phase1_data else self.images
        for name, methods in self.detector_sets().items():
            folder = self.detector_dir(name)
            settings = {"finetune": asdict(ft), "methods": methods, "personalization_tag": cfg.tag,
                        "train": [self.train_prompts, self.train_seeds],
                        "validation": [self.validation_prompts, self.validation_seeds]}
            stamp = folder / "phase2_settings.json"
            if (stamp.exists() and json.loads(stamp.read_text()) == settings and (folder / "manifest.json").exists()
                    and _bank_is_per_view(folder)):
                self.done += ft.steps
                continue
            clean, marked = self.pairs_of(methods, "train")
            validation = self.pairs_of(methods, "validation") if self.validation_prompts else None
            stamp.unlink(missing_ok=True)
            yield from self._relay(f"fine-tune detector {name}",
                                   finetune_detector(self.watermark_model_dir(), key, clean, marked, folder, ft,
                                                     phase1_images=phase1, cancel=self.cancel,
                                                     validation=validation), ft.steps)
            stamp.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")

    def evaluate(self, key: bytes) -> dict[str, Any]:
        """Held-out metrics: Phase 1 detector and every Phase 2 detector on every method's held-out S / S_w."""
        from gwm_desktop.core.devices import resolve_device
        from gwm_desktop.core.keys import message_from_key
        from gwm_desktop.core.weights import load_model

        cfg = self.config
        device = resolve_device(cfg.device)
        heldout = {m: self.pairs_of([m], "heldout") for m in cfg.methods}

        def metrics_for(model_dir: Path) -> dict[str, dict[str, Any]]:
            bundle = load_model(model_dir, device)
            message = message_from_key(key, bundle.n_bits)
            results = {}
            for method, (clean, marked) in heldout.items():
                results[method] = detection_metrics(score_images(bundle.detector, message, clean, device),
                                                    score_images(bundle.detector, message, marked, device))
            return results

        phase1 = metrics_for(self.watermark_model_dir())
        matrix = {name: metrics_for(self.detector_dir(name)) for name in self.detector_sets()}
        watermark_log = json.loads((self.marked_images_dir / "watermark.json").read_text())
        lpips_values = [e["lpips"] for e in watermark_log["images"].values() if e.get("marked")]
        return {
            "format": "gwm-phase2-report-v1",
            "config": {k: v for k, v in asdict(cfg).items() if k != "key_file"},
            "watermark_fraction": cfg.watermark_fraction,
            "subject": {"n_images": len(self.images), "n_watermarked": len(lpips_values),
                        "mean_lpips": sum(lpips_values) / len(lpips_values) if lpips_values else None},
            "prompts": {"train": self.train_prompts, "heldout": self.heldout_prompts,
                        "validation": self.validation_prompts, "train_seeds": self.train_seeds,
                        "validation_seeds": self.validation_seeds, "heldout_seeds": self.heldout_seeds},
            "selection": {name: _selection_summary(self.detector_dir(name)) for name in self.detector_sets()},
            "personalizations": {m: {v: _personalization_summary(self.model_dir(m, v))
                                     for v in ("clean", self.marked_name)} for m in cfg.methods},
            "phase1_detector": phase1,
            "phase2_detector": {m: matrix[m][m] for m in cfg.methods},
            "cross_method": {name: results for name, results in matrix.items()},
            "elapsed_s": round(time.monotonic() - self.started, 1),
        }

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


def _personalization_summary(folder: Path) -> dict[str, Any]:
    saved = read_personalization(folder)
    return {k: saved.get(k) for k in ("method", "steps_done", "learning_rate", "mixed_precision", "n_images")}


def _selection_summary(detector_dir: Path) -> dict[str, Any] | None:
    """What the validation images chose for a fine-tuned detector (None without validation)."""
    manifest = json.loads((detector_dir / "manifest.json").read_text(encoding="utf-8"))
    selection = (manifest.get("metrics") or {}).get("selection")
    return None if selection is None else {k: v for k, v in selection.items() if k != "history"}


def run_phase2(config: Phase2Config, cancel: CancelToken | None = None) -> Iterator[Progress]:
    """Run (or resume) Phase 2 for one subject; the last Progress's payload holds ``{"report": ...}``.

    Progress.done/total count work units (images watermarked, training steps, images synthesized,
    detector steps); ``payload["stage"]`` names the stage and ``payload["sub"]`` is the sub-job's own
    Progress. Cancelling stops between units; rerunning resumes.
    """
    yield from Phase2Run(config, cancel).run()


def install_detector(detector_dir: Path, profile_folder: Path) -> Path:
    """Copy a fine-tuned model folder into a profile (``<profile>/detector``), where the scanner picks it up."""
    target = Path(profile_folder) / "detector"
    staging = Path(profile_folder) / ".detector.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(detector_dir, staging, ignore=shutil.ignore_patterns("phase2_settings.json"))
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return target


__all__ = ["Phase2Config", "Phase2Run", "distinct_seeds", "install_detector", "read_key", "run_phase2",
           "split_prompts"]
