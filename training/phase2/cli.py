"""`gwm train phase2`: the whole of Phase 2 for one subject, from the command line.

Watermarks the subject's images X into X_w, personalizes a Stable Diffusion model on X and on X_w
(DreamBooth, LoRA DreamBooth and/or Textual Inversion), synthesizes S and S_w on training and
held-out prompts and seeds, fine-tunes the detector on the training S / S_w and writes
report.json + report.md with the held-out figures (Phase 1 vs Phase 2 detector, cross-method).
Rerun the same command to resume an interrupted run. Several GPUs:
``accelerate launch --multi_gpu --num_processes N -m training.phase2.cli --base ... --images ...``
(``--multi_gpu`` also makes N CPU processes on a machine without GPUs).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.phase2.config import Phase2Config
from training.phase2_methods import DEFAULT_LEARNING_RATE, DEFAULT_STEPS, LORA_TARGET_SETS, METHODS

if TYPE_CHECKING:
    from gwm_desktop.core.profiles import Profile
    from training.phase2.pipeline import Phase2Run


def _override(text: str) -> tuple[str, str, Any]:
    """'lora.train_steps=300' -> ('lora', 'train_steps', 300)."""
    import json

    try:
        target, value = text.split("=", 1)
        method, name = target.split(".", 1)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected METHOD.OPTION=VALUE, got {text!r}") from error
    if method not in METHODS:
        raise argparse.ArgumentTypeError(f"unknown method {method!r} in {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return method, name.replace("-", "_"), parsed


def build_parser() -> argparse.ArgumentParser:
    d = Phase2Config(base="", images_dir="")
    steps = ", ".join(f"{m} {DEFAULT_STEPS[m]}" for m in METHODS)
    rates = ", ".join(f"{m} {DEFAULT_LEARNING_RATE[m]:g}" for m in METHODS)
    parser = argparse.ArgumentParser(prog="gwm train phase2", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    io = parser.add_argument_group("subject and models")
    io.add_argument("--base", required=True,
                    help="text-to-image model to personalize: a Hugging Face id (downloaded once, then cached; "
                         "HF_HUB_OFFLINE=1 forbids downloads), a local diffusers folder, or one .safetensors/.ckpt file")
    io.add_argument("--images", dest="images_dir", required=True, help="folder of the subject's images X")
    io.add_argument("--out", default=d.out, help="run folder: data/, models/, synth/, detectors/, report.json/.md "
                                                 "(default: %(default)s)")
    io.add_argument("--methods", nargs="+", choices=METHODS, default=list(d.methods),
                    help="personalization methods to test (default: %(default)s)")
    io.add_argument("--model", dest="model_dir", default=None,
                    help="watermark model folder (G and the Phase 1 detector; default: the shipped model)")
    key = io.add_mutually_exclusive_group()
    key.add_argument("--key-file", default=None,
                     help="the subject's key: a raw 32-byte file or a `gwm profile export` JSON")
    key.add_argument("--profile", default=None, help="the subject's profile name (default: the 'default' profile)")
    io.add_argument("--install", action="store_true",
                    help="after the run, install the fine-tuned detector (the joint one with several methods) "
                         "into --profile, where `gwm scan` uses it, if it beats the profile's current detector on "
                         "the held-out images (the replaced one is kept for a roll back)")
    wm = parser.add_argument_group("watermarking X")
    wm.add_argument("--p", type=float, default=d.p, help="LPIPS budget of X_w (default: %(default)s)")
    wm.add_argument("--watermark-fraction", type=float, default=d.watermark_fraction,
                    help="share of X that is watermarked in X_w; 0.25 is the paper's partially protected case "
                         "(default: %(default)s)")
    sy = parser.add_argument_group("synthesis of S and S_w")
    sy.add_argument("--prompts", default=d.prompts,
                    help="'art', 'face' or a text file with one prompt per line ('{}' or '<sks>' marks the "
                         "subject) (default: %(default)s)")
    sy.add_argument("--n-train-prompts", type=int, default=d.n_train_prompts,
                    help="prompts used for fine-tuning the detector (default: %(default)s)")
    sy.add_argument("--n-heldout-prompts", type=int, default=d.n_heldout_prompts,
                    help="other prompts, used only in the report (default: %(default)s)")
    sy.add_argument("--n-validation-prompts", type=int, default=d.n_validation_prompts,
                    help="more prompts (--images-per-prompt seeds each) whose images, never trained on, choose the "
                         "fine-tuning step kept and the detector's decision threshold; 0: keep the last step "
                         "(default: %(default)s)")
    sy.add_argument("--images-per-prompt", type=int, default=d.images_per_prompt,
                    help="seeds per training (and validation) prompt; no seed is used twice in a run "
                         "(default: %(default)s)")
    sy.add_argument("--heldout-images-per-prompt", type=int, default=d.heldout_images_per_prompt,
                    help="seeds per held-out prompt, none used in training (default: %(default)s)")
    sy.add_argument("--synth-steps", type=int, default=d.synth_steps, help="sampling steps (default: %(default)s)")
    sy.add_argument("--guidance", type=float, default=d.guidance,
                    help="classifier-free guidance scale (default: %(default)s)")
    sy.add_argument("--synth-resolution", type=int, default=None,
                    help="side of synthesized images in px (default: the personalization resolution)")
    sy.add_argument("--synth-batch-size", type=int, default=d.synth_batch_size,
                    help="images per sampling batch (default: %(default)s)")
    sy.add_argument("--paired-seeds", action="store_true",
                    help="S_w from the same (prompt, seed) pairs as S, as runs before issue 14 (default: seeds "
                         "of its own: a suspect model is not the artist's clean twin)")
    sy.add_argument("--negative-prompt", default=None, help="negative prompt for every image (default: none)")
    pe = parser.add_argument_group("personalization")
    pe.add_argument("--instance-prompt", default=d.instance_prompt, help="prompt of the subject's images "
                    "(default: %(default)r)")
    pe.add_argument("--placeholder-token", default=d.placeholder_token,
                    help="the subject's token: a new token for Textual Inversion, rare text for DreamBooth/LoRA "
                         "(default: %(default)s)")
    pe.add_argument("--initializer-token", default=d.initializer_token,
                    help="Textual Inversion starts the placeholder's embedding from this token's "
                         "(default: %(default)s)")
    pe.add_argument("--resolution", type=int, default=d.resolution,
                    help="training resolution in px, a multiple of 8 (default: %(default)s)")
    pe.add_argument("--train-steps", type=int, default=None, help=f"optimizer steps per model (default: {steps})")
    pe.add_argument("--learning-rate", type=float, default=None,
                    help=f"learning rate (default: {rates}; Textual Inversion's is multiplied by batch x "
                         "accumulation x GPUs, as diffusers' example does)")
    pe.add_argument("--batch-size", type=int, default=d.batch_size, help="images per step per GPU "
                    "(default: %(default)s)")
    pe.add_argument("--gradient-accumulation", type=int, default=d.gradient_accumulation,
                    help="micro-batches per optimizer step (default: %(default)s)")
    pe.add_argument("--lora-rank", type=int, default=d.lora_rank, help="LoRA rank (default: %(default)s)")
    pe.add_argument("--lora-targets", choices=list(LORA_TARGET_SETS), default=d.lora_targets,
                    help="LoRA layers: attention projections (diffusers' script) or every linear layer of the "
                         "transformer blocks (kohya-ss sd-scripts), or those and the ResNet convolutions (LoCon) (default: %(default)s)")
    pe.add_argument("--no-random-flip", dest="random_flip", action="store_false",
                    help="no random horizontal flip of the training images (default: flip, as diffusers' scripts)")
    pe.add_argument("--center-crop", action="store_true",
                    help="centre crop of the training images (default: a random crop, as diffusers' scripts)")
    pe.add_argument("--prior-preservation", action="store_true",
                    help="DreamBooth/LoRA: add the prior-preservation loss on class images (needs --class-prompt)")
    pe.add_argument("--class-prompt", default=None, help="prompt of the class images, e.g. 'a painting'")
    pe.add_argument("--class-images", dest="class_images_dir", default=None,
                    help="folder of class images; missing ones are made by the base model "
                         "(default: inside each model's folder)")
    pe.add_argument("--num-class-images", type=int, default=d.num_class_images,
                    help="class images for prior preservation (default: %(default)s)")
    pe.add_argument("--mixed-precision", choices=("auto", "no", "fp16", "bf16"), default=d.mixed_precision,
                    help="auto: bf16 (or fp16) on CUDA, fp32 on Apple MPS and CPU (default: %(default)s)")
    pe.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                    help="save a resumable checkpoint every N steps (default: %(default)s)")
    pe.add_argument("--keep-checkpoints", type=int, default=d.keep_checkpoints,
                    help="checkpoints kept per model (default: %(default)s)")
    pe.add_argument("--override", dest="overrides", action="append", type=_override, default=[],
                    metavar="METHOD.OPTION=VALUE",
                    help="per-method personalization setting, e.g. textual_inversion.train_steps=3000 or "
                         "lora.learning_rate=5e-5 (repeatable; any PersonalizeConfig field)")
    ft = parser.add_argument_group("detector fine-tuning")
    ft.add_argument("--finetune-steps", type=int, default=d.finetune_steps, help="steps (default: %(default)s)")
    ft.add_argument("--finetune-lr", type=float, default=d.finetune_lr, help="learning rate (default: %(default)s)")
    ft.add_argument("--finetune-batch-size", type=int, default=d.finetune_batch_size,
                    help="images per step, half clean, half watermarked (default: %(default)s)")
    ft.add_argument("--phase1-mix", type=float, default=d.phase1_mix,
                    help="share of steps on Phase 1 data (clean vs freshly watermarked images), so the detector "
                         "does not forget (default: %(default)s)")
    ft.add_argument("--phase1-data", action="append", default=[],
                    help="folder of images for those Phase 1 steps (repeatable; default: the subject's images)")
    ft.add_argument("--no-joint-detector", dest="joint_detector", action="store_false",
                    help="with several methods, skip the detector fine-tuned on all of them together")
    ru = parser.add_argument_group("run")
    ru.add_argument("--device", default=d.device, help="auto | cuda | mps | cpu (default: %(default)s)")
    ru.add_argument("--seed", type=int, default=d.seed, help="seed of prompts split, seeds and training "
                    "(default: %(default)s)")
    ru.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads, 0: torch's default "
                    "(default: %(default)s)")
    return parser


def parse_args(input_args: list[str] | None = None) -> tuple[Phase2Config, argparse.Namespace]:
    args = build_parser().parse_args(input_args)
    names = {f.name for f in fields(Phase2Config)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values["methods"] = tuple(dict.fromkeys(args.methods))
    overrides: dict[str, dict[str, Any]] = {}
    for method, name, value in args.overrides:
        overrides.setdefault(method, {})[name] = value
    values["method_overrides"] = overrides
    return Phase2Config(**values), args


def install_into_profile(run: Phase2Run, profile: Profile) -> list[str]:
    """Install the run's detector into ``profile`` if it beats the current one (the profile's own, else
    the run's watermark model) on the run's held-out images; returns the lines that say what happened."""
    from gwm_desktop.core.detector_eval import install_if_better
    from gwm_desktop.core.devices import resolve_device
    from gwm_desktop.core.weights import load_model
    from training.phase2_methods import installed_detector

    config = run.config
    name = installed_detector(config.methods, config.joint_detector)
    device = resolve_device(config.device)
    current = load_model(profile.detector_folder or run.watermark_model_dir(), device)
    clean, marked = run.sets_of(config.methods, "heldout")
    decision, lines = install_if_better(profile, run.detector_dir(name), current, device, clean, marked)
    where = f"the {name} detector into profile {profile.name!r} ({profile.detector_path})"
    return [*lines, f"installed {where}" if decision.installed else f"did not install {where}"]


def main(argv: list[str] | None = None) -> int:
    from gwm_desktop.core.jobs import CancelToken, JobCancelled, with_progress
    from training.phase2.pipeline import Phase2Run

    config, args = parse_args(argv)
    if args.install and config.key_file:
        print("--install needs --profile (the detector goes into that profile)", file=sys.stderr)
        return 2
    cancel = CancelToken()
    try:
        run = Phase2Run(config, cancel)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    last = None
    try:
        for progress in with_progress(run.run(), "phase 2", "unit", describe=lambda p: p.message.split(":")[0][:40]):
            last = progress
    except (KeyboardInterrupt, JobCancelled):
        cancel.cancel()
        print("cancelled; run the same command again to resume", file=sys.stderr)
        return 130
    if last is None or not isinstance(last.payload, dict) or "report" not in last.payload:
        return 0  # a non-main process under accelerate launch
    from training.phase2.report import render_markdown

    print(render_markdown(last.payload["report"]))
    print(f"report written to {Path(config.out) / f'report{config.tag}.md'}")
    if args.install:
        from gwm_desktop.core.profiles import ProfileStore

        store = ProfileStore()
        profile = store.get(config.profile) if config.profile else store.get_or_create_default()
        for line in install_into_profile(run, profile):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
