"""``gwm eval``: the SPEC section 3 figures for any model and image folder, and the calibration bank.

For every image and budget p: protect it with an evaluation key (PNG, as exported), measure
LPIPS(original, exported) by the SPEC protocol, PSNR and SSIM at full resolution; protect it with
other keys too; then score clean, watermarked and other-key images undistorted and under every
standard distortion. Thresholds come from the clean images' scores under the same distortion, beside
what the scanner decides at 1% (``training.eval_report``).

``--calibrate`` instead computes the model's calibration bank (the detector's evidence on images of
the *calibration* split, undistorted and distorted: clean; watermarked with other keys at every level;
watermarked with other keys at the faintest level) and stores it with the model: the threshold
rule a Phase 2 detector's own bank follows, and ``gwm eval``'s comparison for the shipped one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from gwm_desktop.core.atomic import write_atomic
from gwm_desktop.core.detect import frames_tensor
from gwm_desktop.core.devices import resolve_device
from gwm_desktop.core.distortions import STANDARD_DISTORTIONS, TRAINING_TRANSFORMS, Distortion
from gwm_desktop.core.image_io import (
    EncodeOptions,
    ImageLoadError,
    decode_bytes,
    load_image,
    resize_frame,
    to_rgb8,
)
from gwm_desktop.core.jobs import CancelToken, Progress, with_progress
from gwm_desktop.core.keys import message_from_key
from gwm_desktop.core.levels import LEVELS, level_by_name
from gwm_desktop.core.lpips_metric import build_lpips, lpips_distance
from gwm_desktop.core.models import WatermarkDetector
from gwm_desktop.core.watermark import CalibrationError, Embedder, psnr
from gwm_desktop.core.weights import ModelBundle, load_model, read_manifest, save_model
from training.datasets import list_images
from training.eval_report import build_report, format_report, record_metrics
from training.evidence_file import write_evidence
from training.metrics import ssim

EVAL_KEY = b"gwm-evaluation-key-0000000000000"  # 32 bytes; a fixed key so figures are reproducible
CONDITIONS = ("none", *STANDARD_DISTORTIONS)  # what the calibration bank holds, and the default report
CONDITION_SETS = {"standard": CONDITIONS, "training": ("none", *TRAINING_TRANSFORMS),
                  "all": (*CONDITIONS, *TRAINING_TRANSFORMS)}


# An isotropic model's scanner searches the frame, which raises the null of what it maximises: its bank
# also holds the training transforms (all but the latent round trip, about a second an image on a CPU).
ISOTROPIC_BANK_CONDITIONS = (*CONDITIONS, "flip", "square_crop", "random_crop", "rotate5", "bucket512")


def bank_conditions(detector: WatermarkDetector) -> tuple[str, ...]:
    """The conditions a model's calibration bank is built under."""
    return ISOTROPIC_BANK_CONDITIONS if detector.isotropic else CONDITIONS


def parse_conditions(text: str) -> tuple[str, ...]:
    """``standard`` | ``training`` | ``all`` | a comma-separated list of condition names."""
    if text in CONDITION_SETS:
        return CONDITION_SETS[text]
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    known = CONDITION_SETS["all"]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ValueError(f"unknown condition(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(CONDITION_SETS)} or {', '.join(known)}")
    return names


def distortion(name: str) -> Distortion | None:
    """A condition's distortion; None for the undistorted image."""
    if name == "none":
        return None
    return STANDARD_DISTORTIONS.get(name) or TRAINING_TRANSFORMS[name]


def other_key(index: int) -> bytes:
    return f"gwm-other-key-{index:04d}".encode().ljust(32, b"-")


@dataclass
class EvalConfig:
    model: str
    data: list[str] = field(default_factory=list)
    split: str = "eval"
    levels: list[float] = field(default_factory=lambda: [0.01, 0.05])
    max_images: int = 0
    other_keys: int = 4
    device: str = "cpu"
    json_out: str | None = None
    calibrate: bool = False
    record_as: str | None = None
    conditions: tuple[str, ...] = CONDITIONS
    evidence_out: str | None = None


