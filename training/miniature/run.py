"""The miniature world, end to end, in one command (CPU, <= 60 minutes; every stage cached).

    python -m training.miniature.run [--quick] [--out runs/miniature] [--threads 2]

1. corpus (portraits + scikit-image samples + filtered "paintings") at 64 px, captioned;
2. latent autoencoder (AutoencoderKL, 4x) trained on it; held-out PSNR;
3. text encoder + prior (latent DDPM UNet with cross-attention) pretrained together, saved as a
   standard ``StableDiffusionPipeline`` folder (``base_pipeline``) that reloads with ``from_pretrained``;
4. a watermark model (G, D) for 64 px by ``training.phase1``;
5. Phase 2 through ``training.phase2.pipeline.run_phase2`` (the code path a Hugging Face model takes):
   X -> X_w, personalize on both with DreamBooth, LoRA and Textual Inversion, synthesize S / S_w on
   training and held-out prompts and seeds, fine-tune the detector, report; then the 1/4-watermarked case.

``--quick`` runs every stage at toy size (for the test suite); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from training.miniature.autoencoder import AutoencoderConfig
from training.miniature.data import INSTANCE_PROMPT, SUBJECT_COUNT, SUBJECT_PROMPTS, prepare_subject
from training.miniature.prior import PriorConfig
from training.miniature.watermark import ensure_autoencoder_aware_watermark
from training.miniature.world import (
    WatermarkStageConfig,
    WorldConfig,
    ensure_autoencoder,
    ensure_base_pipeline,
    ensure_watermark_model,
)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PLACEHOLDER = "<sks>"

# Personalization settings scaled from the community defaults (diffusers' examples for SD 1.x):
# * DreamBooth: SD 5e-6 = 1/20 of SD's pretraining lr (1e-4); our prior pretrains at 5e-4 -> 2.5e-5.
#   400 steps at batch 1 as in the example (33 passes over 12 images).
# * LoRA: the example's 1e-4 is 20x DreamBooth's lr -> 5e-4; rank 4 (relatively larger here: attention
#   widths 32-64 vs 320-1280); 500 steps at batch 1.
# * Textual Inversion: 5e-4 x batch 4 (scale_lr) as the example; 3,000 steps there, 600 here (the
#   embedding has 64 dims, not 768), initialised from "painting".
FULL_PERSONALIZATION: dict[str, dict[str, Any]] = {
    "dreambooth": {"learning_rate": 2.5e-5, "train_steps": 400, "batch_size": 1},
    "lora": {"learning_rate": 5e-4, "train_steps": 500, "batch_size": 1, "lora_rank": 4},
    "textual_inversion": {"learning_rate": 5e-4, "train_steps": 600, "batch_size": 4, "scale_lr": True},
}


@dataclass
class MiniatureConfig:
    out: Path = Path("runs/miniature")
    quick: bool = False
    threads: int = 2
    methods: tuple[str, ...] = ("dreambooth", "lora", "textual_inversion")
    quarter_methods: tuple[str, ...] = ("dreambooth", "lora", "textual_inversion")
    world: WorldConfig = field(default_factory=WorldConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    watermark: WatermarkStageConfig = field(default_factory=WatermarkStageConfig)
    personalization: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(FULL_PERSONALIZATION))
    subject_count: int = SUBJECT_COUNT
    phase2: dict[str, Any] = field(default_factory=dict)    # Phase2Config overrides


def full_config(out: Path, threads: int) -> MiniatureConfig:
    world = WorldConfig(out=out, portraits=SHARED_DATA / "portraits", paintings=SHARED_DATA / "paintings",
                        extra=[Path("runs/data/skimage")])
    phase2 = {"n_train_prompts": 8, "n_validation_prompts": 4, "n_heldout_prompts": 4, "images_per_prompt": 8,
              "heldout_images_per_prompt": 10,
              "synth_steps": 25, "guidance": 7.5, "synth_batch_size": 16, "finetune_steps": 300}
    return MiniatureConfig(out=out, threads=threads, world=world, phase2=phase2)


def quick_config(out: Path, threads: int) -> MiniatureConfig:
    """Every stage at toy size: seconds per stage. Checks the plumbing, not the science."""
    world = WorldConfig(out=out, portraits=SHARED_DATA / "portraits", paintings=SHARED_DATA / "paintings",
                        extra=[], resolution=32, max_corpus=24, sample_steps=2,
                        autoencoder=AutoencoderConfig(steps=3, batch_size=4, channels=(16, 16, 16), crop=0,
                                                      resolution=32, checkpoint_every=2))
    prior = PriorConfig(steps=3, batch_size=4, channels=(16, 32), cross_attention_dim=32, checkpoint_every=2)
    personalization = {m: {"train_steps": 2, "batch_size": 1, "validation_images": 0} for m in FULL_PERSONALIZATION}
    phase2 = {"n_train_prompts": 2, "n_validation_prompts": 1, "n_heldout_prompts": 2, "images_per_prompt": 1,
              "heldout_images_per_prompt": 2,
              "synth_steps": 2, "guidance": 2.0, "synth_batch_size": 4, "finetune_steps": 2, "finetune_batch_size": 4}
    return MiniatureConfig(out=out, quick=True, threads=threads, world=world, prior=prior,
                           watermark=WatermarkStageConfig(steps=2, warmup_steps=1, batch_size=4, max_images=8,
                                                          autoencoder_steps=2, autoencoder_batch_size=4, tile=32),
                           personalization=personalization, subject_count=4, phase2=phase2,
                           quarter_methods=("lora",))


def demo_key(out: Path) -> Path:
    """A fixed key for the miniature's one subject (a demo, not a user's secret): reproducible runs."""
    path = out / "subject.key"
    if not path.exists():
        path.write_bytes(hashlib.sha256(b"gwm-miniature-subject-key").digest())
    return path


def phase2_config(cfg: MiniatureConfig, base: Path, subject: Path, watermark_model: Path, key: Path,
                  fraction: float, methods: tuple[str, ...]) -> Any:
    from training.phase2.pipeline import Phase2Config

    prompts = cfg.out / "prompts.txt"
    prompts.write_text("\n".join(SUBJECT_PROMPTS) + "\n", encoding="utf-8")
    overrides = {m: dict(v) for m, v in cfg.personalization.items()}
    settings: dict[str, Any] = dict(
        p=0.05, prompts=str(prompts), instance_prompt=INSTANCE_PROMPT, placeholder_token=PLACEHOLDER,
        initializer_token="painting", resolution=cfg.world.resolution, checkpoint_every=100, device="cpu", seed=0,
        threads=cfg.threads)
    settings.update(cfg.phase2)  # --phase2 may change any of these
    return Phase2Config(base=str(base), images_dir=str(subject), out=str(cfg.out / "phase2"), methods=methods,
                        model_dir=str(watermark_model), key_file=str(key), watermark_fraction=fraction,
                        method_overrides=overrides, **settings)


def run_phase2_logged(config: Any, log: Any) -> dict[str, Any]:
    from training.phase2.pipeline import run_phase2

    last_stage, stage_started, report = None, time.monotonic(), None
    for progress in run_phase2(config):
        payload = progress.payload or {}
        stage = payload.get("stage", "")
        if stage != last_stage:
            if last_stage is not None:
                log(f"  {last_stage}: {time.monotonic() - stage_started:.0f} s")
            last_stage, stage_started = stage, time.monotonic()
        if "report" in payload:
            report = payload["report"]
    assert report is not None
    return report


def vae_survival(vae_dir: Path, watermark_model: Path, key: Path, clean_dir: Path, marked_dir: Path) -> dict[str, Any]:
    """Phase 1 detector on the subject's X vs X_w, directly and after the autoencoder's round trip."""
    from diffusers import AutoencoderKL

    from gwm_desktop.core.keys import message_from_key
    from gwm_desktop.core.weights import load_model
    from training.datasets import list_images
    from training.miniature.autoencoder import round_trip
    from training.phase2.detector_finetune import as_float, detection_metrics, load_detector_images

    bundle = load_model(watermark_model, "cpu")
    message = message_from_key(key.read_bytes(), bundle.n_bits).view(1, -1)
    vae = AutoencoderKL.from_pretrained(str(vae_dir)).eval()
    size = bundle.detector.working_size
    names = {p.name for p in list_images([marked_dir])}
    clean = as_float(load_detector_images([p for p in list_images([clean_dir]) if p.name in names], size, bundle.detector.isotropic), "cpu")
    marked = as_float(load_detector_images(list_images([marked_dir]), size, bundle.detector.isotropic), "cpu")
    out = {}
    with torch.no_grad():
        for name, transform in (("direct", lambda x: x), ("vae_round_trip", lambda x: round_trip(vae, x))):
            scores = [bundle.detector.score_logit(bundle.detector.evidence(transform(x)), message).numpy()
                      for x in (clean, marked)]
            metrics = detection_metrics(scores[0], scores[1])
            out[name] = {k: metrics[k] for k in ("auc", "accuracy", "n")}
    return out


def cross_condition(full: Any, quarter: Any, key: Path, watermark_model: Path) -> dict[str, Any]:
    """Detectors fine-tuned in the fully watermarked case (``full``, a Phase2Config), tested on the 1/4
    case's (``quarter``) held-out S / S_w."""
    from training.phase2.detector_finetune import evaluate_detector
    from training.phase2.pipeline import Phase2Run

    full_run, quarter_run = Phase2Run(full), Phase2Run(quarter)
    results: dict[str, Any] = {}
    for method in quarter.methods:
        clean, marked = quarter_run.sets_of([method], "heldout")
        if method not in full.methods or not clean or not marked:
            continue
        results[method] = {
            "phase1": evaluate_detector(watermark_model, key.read_bytes(), clean, marked),
            "phase2_full": evaluate_detector(full_run.detector_dir(method), key.read_bytes(), clean, marked),
        }
    return results