def parse_level(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return level_by_name(text).p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gwm eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--data", action="append", required=True, help="image folder (repeatable)")
    parser.add_argument("--split", default=None, choices=["train", "calibration", "eval", "all"],
                        help="which files of each folder (by name hash); default eval, or calibration with --calibrate")
    parser.add_argument("--levels", default="0.01,0.05", help="comma-separated p values or level names")
    parser.add_argument("--max-images", type=int, default=0, help="cap on images (0: all)")
    parser.add_argument("--other-keys", type=int, default=4, help="other profiles' keys for the cross-key FPR")
    parser.add_argument("--device", default="cpu", help="auto | cuda | mps | cpu")
    parser.add_argument("--json", dest="json_out", default=None, help="also write the report as JSON here")
    parser.add_argument("--record-as", default=None, metavar="NAME",
                        help="also store the report in the model's manifest under metrics.NAME")
    parser.add_argument("--calibrate", action="store_true",
                        help="compute and store the model's calibration bank instead of evaluating")
    parser.add_argument("--conditions", default="standard",
                        help="standard (SPEC section 3 distortions) | training (the training transforms: flips, "
                             "crops, buckets, the TAEF2 latent round trip) | all | a comma-separated list")
    parser.add_argument("--save-evidence", dest="evidence_out", default=None, metavar="FILE",
                        help="also write every image's per-view evidence here (safetensors), so other ways "
                             "of joining the scanner's readings can be measured without scoring again "
                             "(python -m training.view_join)")
    return parser


def parse_args(argv: list[str] | None = None) -> EvalConfig:
    from gwm_desktop.core.engine import default_model_dir

    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.calibrate or args.record_as) and not args.model:
        parser.error("--calibrate and --record-as write into the model folder: name it with --model")
    if args.other_keys < 1:
        parser.error("--other-keys must be at least 1")
    split = args.split or ("calibration" if args.calibrate else "eval")
    try:
        conditions = parse_conditions(args.conditions)
    except ValueError as error:
        parser.error(str(error))
    if args.calibrate and conditions != CONDITIONS:
        parser.error("--calibrate always uses the bank's own conditions (what the scanner reads against)")
    return EvalConfig(model=args.model or str(default_model_dir()), data=args.data, split=split,
                      levels=[parse_level(t) for t in args.levels.split(",") if t.strip()],
                      max_images=args.max_images, other_keys=args.other_keys, device=args.device,
                      json_out=args.json_out, calibrate=args.calibrate, record_as=args.record_as,
                      conditions=conditions, evidence_out=args.evidence_out)


def working_batch(images: list[Image.Image], size: int, centre_square: bool = False) -> torch.Tensor:
    """PIL images -> (B, 1, S, S) luma float in [0, 1], read as the scanner reads files (``resize_frame``
    of the luma; an isotropic detector's centred square of the shorter side)."""
    return frames_tensor(np.stack([np.asarray(resize_frame(im.convert("L"), (size, size), centre_square))
                                   for im in images]), "cpu")


@torch.no_grad()
def bits_under_conditions(detector: WatermarkDetector, image: Image.Image, device: torch.device,
                          conditions: tuple[str, ...] = CONDITIONS) -> torch.Tensor:
    """(len(conditions), views, n_bits) bit logits of one image under each condition, per scan-time view
    (what the scanner and the calibration bank use)."""
    variants = [image if distortion(name) is None else distortion(name)(image) for name in conditions]
    return detector.decode_views(working_batch(variants, detector.working_size, detector.isotropic).to(device)).cpu()


def protect_as_png(embedder: Embedder, loaded: Any, p: float) -> tuple[Image.Image, float]:
    """Protect at budget ``p`` through the export path (PNG), decoded back: (image, strength)."""
    result = embedder.protect(loaded, p, EncodeOptions(format="png"))
    return to_rgb8(decode_bytes(result.data)), result.strength


def evaluate(config: EvalConfig, cancel: CancelToken | None = None) -> Iterator[Progress]:
    """Yields one Progress per image; the last one's payload is the report dict."""
    cancel = cancel or CancelToken()
    device = resolve_device(config.device)
    bundle = load_model(Path(config.model), device)
    lpips_model = build_lpips(device)
    paths = list_images([Path(d) for d in config.data], config.split)
    if config.max_images:
        paths = paths[: config.max_images]
    own_message = message_from_key(EVAL_KEY, bundle.n_bits)
    own = Embedder(bundle.generator, own_message, lpips_model, device)
    others = [Embedder(bundle.generator, message_from_key(other_key(i), bundle.n_bits), lpips_model, device)
              for i in range(config.other_keys)]
    grey_flags: list[bool] = []
    other_index: list[int] = []
    clean_bits: list[torch.Tensor] = []
    marked_bits: dict[float, list[torch.Tensor]] = {p: [] for p in config.levels}
    other_bits: dict[float, list[torch.Tensor]] = {p: [] for p in config.levels}
    quality: dict[float, dict[str, list[float]]] = {p: {"lpips": [], "psnr": [], "ssim": []} for p in config.levels}
    failures: list[str] = []
    started = time.monotonic()
    for index, path in enumerate(paths, start=1):
        cancel.raise_if_cancelled()
        which_other = index % len(others)  # the other key this image's other-key copies carry
        try:
            loaded = load_image(path)
            original = to_rgb8(loaded.rgb)
            per_level = []
            for p in config.levels:
                marked, _ = protect_as_png(own, loaded, p)
                other, _ = protect_as_png(others[which_other], loaded, p)
                per_level.append((p, marked, other))
        except (ImageLoadError, CalibrationError) as error:
            failures.append(f"{path.name}: {error}")
            continue
        clean_bits.append(bits_under_conditions(bundle.detector, original, device, config.conditions))
        grey_flags.append(loaded.is_grey)
        other_index.append(which_other)
        original_array = np.asarray(original)
        for p, marked, other in per_level:
            q = quality[p]
            q["lpips"].append(lpips_distance(original, marked, lpips_model))
            marked_array = np.asarray(marked)
            q["psnr"].append(psnr(original_array, marked_array))
            q["ssim"].append(ssim(original_array, marked_array))
            marked_bits[p].append(bits_under_conditions(bundle.detector, marked, device, config.conditions))
            other_bits[p].append(bits_under_conditions(bundle.detector, other, device, config.conditions))
        yield Progress(index, len(paths), path.name)
    keys = [EVAL_KEY, *(other_key(i) for i in range(config.other_keys))]
    report = build_report(config, bundle, keys, clean_bits, marked_bits, other_bits, other_index, quality, failures,
                          time.monotonic() - started, len(paths), grey_flags)
    if config.json_out:
        write_atomic(Path(config.json_out), (json.dumps(report, indent=2) + "\n").encode("utf-8"))
    if config.evidence_out:
        write_evidence(Path(config.evidence_out), clean_bits, marked_bits, other_bits, other_index, config.conditions,
                       {"model": str(config.model), "data": ",".join(config.data), "split": config.split})
    if config.record_as:
        record_metrics(Path(config.model), config.record_as, report)
    yield Progress(len(paths), len(paths), "report", report)