def run(cfg: MiniatureConfig) -> dict[str, Any]:
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / ("run_quick.log" if cfg.quick else "run.log")

    def log(message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        print(line, flush=True)
        with open(log_path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    for folder in (cfg.world.portraits, cfg.world.paintings):
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"missing data folder {folder} (the shared data set)")
    if not cfg.quick and not Path("runs/data/skimage").is_dir():
        from training.export_skimage_samples import export
        export(Path("runs/data/skimage"))
    timings: dict[str, float] = {}

    def timed(name: str, fn: Any, *args: Any) -> Any:
        started = time.monotonic()
        result = fn(*args)
        timings[name] = round(time.monotonic() - started, 1)
        log(f"{name}: {timings[name]:.0f} s")
        return result

    world = cfg.world
    world.out = out
    vae_dir = timed("autoencoder", ensure_autoencoder, world, log)
    base = timed("prior + text encoder", ensure_base_pipeline, world, cfg.prior, vae_dir, log)
    standard_watermark = timed("watermark model", ensure_watermark_model, world, cfg.watermark, log)
    data = [world.portraits] + [p for p in world.extra if Path(p).is_dir()]
    watermark_model = timed("watermark model + autoencoder round trip", ensure_autoencoder_aware_watermark, out,
                            data, world.resolution, standard_watermark, vae_dir, cfg.watermark, log)
    subject = out / "subject" / "X"
    prepare_subject(world.paintings, subject, count=cfg.subject_count)
    key = demo_key(out)

    full = phase2_config(cfg, base, subject, watermark_model, key, 1.0, cfg.methods)
    report_full = timed("phase 2 (fully watermarked)", run_phase2_logged, full, log)
    quarter_report, crossed = None, {}
    if cfg.quarter_methods:
        quarter = phase2_config(cfg, base, subject, watermark_model, key, 0.25, cfg.quarter_methods)
        quarter_report = timed("phase 2 (1/4 watermarked)", run_phase2_logged, quarter, log)
        crossed = cross_condition(full, quarter, key, watermark_model)
    from training.phase2.pipeline import Phase2Run

    marked_subject = Phase2Run(full).marked_images_dir  # X_w of the fully watermarked case (its tag: p)
    survival = {name: vae_survival(vae_dir, model, key, subject, marked_subject)
                for name, model in (("standard_distortions", standard_watermark),
                                    ("with_autoencoder_round_trip", watermark_model))}
    from gwm_desktop.core.lpips_metric import cached_lpips
    from training.miniature.subject_fidelity import score_run

    fidelity = timed("subject fidelity", score_run, out, cached_lpips())
    summary = {
        "quick": cfg.quick, "timings_s": timings, "total_s": round(sum(timings.values()), 1),
        "autoencoder": json.loads((vae_dir.parent / "summary.json").read_text()),
        "watermark_survives_autoencoder": survival,
        "phase2_full": report_full, "phase2_quarter": quarter_report,
        "quarter_with_full_detectors": crossed,
        # how much of the subject each model learned: a model that learned little cannot carry the watermark
        "subject_fidelity": fidelity,
        # the model-level verdict per personalized model (``results.model_verdicts``), also in each report
        "verdicts": {"full": report_full["verdict"], "quarter": quarter_report["verdict"] if quarter_report else None},
        "settings": {"personalization": cfg.personalization, "prior": asdict(cfg.prior), "phase2": cfg.phase2},
    }
    (out / ("summary_quick.json" if cfg.quick else "summary.json")).write_text(
        json.dumps(summary, indent=2, default=str) + "\n")
    print(render_summary(summary), flush=True)
    return summary


def render_summary(summary: dict[str, Any]) -> str:
    from training.phase2.report import percent, render_markdown

    ae = summary["autoencoder"]
    survival = summary["watermark_survives_autoencoder"]
    lines = ["# Miniature world report", "",
             f"Autoencoder: held-out PSNR {ae['held_out_psnr_db']} dB on {ae['held_out_images']} portraits.",
             "Phase 1 detector on the subject's X vs X_w (AUC): directly / after the autoencoder's round trip:"]
    for name, result in survival.items():
        lines.append(f"- {name.replace('_', ' ')}: {result['direct']['auc']:.3f} / "
                     f"{result['vae_round_trip']['auc']:.3f}")
    fidelity = summary.get("subject_fidelity")
    if fidelity:
        lines += ["", f"Subject learned (held-out samples' LPIPS to the nearest subject image: base model "
                      f"{fidelity['base']:.3f}, the subject's own images {fidelity['subject_loo']:.3f}; the share of "
                      "that gap closed), clean twin / on X_w:"]
        lines += [f"- {method}: {variants['clean']['learned']:.0%} / {variants['marked']['learned']:.0%}"
                  for method, variants in fidelity["models"].items() if {"clean", "marked"} <= set(variants)]
    lines += ["",
             render_markdown(summary["phase2_full"])]
    if summary["phase2_quarter"]:
        lines += ["## 1/4 of the subject's images watermarked", "", render_markdown(summary["phase2_quarter"])]
    if summary["quarter_with_full_detectors"]:
        lines += ["## 1/4 case, detectors fine-tuned in the fully watermarked case", "",
                  "| method | Phase 1 acc / AUC | Phase 2 (full) acc / AUC |", "|---|---|---|"]
        for method, r in summary["quarter_with_full_detectors"].items():
            lines.append(f"| {method} | {percent(r['phase1']['accuracy_cv'])} (CV) / {r['phase1']['auc']:.3f} | "
                         f"{percent(r['phase2_full']['accuracy'])} / {r['phase2_full']['auc']:.3f} |")
    lines += ["", "Stage timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in summary["timings_s"].items()),
              f"Total: {summary['total_s'] / 60:.1f} min", ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.miniature.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every stage at toy size (seconds; plumbing only)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default runs/miniature, "
                        "or runs/miniature_quick with --quick)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--methods", default=None, help="comma-separated subset of dreambooth,lora,textual_inversion")
    parser.add_argument("--no-quarter", action="store_true", help="skip the 1/4-watermarked case")
    parser.add_argument("--prior-steps", type=int, default=None, help="prior pretraining steps (default 6000)")
    parser.add_argument("--personalize", action="append", default=[], metavar="METHOD.FIELD=VALUE",
                        help="override one personalization setting, e.g. dreambooth.learning_rate=1e-4 (repeatable)")
    parser.add_argument("--phase2", action="append", default=[], metavar="FIELD=VALUE",
                        help="override one Phase2Config setting, e.g. images_per_prompt=24 or p=0.01 "
                             "(repeatable; not the fields the miniature sets itself)")
    parser.add_argument("--watermark", action="append", default=[], metavar="FIELD=VALUE",
                        help="override one watermark-model stage setting, e.g. steps=4000 or autoencoder_steps=1000 "
                             "(repeatable; non-default step counts get folders of their own)")
    return parser


def _parse_value(value: str) -> object:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    try:
        return float(value) if any(c in value.lower() for c in ".e") else int(value)
    except ValueError:
        return value  # a word, e.g. lora.lora_targets=transformer


def override_personalization(cfg: MiniatureConfig, item: str) -> None:
    """Apply one ``METHOD.FIELD=VALUE`` (e.g. ``dreambooth.learning_rate=1e-4``) to ``cfg.personalization``."""
    target, _, value = item.partition("=")
    method, _, name = target.partition(".")
    if method not in cfg.personalization or not name or not value:
        raise SystemExit(f"--personalize {item!r}: expected METHOD.FIELD=VALUE with METHOD in "
                         f"{', '.join(cfg.personalization)}")
    cfg.personalization[method] = {**cfg.personalization[method], name: _parse_value(value)}


def override_watermark(cfg: MiniatureConfig, item: str) -> None:
    """Apply one ``FIELD=VALUE`` (e.g. ``steps=4000``) to the watermark-model stage's config."""
    name, _, value = item.partition("=")
    if name not in {f.name for f in fields(WatermarkStageConfig)} or not value:
        raise SystemExit(f"--watermark {item!r}: expected FIELD=VALUE with FIELD one of "
                         f"{', '.join(f.name for f in fields(WatermarkStageConfig))}")
    cfg.watermark = replace(cfg.watermark, **{name: _parse_value(value)})


# Phase2Config fields the miniature itself decides (its world, its subject, the two cases it runs).
FIXED_PHASE2_FIELDS = ("base", "images_dir", "out", "methods", "model_dir", "key_file", "profile",
                       "watermark_fraction", "method_overrides")


def override_phase2(cfg: MiniatureConfig, item: str) -> None:
    """Apply one ``FIELD=VALUE`` (e.g. ``images_per_prompt=24``) to the Phase2Config overrides."""
    from training.phase2.pipeline import Phase2Config

    name, _, value = item.partition("=")
    if name not in {f.name for f in fields(Phase2Config)} or not value:
        raise SystemExit(f"--phase2 {item!r}: expected FIELD=VALUE with FIELD a Phase2Config setting")
    if name in FIXED_PHASE2_FIELDS:
        raise SystemExit(f"--phase2 {name}: set by the miniature itself (use --methods, --out, --personalize "
                         "or --no-quarter)")
    cfg.phase2 = {**cfg.phase2, name: _parse_value(value)}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = args.out or Path("runs/miniature_quick" if args.quick else "runs/miniature")
    cfg = quick_config(out, args.threads) if args.quick else full_config(out, args.threads)
    if args.methods:
        cfg.methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
        cfg.quarter_methods = tuple(m for m in cfg.quarter_methods if m in cfg.methods)
    if args.no_quarter:
        cfg.quarter_methods = ()
    if args.prior_steps:
        cfg.prior.steps = args.prior_steps
    for item in args.personalize:
        override_personalization(cfg, item)
    for item in args.phase2:
        override_phase2(cfg, item)
    for item in args.watermark:
        override_watermark(cfg, item)
    run(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