def bank_hint() -> str:
    """The command that writes a calibration bank into a copy of a model."""
    return ("write one into a copy of it first: gwm eval --calibrate --model COPY --data ../shared/data/portraits "
            "--data runs/data/skimage --max-images 200")


def load_banked_model(folder: Path) -> ModelBundle:
    """A model with its calibration bank, for the tools that compare with the bank's threshold; the
    shipped model scans without one (the key-rank test), so say which command writes it."""
    bundle = load_model(folder)
    if not bundle.calibration:
        raise SystemExit(f"{folder} has no calibration bank (the shipped model scans without one); {bank_hint()}")
    return bundle


def calibrate(config: EvalConfig, cancel: CancelToken | None = None) -> Iterator[Progress]:
    """Compute the calibration bank on ``config.split`` images and store it in the model folder."""
    cancel = cancel or CancelToken()
    device = resolve_device(config.device)
    folder = Path(config.model)
    bundle = load_model(folder, device)
    lpips_model = build_lpips(device)
    paths = list_images([Path(d) for d in config.data], config.split)
    if config.max_images:
        paths = paths[: config.max_images]
    faintest = min(level.p for level in LEVELS)
    conditions = bank_conditions(bundle.detector)
    clean, other, faint = [], [], []
    for index, path in enumerate(paths, start=1):
        cancel.raise_if_cancelled()
        try:
            loaded = load_image(path)
            key_message = message_from_key(other_key(1000 + index), bundle.n_bits)
            embedder = Embedder(bundle.generator, key_message, lpips_model, device)
            marked, _ = protect_as_png(embedder, loaded, LEVELS[index % len(LEVELS)].p)
            faint_key = message_from_key(other_key(5000 + index), bundle.n_bits)
            faintly, _ = protect_as_png(Embedder(bundle.generator, faint_key, lpips_model, device), loaded, faintest)
        except (ImageLoadError, CalibrationError):
            continue
        clean.append(bits_under_conditions(bundle.detector, to_rgb8(loaded.rgb), device, conditions))
        other.append(bits_under_conditions(bundle.detector, marked, device, conditions))
        faint.append(bits_under_conditions(bundle.detector, faintly, device, conditions))
        yield Progress(index, len(paths), path.name)
    calibration = {"clean_bits": torch.cat(clean).half(), "other_bits": torch.cat(other).half(),
                   "faint_other_bits": torch.cat(faint).half()}
    manifest = read_manifest(folder)
    extra = {k: v for k, v in manifest.items() if k not in ("format", "architecture", "files")}
    extra["calibration"] = {"images": len(clean), "split": config.split, "data": config.data,
                            "conditions": list(conditions),
                            "command": "gwm eval " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["eval"] else sys.argv[1:])}
    save_model(folder, bundle.generator, bundle.detector, manifest_extra=extra, calibration=calibration)
    yield Progress(len(paths), len(paths), "calibration written", extra["calibration"])


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    threads_text = os.environ.get("GWM_THREADS", "0")
    try:
        threads = int(threads_text)
    except ValueError:
        threads = -1
    if threads < 0:
        print(f"gwm: error: GWM_THREADS must be a whole number of threads, got {threads_text!r}", file=sys.stderr)
        return 2
    if threads > 0:
        torch.set_num_threads(threads)
    job = calibrate(config) if config.calibrate else evaluate(config)
    last = None
    for progress in with_progress(job, "calibrate" if config.calibrate else "eval", "img", hide_when_piped=False):
        last = progress
    if last is None:
        print("no images found", file=sys.stderr)
        return 1
    if config.calibrate:
        print(json.dumps(last.payload, indent=2))
    else:
        print(format_report(last.payload))
    return 0
